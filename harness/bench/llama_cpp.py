"""llama.cpp as the CPU peer of a throughput run (`python -m harness.bench throughput --peer llama.cpp`).

llama.cpp is built once from the tree that PyPI's llama-cpp-python sdist vendors (cmake, GGML_NATIVE: the
instructions of the machine it is built on), cached under build/llama-cpp; the bench checkpoint is converted
with that tree's own convert_hf_to_gguf.py; llama-bench gives prefill and batch-1 decode, llama-batched-bench
decode at larger batches. Not run in CI: the build takes several minutes on two cores."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

from infini_qwen3.build import BUILD_ROOT

SDIST = "llama-cpp-python==0.3.36"
ROOT = BUILD_ROOT / "llama-cpp"
SOURCE = ROOT / "src"
BUILD_DIR = ROOT / "build"
BINARIES = BUILD_DIR / "bin"
TOOLS = ("llama-bench", "llama-batched-bench")
GGUF_TYPES = {"bf16": "bf16", "f16": "f16", "f32": "f32", "q8_0": "q8_0"}  # q8_0: converted by llama.cpp


def _run(command: list, **kwargs) -> subprocess.CompletedProcess:
    print("[llama.cpp] " + " ".join(str(c) for c in command), flush=True)
    return subprocess.run([str(c) for c in command], check=True, **kwargs)


def fetch_source() -> Path:
    """The vendored llama.cpp tree of the sdist (downloaded once into build/downloads)."""
    if (SOURCE / "CMakeLists.txt").exists():
        return SOURCE
    downloads = BUILD_ROOT / "downloads"
    archives = sorted(downloads.glob("llama_cpp_python-*.tar.gz"))
    if not archives:
        _run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", SDIST, "-d", downloads])
        archives = sorted(downloads.glob("llama_cpp_python-*.tar.gz"))
    unpacked = ROOT / "unpacked"
    shutil.rmtree(unpacked, ignore_errors=True)
    with tarfile.open(archives[-1]) as archive:
        members = [m for m in archive.getmembers() if "/vendor/llama.cpp/" in m.name]
        archive.extractall(unpacked, members=members, filter="data")
    vendored = next(unpacked.glob("*/vendor/llama.cpp"))
    shutil.rmtree(SOURCE, ignore_errors=True)
    vendored.rename(SOURCE)
    shutil.rmtree(unpacked)
    return SOURCE


SERVER = "llama-server"  # the second reference server of the conformance matrix (harness/llama_server.py)


def compiler_flags() -> str:
    """Flags added to GGML_NATIVE's -march=native. Without AMX's instructions where the CPU has them: this tree's
    AMX kernels (Q8_0 and other quantized types) load a tile configuration on OpenMP worker threads that never asked
    the kernel for AMX state (ggml_amx_init asks on the main thread only), and die with SIGILL at the first
    `ldtilecfg` (ggml-org/llama.cpp pull request 26954); its bf16 path never used AMX."""
    from .tiers import cpu_flags

    return "-mno-amx-tile -mno-amx-int8 -mno-amx-bf16" if "amx_tile" in cpu_flags() else ""


def build(jobs: int = 2, tools: tuple[str, ...] = TOOLS) -> Path:
    """The tools (llama-bench and llama-batched-bench unless told; SERVER for the server), built natively, cached:
    a tool already built with the same flags costs nothing."""
    flags = compiler_flags()
    stamp = BUILD_DIR / "infini-qwen3-flags.txt"  # the flags the cached tools were built with
    if BUILD_DIR.exists() and (stamp.read_text() if stamp.exists() else "") != flags:
        shutil.rmtree(BUILD_DIR)  # every tool in it was built with other flags
    missing = [tool for tool in tools if not (BINARIES / tool).exists()]
    if not missing:
        return BINARIES
    source = fetch_source()
    _run(["cmake", "-S", source, "-B", BUILD_DIR, "-DCMAKE_BUILD_TYPE=Release", "-DGGML_NATIVE=ON",
          "-DLLAMA_CURL=OFF", "-DLLAMA_BUILD_TESTS=OFF", f"-DLLAMA_BUILD_SERVER={'ON' if SERVER in missing else 'OFF'}",
          "-DGGML_OPENMP=ON", f"-DCMAKE_C_FLAGS={flags}", f"-DCMAKE_CXX_FLAGS={flags}"])
    _run(["cmake", "--build", BUILD_DIR, "-j", jobs, "--target", *missing])
    BUILD_DIR.mkdir(parents=True, exist_ok=True)
    stamp.write_text(flags)
    return BINARIES


def convert(model_dir: Path, dtype: str) -> Path:
    """The checkpoint as GGUF of the same dtype, converted by the tree's own script (cached beside it)."""
    out = ROOT / "models" / f"{model_dir.name}-{dtype}.gguf"
    if out.exists() and out.stat().st_mtime >= (model_dir / "config.json").stat().st_mtime:
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    try:  # the converter tries a sentencepiece vocabulary before Qwen's BPE one and fails without the module
        import sentencepiece  # noqa: F401
    except ImportError:
        raise SystemExit("llama.cpp's convert_hf_to_gguf.py needs sentencepiece: pip install -e '.[bench]'") from None
    _run([sys.executable, fetch_source() / "convert_hf_to_gguf.py", model_dir, "--outtype", GGUF_TYPES[dtype],
          "--outfile", out])
    return out


