"""llama.cpp's llama-server as the harness's second reference server (`tox -e llama-server`; not in CI).

Built once from the same vendored llama.cpp tree as the CPU peer of the benchmarks (harness/bench/llama_cpp.py, with
the server target), serving a checkpoint converted to GGUF by that tree's own convert_hf_to_gguf.py, with the
checkpoint's chat template (--jinja: tools and reasoning as llama.cpp implements them).

    python -m harness.llama_server serve [--model DIR] [--port 8080]      # in the foreground, until Ctrl-C
    python -m harness.llama_server conformance [--model DIR] [--out X.xml] # pytest conformance --base-url against it
    python -m harness.llama_server serving --config qwen3-1.7b [--streams 1,8] [--tokens 64] [--out FILE.json]

`serving` is the same-run comparison: this project's server, then llama-server, on the same checkpoint and thread
count, under the same client load (harness/bench/serving.py). Without --model, `serve` and `conformance` use the
demo checkpoint the conformance suite serves.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
from pathlib import Path

from conformance.server_process import LoopbackServer
from harness.bench import llama_cpp
from harness.results import REPO

MODEL_NAME = "qwen3-demo"  # the name the conformance suite asks for (conformance/conftest.py)


class LlamaServer(LoopbackServer):
    """llama-server on a loopback port (started, checked and stopped as conformance/server_process.py's servers)."""

    name = "llama-server"

    def __init__(self, gguf: Path, alias: str, log_path: Path, *, port: int | None = None, threads: int | None = None,
                 context: int = 8192, slots: int = 4):
        super().__init__(log_path, port)
        self.arguments = ["-m", str(gguf), "--alias", alias, "--host", "127.0.0.1", "--port", str(self.port),
                          "-t", str(threads or os.cpu_count() or 1), "-c", str(context * slots), "-np", str(slots),
                          "--jinja"]

    def command(self) -> list[str]:
        return [str(llama_cpp.BINARIES / llama_cpp.SERVER), *self.arguments]

    def start(self, timeout: float = 300) -> "LlamaServer":
        print("[llama-server] " + " ".join(self.command()), flush=True)
        return super().start(timeout)


def prepared_gguf(model_dir: Path, dtype: str) -> Path:
    """llama-server built and the checkpoint converted (both cached)."""
    llama_cpp.build(tools=(llama_cpp.SERVER,))
    return llama_cpp.convert(model_dir, dtype)


def demo_checkpoint() -> Path:
    from infini_qwen3.demo_checkpoint import ensure_demo_checkpoint

    os.environ.setdefault("INFINI_QWEN3_CACHE", str(REPO / "build" / "cache"))  # the conformance suite's copy
    return ensure_demo_checkpoint()


def serve(args) -> None:
    gguf = prepared_gguf(args.model or demo_checkpoint(), args.dtype)
    with LlamaServer(gguf, args.alias, REPO / "build" / "llama-cpp" / "server.log", port=args.port,
                     threads=args.threads) as server:
        print(f"llama-server at {server.base_url} (model {args.alias}, log {server.log_path}); Ctrl-C stops it",
              flush=True)
        try:
            server.process.wait()
        except KeyboardInterrupt:
            pass


def conformance(args) -> int:
    """pytest conformance --base-url against llama-server; the JUnit XML goes to --out for harness.report."""
    gguf = prepared_gguf(args.model or demo_checkpoint(), args.dtype)
    with LlamaServer(gguf, args.alias, args.out.with_suffix(".log"), threads=args.threads) as server:
        command = [sys.executable, "-m", "pytest", "conformance", "--base-url", server.base_url, "--model", args.alias,
                   "-p", "no:cacheprovider", "-q", "--junitxml", str(args.out), *args.pytest_args]
        print("[conformance] " + " ".join(command), flush=True)
        return subprocess.run(command, cwd=REPO).returncode


def serving(args) -> dict:
    """This project's server, then llama-server, on the same checkpoint (bf16), threads and client load."""
    from harness.bench import configs
    from harness.bench import serving as bench_serving

    model_dir = args.model or configs.build(args.config, REPO / "build" / "bench", args.dtype)
    streams = [int(n) for n in args.streams.split(",")]
    logs = REPO / "build" / "results" / "llama-server"
    logs.mkdir(parents=True, exist_ok=True)
    ours = bench_serving.serve_and_measure(model_dir, "cpu", args.dtype, streams, args.tokens, logs)
    gguf = prepared_gguf(model_dir, args.dtype)
    with LlamaServer(gguf, "bench", logs / "llama-server.log", threads=args.threads, context=512 + args.tokens,
                     slots=max(streams)) as server:
        theirs = asyncio.run(bench_serving.measure_all(server.base_url, streams, args.tokens))
    return {"model": str(model_dir), "dtype": args.dtype, "threads": args.threads or os.cpu_count(),
            "servers": {"infini-qwen3": ours, "llama-server": theirs}}


def serving_markdown(result: dict) -> str:
    from harness.bench.serving import markdown

    parts = []
    for name, rows in result["servers"].items():
        parts.append(f"**{name}**\n\n{markdown(rows)}")
    return "\n\n".join(parts)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m harness.llama_server", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    for name in ("serve", "conformance", "serving"):
        s = sub.add_parser(name)
        s.add_argument("--model", type=Path, help="a Hugging Face Qwen3 checkpoint (default: see above)")
        s.add_argument("--dtype", default="bf16", choices=sorted(llama_cpp.GGUF_TYPES))
        s.add_argument("--threads", type=int)
        if name == "serve":
            s.add_argument("--port", type=int, default=8080)
            s.add_argument("--alias", default=MODEL_NAME)
        if name == "conformance":
            s.add_argument("--alias", default=MODEL_NAME)
            s.add_argument("--out", type=Path, default=REPO / "build" / "results" / "llama-server.xml")
            s.add_argument("pytest_args", nargs="*", help="more pytest arguments (after --)")
        if name == "serving":
            from harness.bench import configs

            s.add_argument("--config", choices=sorted(configs.CONFIGS), default="qwen3-1.7b")
            s.add_argument("--streams", default="1,8")
            s.add_argument("--tokens", type=int, default=64)
            s.add_argument("--out", type=Path)
    args = p.parse_args(argv)
    if args.command == "serve":
        serve(args)
    elif args.command == "conformance":
        raise SystemExit(conformance(args))
    else:
        from harness.results import write_result

        result = serving(args)
        table = serving_markdown(result)
        print(table)
        if args.out:
            write_result(args.out, result, table)


if __name__ == "__main__":
    main()
