"""python -m harness.bench gemm [--isa TIER|all] [--threads N] [--repeats R] [--shapes NAME,...]

InfiniCore's bf16 GEMM on the Qwen3-1.7B shapes against torch.matmul in the same process, interleaved (ours,
torch, ours, ...), best of R, in GFLOP/s. Each tier runs in its own process with INFINICORE_CPU_ISA set to it and
torch's oneDNN capped to the same instructions (ONEDNN_MAX_CPU_ISA, decided when oneDNN first runs). The
descriptor and workspace are made once, so only the operator is timed."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass

from . import tiers


@dataclass(frozen=True)
class GemmShape:
    """c[batch, m, n] = a[batch, m, k] . b[batch, k, n] with b given as `b_layout`: "nk" (weights [n, k], b = W^T),
    "kn" (V of attention, contiguous along n)."""
    name: str
    batch: int
    m: int
    n: int
    k: int
    b_layout: str = "nk"

    @property
    def flops(self) -> float:
        return 2.0 * self.batch * self.m * self.n * self.k


# Qwen3-1.7B: hidden 2048, 16 query and 8 KV heads of 128, MLP 6144, vocabulary 151936 (tied lm_head).
SHAPES = [
    GemmShape("qkv 512", 1, 512, 4096, 2048),
    GemmShape("gate_up 512", 1, 512, 12288, 2048),
    GemmShape("down 512", 1, 512, 2048, 6144),
    GemmShape("gate_up 128", 1, 128, 12288, 2048),
    GemmShape("o 128", 1, 128, 2048, 2048),
    GemmShape("gate_up 8", 1, 8, 12288, 2048),
    GemmShape("gate_up 1", 1, 1, 12288, 2048),
    GemmShape("down 1", 1, 1, 2048, 6144),
    GemmShape("lm_head 1", 1, 1, 151936, 2048),
    GemmShape("QK^T 512", 16, 512, 512, 128),
    GemmShape("PV 512", 16, 512, 128, 512, "kn"),
]


def operands(shape: GemmShape):
    import torch

    gen = torch.Generator().manual_seed(0)
    a = torch.randn(shape.batch, shape.m, shape.k, generator=gen).bfloat16()
    if shape.b_layout == "nk":
        b = torch.randn(shape.batch, shape.n, shape.k, generator=gen).bfloat16().transpose(1, 2)
    else:
        b = torch.randn(shape.batch, shape.k, shape.n, generator=gen).bfloat16()
    c = torch.empty(shape.batch, shape.m, shape.n, dtype=torch.bfloat16)
    if shape.batch == 1:
        a, b, c = a[0], b[0], c[0]
    return a, b, c


def best_seconds(run, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def measure_tier(shapes: list[GemmShape], repeats: int) -> dict:
    """GFLOP/s of ours and torch's for each shape, in this process (its tier set by the environment)."""
    import torch

    from harness.parity.infiniop import Infiniop

    ops = Infiniop("cpu")
    rows = []
    for shape in shapes:
        a, b, c = operands(shape)
        ours = ops.prepared_gemm(c, a, b)
        expected = torch.matmul(a.float(), b.float())
        try:
            ours()  # warm-up (pages, descriptor caches)
            torch.matmul(a, b)
            ours_s, torch_s = float("inf"), float("inf")
            for _ in range(repeats):  # interleaved: both see the same machine state
                ours_s = min(ours_s, best_seconds(ours, 1))
                torch_s = min(torch_s, best_seconds(lambda: torch.matmul(a, b), 1))
            error = ((c.float() - expected).norm() / expected.norm()).item()
        finally:
            ours.close()
        rows.append({"shape": shape.name, "batch": shape.batch, "m": shape.m, "n": shape.n, "k": shape.k,
                     "ours_gflops": shape.flops / ours_s / 1e9, "torch_gflops": shape.flops / torch_s / 1e9,
                     "rel_error": error})
    return {"tier": tiers.our_tier(), "threads": torch.get_num_threads(), **tiers.describe(), "rows": rows}


def markdown(result: dict) -> str:
    lines = [f"tier {result['tier']} (torch: {result['torch_cpu_capability']}, oneDNN matmul "
             f"{result['onednn_matmul']}, ONEDNN_MAX_CPU_ISA={result['onednn_max_cpu_isa']}), "
             f"{result['threads']} threads",
             "", "| GEMM | batch x m x n x k | infini-qwen3 GFLOP/s | torch GFLOP/s | ratio | rel. error vs F32 |",
             "|---|---|---|---|---|---|"]
    for row in result["rows"]:
        lines.append(f"| {row['shape']} | {row['batch']}x{row['m']}x{row['n']}x{row['k']} | "
                     f"{row['ours_gflops']:.1f} | {row['torch_gflops']:.1f} | "
                     f"{row['ours_gflops'] / row['torch_gflops']:.2f} | {row['rel_error']:.1e} |")
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m harness.bench gemm", description=__doc__.splitlines()[0])
    parser.add_argument("--isa", default="all", help="a tier (amx, avx512bf16, avx512, avx2, baseline) or all it has")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--shapes", help="comma-separated shape names (default: all)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    shapes = SHAPES if not args.shapes else [s for s in SHAPES if s.name in args.shapes.split(",")]
    if args.child:
        import torch

        torch.set_num_threads(args.threads)
        print(json.dumps(measure_tier(shapes, args.repeats)))
        return
    for tier in tiers.requested(args.isa):
        child = [sys.executable, "-m", "harness.bench", "gemm", "--child", "--threads", str(args.threads),
                 "--repeats", str(args.repeats)] + (["--shapes", args.shapes] if args.shapes else [])
        out = subprocess.run(child, env=tiers.tier_environment(tier, args.threads), capture_output=True, text=True,
                             check=True)
        print(markdown(json.loads(out.stdout.strip().splitlines()[-1])), "\n", flush=True)
