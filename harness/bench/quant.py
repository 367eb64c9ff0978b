"""python -m harness.bench quant [--config qwen3-1.7b] [--formats bf16,fp8,gptq] [--repeats 3] [--out FILE.json]

8-bit weights against bf16 in one run: the bench checkpoint (random weights, bf16) and its FP8 and GPTQ-Int8
versions quantized at bench time (harness/fixtures/quantized.py), all loaded at once, compute in bf16. Batch-1
decode alternates the formats, each run right after a streaming read of memory (the machine's bandwidth moves
within minutes), and is reported with its fraction of its own read-bandwidth limit (the bytes each token reads:
every weight the model holds, less the embedding table when lm_head is separate); batch-8 decode and prefill
1 x 512 alternate the formats the same way (medians).

--transformers adds transformers (bf16) on each 8-bit format's dequantized twin, the same values as ours computes
with; --peer llama.cpp adds llama.cpp on the bf16 checkpoint as GGUF bf16 and as its own Q8_0 (harness/bench/
llama_cpp.py; the same thread count). Both run after ours, in the same process."""

from __future__ import annotations

import argparse
import statistics
import subprocess
from pathlib import Path

from harness.fixtures.quantized import quantized_checkpoint
from harness.results import run_metadata, write_result
from infini_qwen3.build import BUILD_ROOT
from infini_qwen3.config import Qwen3Config
from infini_qwen3.kv_memory import weight_bytes
from infini_qwen3.model import Qwen3Model

from . import configs, measure
from .tiers import our_tier

DTYPE_BYTES = 2  # bf16 compute


def bytes_per_token(config: Qwen3Config) -> int:
    """Weight bytes one decode step reads: all of them but the embedding table (one row of it), unless it is lm_head."""
    embedding = 0 if config.tie_word_embeddings else config.vocab_size * config.hidden_size * DTYPE_BYTES
    return weight_bytes(config, DTYPE_BYTES) - embedding


def checkpoints(args) -> dict[str, Path]:
    dense = configs.build(args.config, BUILD_ROOT / "bench", "bf16")
    found = {}
    for name in args.formats.split(","):
        if name == "bf16":
            found[name] = dense
        else:
            found[name], _ = quantized_checkpoint(dense, BUILD_ROOT / "bench" / f"{dense.name}-{name}", name,
                                                  twin=args.transformers)
    return found


def transformers_rows(args, paths: dict[str, Path], shapes) -> dict:
    """transformers bf16 on the dequantized twin of each 8-bit format (the quantized checkpoint's sibling)."""
    b1, b8, pre = shapes
    rows = {}
    for name, path in paths.items():
        if name == "bf16":
            continue
        reference = measure.Reference(path.parent / "dequantized", "cpu", "bf16")
        rows[name] = {"decode_b1": reference.decode(b1, args.repeats), "decode_b8": reference.decode(b8, args.repeats),
                      "prefill_1x512": reference.prefill(pre, args.repeats)}
        del reference
    return rows


def llama_cpp_rows(args, dense: Path, shapes) -> dict:
    """llama.cpp on the bf16 checkpoint as GGUF bf16 and as llama.cpp's own Q8_0 (blocks of 32, an f16 scale)."""
    import torch

    from . import llama_cpp

    b1, b8, pre = shapes
    rows = {}
    for gguf_type in ("bf16", "q8_0"):
        try:
            found = llama_cpp.measure(dense, gguf_type, torch.get_num_threads(), [pre], [b1, b8])
        except subprocess.CalledProcessError as error:  # the row says so; the rows measured before it stand
            rows[gguf_type] = {"error": str(error)}
            continue
        rows[gguf_type] = {"decode_b1": found["decode"][f"1,{b1.tokens}"],
                           "decode_b8": found["decode"][f"8,{b8.tokens}"],
                           "prefill_1x512": found["prefill"][f"1,{pre.tokens}"], "gguf": found["gguf"]}
    return rows


