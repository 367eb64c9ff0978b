"""Through the server: N concurrent streaming openai clients; time to first token, inter-token latency and
output tokens/s, as a user of the endpoint sees them (sampling with the checkpoint's generation_config.json)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import numpy as np

from conformance.server_process import ServerProcess

PROMPT = "Benchmark prompt: describe the InfiniCore operator library in detail. " * 4


async def one_stream(client, model: str, max_tokens: int, seed: int) -> dict:
    start = time.perf_counter()
    arrivals, tokens, cached = [], 0, 0
    stream = await client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": PROMPT}], max_tokens=max_tokens, stream=True,
        stream_options={"include_usage": True}, seed=seed)  # the checkpoint's sampling defaults, as users get
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            arrivals.append(time.perf_counter())
        if chunk.usage:
            tokens = chunk.usage.completion_tokens
            cached = chunk.usage.prompt_tokens_details.cached_tokens
    return {"ttft": arrivals[0] - start if arrivals else None, "itl": np.diff(arrivals).tolist(), "tokens": tokens,
            "cached_tokens": cached}


def pct(values, q) -> float | None:
    return float(np.percentile(values, q)) if values else None


async def concurrent(client, model: str, streams: int, max_tokens: int) -> dict:
    start = time.perf_counter()
    results = await asyncio.gather(*(one_stream(client, model, max_tokens, i) for i in range(streams)))
    wall = time.perf_counter() - start
    ttfts = [r["ttft"] for r in results if r["ttft"] is not None]
    itls = [x for r in results for x in r["itl"]]

    return {"streams": streams, "ttft_p50": pct(ttfts, 50), "ttft_p95": pct(ttfts, 95), "itl_p50": pct(itls, 50),
            "itl_p95": pct(itls, 95), "output_tokens_per_s": sum(r["tokens"] for r in results) / wall,
            "cached_tokens": sum(r["cached_tokens"] for r in results)}


def serve_and_measure(model_dir: Path, device: str, dtype: str, stream_counts: list[int], max_tokens: int,
                      log_dir: Path, cuda_graphs: str = "on", ndev: int = 1) -> list[dict]:
    context = 512 + max_tokens
    server = ServerProcess("--model", str(model_dir), "--served-model-name", "bench", "--dtype", dtype,
                           "--max-batch", str(max(stream_counts)), "--max-model-len", str(context),
                           "--max-step-tokens", "2048", "--cuda-graphs", cuda_graphs, "--ndev", str(ndev),
                           device=device,
                           log_path=log_dir / "bench-server.log")
    server.start()
    try:
        return asyncio.run(measure_all(server.base_url, stream_counts, max_tokens))
    finally:
        server.stop()


async def measure_all(base_url: str, stream_counts: list[int], max_tokens: int, model: str = "bench",
                      api_key: str = "bench") -> list[dict]:
    import openai

    async with openai.AsyncOpenAI(base_url=f"{base_url}/v1", api_key=api_key, max_retries=0, timeout=3600) as client:
        await concurrent(client, model, 1, 4)  # warm-up: descriptors, caches
        return [await concurrent(client, model, n, max_tokens) for n in stream_counts]


def markdown(rows: list[dict]) -> str:
    lines = ["| streams | TTFT p50 s | TTFT p95 s | ITL p50 ms | ITL p95 ms | output tokens/s | cached prompt tokens |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        def ms(v):
            return f"{v * 1e3:.1f}" if v is not None else "-"

        def s(v):
            return f"{v:.3f}" if v is not None else "-"

        lines.append(f"| {r['streams']} | {s(r['ttft_p50'])} | {s(r['ttft_p95'])} | {ms(r['itl_p50'])} | "
                     f"{ms(r['itl_p95'])} | {r['output_tokens_per_s']:.1f} | {r.get('cached_tokens', 0)} |")
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    """python -m harness.bench serving --base-url URL --model NAME [--api-key KEY] [--streams 1,8] [--tokens 64]:
    the serving benchmark against any OpenAI-compatible server already running (so two servers serving the same
    checkpoint can be put side by side in one run, one after the other)."""
    import argparse

    from harness.results import write_result

    p = argparse.ArgumentParser(prog="python -m harness.bench serving", description=main.__doc__.splitlines()[0])
    p.add_argument("--base-url", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--api-key", default="bench")
    p.add_argument("--streams", default="1,8")
    p.add_argument("--tokens", type=int, default=64)
    p.add_argument("--out", type=Path)
    args = p.parse_args(argv)
    rows = asyncio.run(measure_all(args.base_url.rstrip("/"), [int(n) for n in args.streams.split(",")],
                                   args.tokens, args.model, args.api_key))
    table = markdown(rows)
    print(table)
    if args.out:
        write_result(args.out, {"base_url": args.base_url, "model": args.model, "rows": rows}, table)