def parse_bench(json_text: str) -> dict:
    """llama-bench's `-o json` as {"prefill": {prompt tokens: tokens/s}, "decode_batch1": tokens/s}."""
    prefill, decode = {}, None
    for test in json.loads(json_text):
        if test["n_gen"] == 0:
            prefill[test["n_prompt"]] = test["avg_ts"]
        elif test["n_prompt"] == 0:
            decode = test["avg_ts"]
    return {"prefill": prefill, "decode_batch1": decode}


def bench(gguf: Path, threads: int, prefill_tokens: list[int], decode_tokens: int) -> dict:
    result = _run([BINARIES / "llama-bench", "-m", gguf, "-t", threads, "-p", ",".join(map(str, prefill_tokens)),
                   "-n", decode_tokens, "-r", 3, "-o", "json"], capture_output=True, text=True)
    return parse_bench(result.stdout)


def parse_batched(output: str) -> dict[int, float]:
    """{batch: decode tokens/s} from llama-batched-bench's `--output-format jsonl` lines (speed_tg: the generated
    tokens of all sequences over their time); other lines (logs) are skipped."""
    rates = {}
    for line in output.splitlines():
        line = line.strip()
        if line.startswith("{") and '"speed_tg"' in line:
            row = json.loads(line)
            rates[int(row["pl"])] = float(row["speed_tg"])
    return rates


def batched_decode(gguf: Path, threads: int, batches: list[int], prompt: int, new_tokens: int) -> dict[int, float]:
    context = max(batches) * (prompt + new_tokens) + 16
    result = _run([BINARIES / "llama-batched-bench", "-m", gguf, "-t", threads, "-tb", threads, "-c", context,
                   "-npp", prompt, "-ntg", new_tokens, "-npl", ",".join(map(str, batches)),
                   "--output-format", "jsonl"], capture_output=True, text=True)
    return parse_batched(result.stdout + "\n" + result.stderr)


def prepare(model_dir: Path, dtype: str) -> Path:
    """Built and converted (both cached): the GGUF of the checkpoint."""
    build()
    return convert(model_dir, dtype)


def decode_batch1(gguf: Path, threads: int, new_tokens: int) -> float:
    """One llama-bench run of batch-1 decode (tokens/s), to alternate with our own runs."""
    result = _run([BINARIES / "llama-bench", "-m", gguf, "-t", threads, "-p", 0, "-n", new_tokens, "-r", 1,
                   "-o", "json"], capture_output=True, text=True)
    return parse_bench(result.stdout)["decode_batch1"]


def measure(model_dir: Path, dtype: str, threads: int, prefill_shapes, decode_shapes, batch1: bool = True) -> dict:
    """llama.cpp's rates for the bench's batch-1 prefill shapes and its decode batches, in one call; batch1=False
    leaves batch-1 decode out (the bench measured it alternating with ours)."""
    gguf = prepare(model_dir, dtype)
    prefill_tokens = sorted({s.tokens for s in prefill_shapes if s.batch == 1})
    decode_tokens = max(s.tokens for s in decode_shapes)
    single = bench(gguf, threads, prefill_tokens or [128], decode_tokens if batch1 else 0)
    batches = sorted({s.batch for s in decode_shapes})
    batched = batched_decode(gguf, threads, batches, 128, decode_tokens) if batches else {}
    prefill = {f"1,{t}": single["prefill"].get(t) for t in prefill_tokens}  # "batch,tokens": JSON keys
    decode = {f"{s.batch},{s.tokens}": single["decode_batch1"] if s.batch == 1 else batched.get(s.batch)
              for s in decode_shapes}
    flags = compiler_flags()
    return {"prefill": prefill, "decode": decode, "threads": threads, "gguf": str(gguf), "source": SDIST,
            "build": "cmake, GGML_NATIVE=ON (the instructions of this CPU)" + (f", {flags}" if flags else "")}