def run(args) -> dict:
    paths = checkpoints(args)
    dense = paths.get("bf16") or configs.build(args.config, BUILD_ROOT / "bench", "bf16")  # llama.cpp's source
    if "llama.cpp" in args.peer:  # built and converted first: a missing tool stops the run before the long part
        from . import llama_cpp

        for gguf_type in ("bf16", "q8_0"):
            llama_cpp.prepare(dense, gguf_type)
    b1, b8, pre = measure.Shape(1, args.decode_tokens), measure.Shape(8, args.decode_tokens), measure.Shape(1, 512)
    context = 544
    models = {name: Qwen3Model(path, dtype="bf16", max_model_len=context, kv_cache_tokens=8 * context,
                               max_step_tokens=512) for name, path in paths.items()}
    try:
        runs: dict[str, list[tuple[float, float]]] = {name: [] for name in models}
        batched: dict[str, list[float]] = {name: [] for name in models}
        prefills: dict[str, list[float]] = {name: [] for name in models}
        for name, model in models.items():  # warm-up: descriptors, caches
            measure.ours_decode(model, measure.Shape(1, 4), 1)
        for _ in range(args.repeats):  # every rate alternates the formats, so a change of the machine hits all
            for name, model in models.items():
                read = measure.read_bandwidth("cpu")
                runs[name].append((read, measure.ours_decode(model, b1, 1)))
            for name, model in models.items():
                batched[name].append(measure.ours_decode(model, b8, 1))
            for name, model in models.items():
                prefills[name].append(measure.ours_prefill(model, pre, 1))
        result = {"config": args.config, **run_metadata("cpu"), "cpu_isa": our_tier(), "formats": {}}
        for name, model in models.items():
            config = model.config
            per_token = bytes_per_token(config)
            fractions = sorted(rate * per_token / read for read, rate in runs[name])
            result["formats"][name] = {
                "weights": model.weight_format, "bytes_per_token": per_token,
                "decode_b1": statistics.median(rate for _, rate in runs[name]),
                "floor_fraction": fractions[len(fractions) // 2],
                "runs": [{"read_bytes_per_s": read, "tokens_per_s": rate} for read, rate in runs[name]],
                "decode_b8": statistics.median(batched[name]),
                "prefill_1x512": statistics.median(prefills[name]),
            }
    finally:
        for model in models.values():
            model.close()
    shapes = (b1, b8, pre)
    if args.transformers:
        result["transformers"] = transformers_rows(args, paths, shapes)
    if "llama.cpp" in args.peer:
        result["llama.cpp"] = llama_cpp_rows(args, dense, shapes)
    base = result["formats"].get("bf16")
    if base:
        for entry in result["formats"].values():
            entry["vs_bf16"] = ratios(entry, base)
    if "llama.cpp" in result:
        result["llama.cpp"]["q8_0"]["vs_bf16"] = ratios(result["llama.cpp"]["q8_0"], result["llama.cpp"]["bf16"])
    return result


RATES = ("decode_b1", "decode_b8", "prefill_1x512")


def ratios(entry: dict, base: dict) -> dict:
    return {key: entry[key] / base[key] for key in RATES if entry.get(key) and base.get(key)}


def markdown(result: dict) -> str:
    where = f"{result['cpu_model']}, tier {result['cpu_isa']}, " if "cpu_isa" in result else ""
    lines = [f"**{result['config']}**, {where}bf16 compute, one run", "",
             "| weights | bytes/token (MB) | decode b1 tok/s | of its read limit | decode b8 tok/s | prefill 1x512 "
             "tok/s | vs bf16 (b1 / b8 / prefill) |", "|---|---|---|---|---|---|---|"]
    for name, e in result["formats"].items():
        ratios = " / ".join(f"{e.get('vs_bf16', {}).get(k, 1):.2f}" for k in ("decode_b1", "decode_b8",
                                                                              "prefill_1x512"))
        lines.append(f"| {name} ({e['weights']}) | {e['bytes_per_token'] / 1e6:.0f} | {e['decode_b1']:.2f} | "
                     f"{e['floor_fraction']:.0%} | {e['decode_b8']:.2f} | {e['prefill_1x512']:.1f} | {ratios} |")
    for name, e in result.get("transformers", {}).items():
        lines.append(f"| transformers bf16 on {name}'s dequantized weights | | {e['decode_b1']:.2f} | | "
                     f"{e['decode_b8']:.2f} | {e['prefill_1x512']:.1f} | |")
    for name, e in result.get("llama.cpp", {}).items():
        if "error" in e:
            lines.append(f"| llama.cpp {name} | | failed: {e['error']} | | | | |")
            continue
        ratios = " / ".join(f"{e['vs_bf16'][k]:.2f}" for k in RATES if k in e.get("vs_bf16", {}))
        lines.append(f"| llama.cpp {name.upper() if name == 'q8_0' else name} | | {e['decode_b1']:.2f} | | "
                     f"{e['decode_b8']:.2f} | {e['prefill_1x512']:.1f} | {ratios or '1.00 / 1.00 / 1.00'} |")
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(prog="python -m harness.bench quant", description=__doc__.splitlines()[0])
    p.add_argument("--config", choices=sorted(configs.CONFIGS), default="qwen3-1.7b")
    p.add_argument("--formats", default="bf16,fp8,gptq")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--decode-tokens", type=int, default=32)
    p.add_argument("--transformers", action="store_true",
                   help="also transformers bf16 on each 8-bit format's dequantized weights")
    p.add_argument("--peer", action="append", default=[], choices=["llama.cpp"],
                   help="also llama.cpp (built natively) on the checkpoint as GGUF bf16 and Q8_0")
    p.add_argument("--out", type=Path)
    args = p.parse_args(argv)
    result = run(args)
    table = markdown(result)
    print(table)
    if args.out:
        write_result(args.out, result, table)
