"""CPU instruction tiers for the benchmarks: which tiers this CPU has, the environment that caps both sides of a
comparison to one tier (InfiniCore: INFINICORE_CPU_ISA; torch's oneDNN: ONEDNN_MAX_CPU_ISA; torch's own kernels:
ATEN_CPU_CAPABILITY), which instructions each side then actually ran, and `throughput --cpu-isa` run once per tier,
each in its own process (both libraries read their caps once per process)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = "INFINI_QWEN3_BENCH_TIER"  # set in the per-tier processes
TIERS = ("amx", "avx512bf16", "avx512", "avx2", "baseline")  # best first, as InfiniCore's INFINICORE_CPU_ISA names them
ONEDNN_ISA = {"amx": "AVX512_CORE_AMX", "avx512bf16": "AVX512_CORE_BF16", "avx512": "AVX512_CORE", "avx2": "AVX2",
              "baseline": "SSE41"}
ATEN_CAPABILITY = {"avx2": "avx2", "baseline": "default"}  # above avx2 torch picks AVX-512 itself where it can
# The /proc/cpuinfo flags each tier needs (gemm_cpu_isa.cc checks the same through cpuid).
CPU_TIER_FLAGS = {"amx": {"amx_bf16", "amx_tile"}, "avx512bf16": {"avx512f", "avx512bw", "avx512vl", "avx512_bf16"},
                  "avx512": {"avx512f", "avx512bw", "avx512vl", "fma"}, "avx2": {"avx2", "fma"}, "baseline": set()}


def cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def supported_tiers() -> list[str]:
    """The tiers this CPU can run, best first."""
    flags = cpu_flags()
    return [tier for tier in TIERS if CPU_TIER_FLAGS[tier] <= flags]


def our_tier() -> str:
    """The tier InfiniCore's bf16 GEMM runs on in this process: the best the CPU has, capped by INFINICORE_CPU_ISA
    (gemm_cpu_isa.cc decides the same way; AMX also needs the kernel's permission, which only it can see)."""
    cap = os.environ.get("INFINICORE_CPU_ISA", "amx")
    allowed = TIERS[TIERS.index(cap):] if cap in TIERS else TIERS
    return next(tier for tier in supported_tiers() if tier in allowed)


def tier_environment(tier: str, threads: int | None = None) -> dict:
    """This process's environment with both sides capped to `tier`."""
    env = dict(os.environ, INFINICORE_CPU_ISA=tier, ONEDNN_MAX_CPU_ISA=ONEDNN_ISA[tier], **{CHILD: tier})
    if tier in ATEN_CAPABILITY:
        env["ATEN_CPU_CAPABILITY"] = ATEN_CAPABILITY[tier]
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    return env


ONEDNN_PROBE = "import torch; a = torch.randn(64, 64).bfloat16(); torch.matmul(a, a)"


def torch_kernels() -> dict:
    """What a bf16 torch.matmul runs on under this environment: oneDNN's ISA and implementation (from
    ONEDNN_VERBOSE, in a small process of its own), or torch's own kernels where it does not call oneDNN."""
    run = subprocess.run([sys.executable, "-c", ONEDNN_PROBE], env=dict(os.environ, ONEDNN_VERBOSE="1"),
                         capture_output=True, text=True, timeout=300)
    isa = re.search(r"onednn_verbose,.*?isa:([^,\n]+)", run.stdout)
    impl = re.search(r"onednn_verbose,.*?exec,cpu,matmul,([^,]+)", run.stdout)
    return {"onednn_isa": isa.group(1).strip() if isa else None,
            "onednn_matmul": impl.group(1) if impl else "not oneDNN (torch's own kernels)"}


def describe() -> dict:
    """Which instructions each side of this run used."""
    import torch

    return {"ours": our_tier(), "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "onednn_max_cpu_isa": os.environ.get("ONEDNN_MAX_CPU_ISA"), **torch_kernels()}


def requested(value: str) -> list[str]:
    have = supported_tiers()
    if value == "all":
        return [tier for tier in have if tier != "baseline"]  # 0.1.0's loops: hours for a 1.7B model
    tiers = value.split(",")
    for tier in tiers:
        if tier not in have:
            raise SystemExit(f"--cpu-isa {tier}: this CPU supports {', '.join(have)}")
    return tiers


def _without(argv: list[str], option: str) -> list[str]:
    """argv without `option VALUE` / `option=VALUE`."""
    out, skip = [], False
    for item in argv:
        if skip:
            skip = False
        elif item == option:
            skip = True
        elif not item.startswith(option + "="):
            out.append(item)
    return out


def run_each(argv: list[str], args) -> dict:
    """`throughput` once per tier, each in a process capped to it; a peer runs beside the best tier only."""
    tiers = requested(args.cpu_isa)
    base = _without(_without(_without(argv, "--cpu-isa"), "--out"), "--peer")
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-tiers-") as work:
        for index, tier in enumerate(tiers):
            out = Path(work) / f"{tier}.json"
            peers = [f"--peer={peer}" for peer in args.peer] if index == 0 else []
            command = [sys.executable, "-m", "harness.bench", *base, f"--cpu-isa={tier}", f"--out={out}", *peers]
            print(f"[bench] tier {tier}: {' '.join(command[3:])}", flush=True)
            subprocess.run(command, env=tier_environment(tier), check=True)
            results.append({"tier": tier, **json.loads(out.read_text())})
    return {"tiers": results}


def markdown(result: dict) -> str:
    from .tables import markdown as table

    parts = []
    for run in result["tiers"]:
        isa = run.get("cpu_isa", {})
        parts.append(f"#### CPU tier `{run['tier']}` — infini-qwen3 ran `{isa.get('ours')}`; transformers: torch "
                     f"`{isa.get('torch_cpu_capability')}`, oneDNN matmul `{isa.get('onednn_matmul')}` "
                     f"(ONEDNN_MAX_CPU_ISA={isa.get('onednn_max_cpu_isa')})\n\n{table(run)}")
    return "\n".join(parts)
