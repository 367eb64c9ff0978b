"""Markdown tables of a throughput result (the JSON written by `python -m harness.bench throughput`)."""

from __future__ import annotations


def _num(value, digits: int = 1) -> str:
    if value is None:
        return "–"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}"


def _ms(value) -> str:
    return "–" if value is None else f"{value * 1000:.1f}"


def _peer_rate(result: dict, peer: str, kind: str, row: dict):
    """A peer engine's tokens/s for a row of ours (harness/bench/llama_cpp.py keys them "batch,tokens")."""
    if kind not in ("prefill", "decode"):
        return None
    return result["peers"][peer].get(kind, {}).get(f"{row['batch']},{row['tokens']}")


def markdown(result: dict) -> str:
    peers = sorted(result.get("peers", {}))
    cpu = result.get("cpu_model") if result.get("device") == "cpu" else None
    where = result["device_name"] + (f", {cpu}" if cpu else "")
    lines = [f"**{result['config']}** on {where} ({result['dtype']}), "
             f"{result['date']}, commit {result['commit'][:10]}", "",
             "| step | batch × tokens | infini-qwen3 tokens/s | transformers tokens/s | ratio |"
             + "".join(f" {peer} tokens/s | ratio to {peer} |" for peer in peers),
             "|---|---|---|---|---|" + "---|---|" * len(peers)]
    for kind, label in (("prefill", "prefill"), ("decode", "decode"),
                        ("decode_host_logits", "decode, logprobs + penalty (host path)")):
        for row in result.get(kind, []):
            line = (f"| {label} | {row['batch']} × {row['tokens']} | {_num(row['ours'])} | "
                    f"{_num(row.get('transformers'))} | {_num(row.get('ratio'), 2)} |")
            for peer in peers:
                rate = _peer_rate(result, peer, kind, row)
                line += f" {_num(rate)} | {_num(row['ours'] / rate if rate else None, 2)} |"
            lines.append(line)
    if result.get("decode_json_schema"):
        lines += ["", "| decode, json_schema (mask + host sampling) | batch × tokens | tokens/s | "
                      "plain decode tokens/s | step time vs plain |", "|---|---|---|---|---|"]
        for row in result["decode_json_schema"]:
            lines.append(f"| decode, json_schema | {row['batch']} × {row['tokens']} | {_num(row['ours'])} | "
                         f"{_num(row['plain'])} | {_num(row['step_time_ratio'], 2)}x |")
    if result.get("serving"):
        lines += ["", "| concurrent streams | TTFT p50 / p95 (ms) | inter-token p50 / p95 (ms) | output tokens/s |",
                  "|---|---|---|---|"]
        for row in result["serving"]:
            lines.append(f"| {row['streams']} | {_ms(row['ttft_p50'])} / {_ms(row['ttft_p95'])} | "
                         f"{_ms(row['itl_p50'])} / {_ms(row['itl_p95'])} | {_num(row['output_tokens_per_s'])} |")
    alternating = result.get("decode_batch1_alternating")
    if alternating:
        lines += ["", "Batch-1 decode of infini-qwen3 and llama.cpp above: the medians of runs alternating between "
                      "them (each pair after a streaming read): "
                  + "; ".join(f"{run['ours']:.1f} / {run['llama.cpp']:.1f} tokens/s at "
                              f"{run['read_bytes_per_s'] / 1e9:.1f} GB/s" for run in alternating) + "."]
    bw = result.get("bandwidth")
    if bw:
        lines += ["", f"Batch-1 decode bandwidth floor: {bw['weight_bytes'] / 2**20:,.0f} MiB of weights / "
                      f"{bw.get('read_bytes_per_s', bw.get('copy_bytes_per_s', 0)) / 1e9:.1f} GB/s "
                      f"{'read' if 'read_bytes_per_s' in bw else 'copy'} bandwidth = "
                      f"{_ms(bw['floor_s_per_token'])} ms per token; measured {_ms(bw['ours_s_per_token'])} ms, "
                      f"{bw['fraction'] * 100:.1f}% of the floor's speed"
                      + (f" (the median of {len(bw['pairs'])} reads each measured right before a decode run)."
                         if bw.get("pairs") else ".")]
    memory = result.get("memory")
    if memory:
        parts = [f"{k.replace('_', ' ')}: {v:,.0f} MiB" for k, v in memory.items() if v is not None]
        lines += ["", "Memory — " + "; ".join(parts) + "."]
    return "\n".join(lines) + "\n"
