"""python -m harness.bench throughput [--model DIR | --config tiny|small|qwen3-1.7b] [--device cpu|nvidia]
[--dtype bf16] [--quick] [--out FILE.json]

Runs this project and transformers on the same random-weight checkpoint, same device and dtype, in this one
process run (then the server with concurrent openai clients), and writes JSON plus a Markdown table."""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
from pathlib import Path

from harness.results import write_result
from infini_qwen3.build import BUILD_ROOT
from infini_qwen3.config import Qwen3Config
from infini_qwen3.model import KV_BLOCK_SIZE, Qwen3Model
from infini_qwen3.weights import checkpoint_bytes

from . import configs, measure, tiers
from .tables import markdown


def parse_shapes(text: str) -> list[measure.Shape]:
    """"1x1024,8x512" -> [Shape(1, 1024), Shape(8, 512)]"""
    shapes = []
    for item in text.split(","):
        batch, tokens = item.lower().split("x")
        shapes.append(measure.Shape(int(batch), int(tokens)))
    return shapes


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m harness.bench", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("throughput", help="prefill/decode/serving throughput against transformers")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--model", help="an existing checkpoint directory")
    source.add_argument("--config", choices=sorted(configs.CONFIGS), default="small",
                        help="build a random checkpoint of these shapes")
    p.add_argument("--device", default="cpu", choices=["cpu", "nvidia"])
    p.add_argument("--ndev", type=int, default=1, help="tensor-parallel ranks for this project (and its server)")
    p.add_argument("--dtype", default="bf16", choices=["bf16", "f16", "f32"])
    p.add_argument("--prefill", default="1x1024,8x512", help="batch x prompt tokens, comma separated")
    p.add_argument("--decode", default="1x128,8x128,32x128", help="batch x new tokens, comma separated")
    p.add_argument("--streams", default="1,8,32", help="concurrent streaming clients through the server")
    p.add_argument("--stream-tokens", type=int, default=64)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--quick", action="store_true", help="small shapes and one repeat (CI's sanity run)")
    p.add_argument("--skip-transformers", action="store_true")
    p.add_argument("--skip-server", action="store_true")
    p.add_argument("--cuda-graphs", default="on", choices=["on", "off"],
                   help="decode steps replayed as CUDA graphs (NVIDIA), or eager; also passed to the server")
    p.add_argument("--cpu-isa", help="CPU: run once per instruction tier (amx, avx512bf16, avx512, avx2, or all this "
                   "CPU has), "
                   "each in its own process with InfiniCore capped by INFINICORE_CPU_ISA and transformers' oneDNN by "
                   "ONEDNN_MAX_CPU_ISA")
    p.add_argument("--peer", action="append", default=[], choices=["llama.cpp"],
                   help="another engine on the same checkpoint in the same run (llama.cpp: built natively, CPU)")
    p.add_argument("--out", type=Path, help="JSON result (a .md table is written beside it)")
    args = parser.parse_args(argv)
    if args.quick:
        args.prefill, args.decode, args.streams, args.stream_tokens, args.repeats = "1x128,4x64", "1x16,8x16", \
            "1,8", 16, 1
    return args


def peak_host_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def device_used_mib(device: str) -> float | None:
    if device != "nvidia":
        return None
    import torch

    free, total = torch.cuda.mem_get_info()
    return (total - free) / 2**20


CONSTRAINED_BATCHES = (1, 8)  # structured outputs are measured where they are used: few requests at a time


def run_ours(args, model_dir: Path, prefill, decode, peer_decode=None) -> tuple[dict, dict, dict, dict, float | None,
                                                                             dict, list]:
    """Prefill, decode, host-sampling decode and constrained decode rates, the device memory used, the
    model's graph counts (how many decode steps replayed a captured graph) and (read bytes/s, batch-1 decode
    tokens/s, the peer's batch-1 decode tokens/s or None) measured back to back."""
    slots = max([s.batch for s in prefill + decode])
    context = max([s.tokens for s in prefill] + [16 + s.tokens for s in decode])
    context = -(-context // KV_BLOCK_SIZE) * KV_BLOCK_SIZE  # whole blocks: each sequence owns its own (slot_blocks)
    step_tokens = max([s.batch * s.tokens for s in prefill] + [s.batch * 16 for s in decode])  # decode prompts: 16
    with Qwen3Model(model_dir, device=args.device, ndev=args.ndev, dtype=args.dtype, max_model_len=context,
                    kv_cache_tokens=slots * context, max_step_tokens=step_tokens,
                    cuda_graphs=args.cuda_graphs == "on") as model:
        pre = {(s.batch, s.tokens): measure.ours_prefill(model, s, args.repeats) for s in prefill}
        dec = {(s.batch, s.tokens): measure.ours_decode(model, s, args.repeats) for s in decode}
        host = {(s.batch, s.tokens): measure.ours_decode(model, s, args.repeats, path="host") for s in decode}
        schema = {(s.batch, s.tokens): measure.ours_decode(model, s, args.repeats, path="json_schema")
                  for s in decode if s.batch in CONSTRAINED_BATCHES}
        # A shared machine's memory bandwidth moves with its neighbours (runs minutes apart differ by 1.5x): each
        # batch-1 decode run is paired with a streaming read measured right before it and, with a peer, followed by
        # the peer's own batch-1 decode, so that both engines are compared on the same memory.
        floor_runs = []
        for shape in (s for s in decode if s.batch == 1):
            for _ in range(3):
                read = measure.read_bandwidth(args.device)
                ours = measure.ours_decode(model, shape, 1)
                floor_runs.append((read, ours, peer_decode(shape) if peer_decode else None))
        used = device_used_mib(args.device)
        graphs = model.graph_stats()
    return pre, dec, host, schema, used, graphs, floor_runs


def run_transformers(args, model_dir: Path, prefill, decode) -> tuple[dict, dict, float | None]:
    reference = measure.Reference(model_dir, args.device, args.dtype)
    pre = {(s.batch, s.tokens): reference.prefill(s, args.repeats) for s in prefill}
    dec = {(s.batch, s.tokens): reference.decode(s, args.repeats) for s in decode}
    peak = None
    if args.device == "nvidia":
        peak = reference.torch.cuda.max_memory_allocated() / 2**20
    del reference
    return pre, dec, peak


def rows(ours: dict, theirs: dict) -> list[dict]:
    out = []
    for (batch, tokens), value in ours.items():
        other = theirs.get((batch, tokens))
        out.append({"batch": batch, "tokens": tokens, "ours": value, "transformers": other,
                    "ratio": value / other if other else None})
    return out


def throughput(args) -> dict:
    prefill, decode = parse_shapes(args.prefill), parse_shapes(args.decode)
    work = Path(tempfile.mkdtemp(prefix="bench-"))
    model_dir = Path(args.model) if args.model else configs.build(args.config, BUILD_ROOT / "bench", args.dtype)
    result = configs.run_info(args, model_dir)
    print(f"[bench] {result['config']} on {result['device_name']} ({args.dtype})", flush=True)

    peer_decode = None
    if args.peer:  # llama.cpp (harness/bench/llama_cpp.py): same checkpoint, dtype and threads
        import torch

        from . import llama_cpp

        gguf, threads = llama_cpp.prepare(model_dir, args.dtype), torch.get_num_threads()
        # its batch-1 decode alternates with ours
        peer_decode = lambda shape: llama_cpp.decode_batch1(gguf, threads, shape.tokens)  # noqa: E731
    ours_pre, ours_dec, ours_host, ours_schema, ours_device, graphs, floor_runs = run_ours(args, model_dir, prefill,
                                                                                          decode, peer_decode)
    floor_pairs = [(read, ours) for read, ours, _ in floor_runs]
    memory = {"host_peak_after_ours": peak_host_mib(), "device_used_by_ours": ours_device}
    result["cuda_graphs"] = graphs
    print(f"[bench] decode graphs: {graphs}", flush=True)
    theirs_pre, theirs_dec = {}, {}
    if not args.skip_transformers:
        theirs_pre, theirs_dec, their_device = run_transformers(args, model_dir, prefill, decode)
        memory.update({"host_peak_after_transformers": peak_host_mib(), "device_peak_of_transformers": their_device})
    # The host logits path (logprobs + a penalty) against transformers' plain greedy decode: what it costs.
    # Constrained decode against our own plain decode (same shapes, same run): what a json_schema costs.
    result.update(prefill=rows(ours_pre, theirs_pre), decode=rows(ours_dec, theirs_dec),
                  decode_host_logits=rows(ours_host, theirs_dec),
                  decode_json_schema=[{"batch": b, "tokens": t, "ours": v, "plain": ours_dec[(b, t)],
                                       "step_time_ratio": ours_dec[(b, t)] / v} for (b, t), v in ours_schema.items()],
                  memory=memory)

    if floor_pairs:
        weight_bytes = checkpoint_bytes(model_dir) * {"f32": 4, "bf16": 2, "f16": 2}[args.dtype] // \
            max(1, _stored_bytes_per_param(model_dir))
        # the pair with the median fraction of the floor's speed
        bandwidth, rate = sorted(floor_pairs, key=lambda pair: pair[1] / pair[0])[len(floor_pairs) // 2]
        result["bandwidth"] = {"weight_bytes": weight_bytes, "read_bytes_per_s": bandwidth,
                               "floor_s_per_token": weight_bytes / bandwidth, "ours_s_per_token": 1 / rate,
                               "fraction": weight_bytes / bandwidth * rate,
                               "pairs": [{"read_bytes_per_s": b, "decode_tokens_per_s": r} for b, r in floor_pairs]}
    if args.device == "cpu":
        result["cpu_isa"] = tiers.describe()
    if args.peer:
        result["peers"] = {"llama.cpp": llama_cpp.measure(model_dir, args.dtype, threads, prefill, decode,
                                                          batch1=not floor_runs)}
    if args.peer and floor_runs:
        alternate_batch1(result, floor_runs, next(s for s in decode if s.batch == 1))
    if not args.skip_server:
        from .serving import serve_and_measure

        streams = [int(n) for n in args.streams.split(",")]
        result["serving"] = serve_and_measure(model_dir, args.device, args.dtype, streams, args.stream_tokens, work,
                                               args.cuda_graphs, args.ndev)
    return result


def alternate_batch1(result: dict, runs: list, shape) -> None:
    """Batch-1 decode of both engines as the medians of their alternating runs (ours, then llama.cpp's, three
    times): the table's batch-1 row and the peer's column are these, not runs minutes apart."""
    ours, theirs = statistics.median(r[1] for r in runs), statistics.median(r[2] for r in runs)
    result["decode_batch1_alternating"] = [{"read_bytes_per_s": read, "ours": o, "llama.cpp": p} for read, o, p in runs]
    row = next(r for r in result["decode"] if r["batch"] == shape.batch and r["tokens"] == shape.tokens)
    row["ours"] = ours
    row["ratio"] = ours / row["transformers"] if row.get("transformers") else None
    result["peers"]["llama.cpp"]["decode"][f"{shape.batch},{shape.tokens}"] = theirs


def _stored_bytes_per_param(model_dir: Path) -> int:
    stored = Qwen3Config.from_file(model_dir).torch_dtype
    return {"float32": 4, "bfloat16": 2, "float16": 2}.get(stored, 4)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["gemm"]:  # single operators, per CPU tier (harness/bench/gemm.py)
        from . import gemm

        gemm.main(argv[1:])
        return 0
    if argv[:1] == ["serving"]:  # against any running OpenAI-compatible server (harness/bench/serving.py)
        from . import serving

        serving.main(argv[1:])
        return 0
    if argv[:1] == ["quant"]:  # 8-bit weights against bf16, same run (harness/bench/quant.py)
        from . import quant

        quant.main(argv[1:])
        return 0
    if argv[:1] == ["multiturn"]:  # multi-turn chat, prefix cache on and off (harness/bench/multiturn.py)
        from . import multiturn

        multiturn.main(argv[1:])
        return 0
    args = parse_args(argv)
    if args.cpu_isa and os.environ.get(tiers.CHILD) is None:
        result = tiers.run_each(argv, args)
        table = tiers.markdown(result)
    else:
        result = throughput(args)
        table = markdown(result)
    print(table)
    if args.out:
        write_result(args.out, result, table)
        print(f"[bench] wrote {args.out} and {args.out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
