"""python -m harness.bench multiturn [--config qwen3-1.7b] [--users 3] [--turns 3] [--system-tokens 2000]

A multi-turn chat workload through the server, with the prefix cache on and off in the same run: several users
share one long system prompt (an agent's tool descriptions, say) and hold conversations of several turns, each
turn resending the whole history, as chat clients do. Users arrive one after another (each after the previous
one's first answer), then talk concurrently. Reports per turn the time to first token, the whole workload's
wall time and throughput, and the hit rate from usage.prompt_tokens_details.cached_tokens."""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from conformance.server_process import ServerProcess
from harness.results import write_result
from infini_qwen3.build import BUILD_ROOT

from . import configs

QUESTIONS = ["Which tool lists the files of a folder?", "Use it on the folder /data, then summarize.",
             "Now compare two of those files.", "What would you check next?", "Write the final report."]


def system_prompt(tokens: int) -> str:
    """About `tokens` tokens of tool descriptions (roughly 12 tokens per line with the Qwen3 tokenizer)."""
    lines = [f"Tool {i}: call `tool_{i}(path, depth={i % 7})` to inspect item {i * 37 % 1000} of the workspace."
             for i in range(max(1, tokens // 20))]
    return "You are an agent with these tools.\n" + "\n".join(lines)


async def one_turn(client, messages: list[dict], max_tokens: int) -> dict:
    start = time.perf_counter()
    first, text, usage = None, [], None
    stream = await client.chat.completions.create(model="bench", messages=messages, max_tokens=max_tokens,
                                                  temperature=0, stream=True, stream_options={"include_usage": True})
    async for chunk in stream:
        if chunk.choices and (chunk.choices[0].delta.content or getattr(chunk.choices[0].delta,
                                                                         "reasoning_content", None)):
            first = first or time.perf_counter()
            text.append(chunk.choices[0].delta.content or "")
        if chunk.usage:
            usage = chunk.usage
    return {"ttft": (first or time.perf_counter()) - start, "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "cached_tokens": usage.prompt_tokens_details.cached_tokens, "reply": "".join(text)}


async def user(client, index: int, system: str, turns: int, max_tokens: int, arrived: list[asyncio.Event]) -> list:
    if index:
        await arrived[index - 1].wait()
    messages = [{"role": "system", "content": system}]
    results = []
    for turn in range(turns):
        messages.append({"role": "user", "content": f"(user {index}) {QUESTIONS[turn % len(QUESTIONS)]}"})
        result = await one_turn(client, messages, max_tokens)
        results.append({"user": index, "turn": turn + 1, **{k: v for k, v in result.items() if k != "reply"}})
        messages.append({"role": "assistant", "content": result["reply"]})
        if turn == 0:
            arrived[index].set()
    return results


async def workload(base_url: str, users: int, turns: int, system: str, max_tokens: int) -> dict:
    import openai

    async with openai.AsyncOpenAI(base_url=f"{base_url}/v1", api_key="bench", max_retries=0, timeout=7200) as client:
        await one_turn(client, [{"role": "user", "content": "warm up"}], 2)
        arrived = [asyncio.Event() for _ in range(users)]
        start = time.perf_counter()
        per_user = await asyncio.gather(*(user(client, i, system, turns, max_tokens, arrived) for i in range(users)))
        wall = time.perf_counter() - start
    turns_done = [t for u in per_user for t in u]
    prompt = sum(t["prompt_tokens"] for t in turns_done)
    return {"wall_s": wall, "turns": turns_done, "prompt_tokens": prompt,
            "cached_tokens": sum(t["cached_tokens"] for t in turns_done),
            "hit_rate": sum(t["cached_tokens"] for t in turns_done) / prompt,
            "output_tokens_per_s": sum(t["completion_tokens"] for t in turns_done) / wall,
            "turns_per_min": len(turns_done) / wall * 60,
            "ttft_by_turn": {turn: statistics.median(t["ttft"] for t in turns_done if t["turn"] == turn)
                             for turn in range(1, turns + 1)}}


def serve_workload(model_dir: Path, args, caching: bool, log_dir: Path) -> dict:
    flag = "--enable-prefix-caching" if caching else "--no-enable-prefix-caching"
    server = ServerProcess("--model", str(model_dir), "--served-model-name", "bench", "--dtype", args.dtype,
                           "--max-batch", str(args.users), "--max-model-len", str(args.context), flag,
                           "--max-step-tokens", str(args.max_step_tokens), device=args.device,
                           log_path=log_dir / f"multiturn-{'on' if caching else 'off'}.log")
    server.start()
    try:
        return asyncio.run(workload(server.base_url, args.users, args.turns, system_prompt(args.system_tokens),
                                    args.max_tokens))
    finally:
        server.stop()


def prefill_after_cached_prefix(model_dir: Path, args, past: int, tokens: int, repeats: int = 3) -> dict:
    """Tokens/s of prefilling `tokens` new tokens cold, and after `past` tokens already in the cache (what a
    prefix hit leaves to compute), alternating the two so the machine's state hits both alike."""
    from harness.fixtures.blocks import slot_blocks
    from infini_qwen3.model import Qwen3Model, StepRequest

    from .measure import GREEDY, prompts

    with Qwen3Model(model_dir, device=args.device, dtype=args.dtype, max_model_len=past + tokens,
                    kv_cache_tokens=2 * (past + tokens), max_step_tokens=max(past, tokens)) as model:
        head, tail = prompts(2, max(past, tokens), model.vocab_size)
        cold_blocks, warm_blocks = slot_blocks(model, 0), slot_blocks(model, 1)
        model.infer([StepRequest(head[:past], 0, warm_blocks, GREEDY)])
        cold, warm = [], []
        for _ in range(repeats + 1):  # the first round warms up
            start = time.perf_counter()
            model.infer([StepRequest(tail[:tokens], 0, cold_blocks, GREEDY)])
            cold.append(time.perf_counter() - start)
            start = time.perf_counter()
            model.infer([StepRequest(tail[:tokens], past, warm_blocks, GREEDY)])
            warm.append(time.perf_counter() - start)
    return {"past": past, "tokens": tokens, "cold_tokens_per_s": tokens / statistics.median(cold[1:]),
            "after_past_tokens_per_s": tokens / statistics.median(warm[1:])}


def markdown(result: dict) -> str:
    on, off = result["cache_on"], result["cache_off"]
    lines = ["| prefix cache | wall s | turns/min | output tokens/s | hit rate | " +
             " | ".join(f"TTFT turn {t} s" for t in on["ttft_by_turn"]) + " |",
             "|---" * (5 + len(on["ttft_by_turn"])) + "|"]
    for name, run in (("on", on), ("off", off)):
        ttfts = " | ".join(f"{v:.2f}" for v in run["ttft_by_turn"].values())
        lines.append(f"| {name} | {run['wall_s']:.1f} | {run['turns_per_min']:.2f} | {run['output_tokens_per_s']:.2f} "
                     f"| {run['hit_rate']:.2f} | {ttfts} |")
    ratios = result["ratios"]
    lines.append(f"\nSecond-turn TTFT with/without the cache: {ratios['ttft_turn2']:.3f}x; throughput (turns per "
                 f"minute) with/without: {ratios['throughput']:.2f}x.")
    past = result.get("prefill_after_past")
    if past:
        lines.append(f"Prefill of {past['tokens']} tokens: cold {past['cold_tokens_per_s']:.1f} tokens/s, after "
                     f"{past['past']} cached tokens {past['after_past_tokens_per_s']:.1f} tokens/s.")
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(prog="python -m harness.bench multiturn", description=__doc__.splitlines()[0])
    p.add_argument("--config", choices=sorted(configs.CONFIGS), default="qwen3-1.7b")
    p.add_argument("--model", help="an existing checkpoint directory instead of --config")
    p.add_argument("--device", default="cpu", choices=["cpu", "nvidia"])
    p.add_argument("--dtype", default="bf16", choices=["bf16", "f16", "f32"])
    p.add_argument("--users", type=int, default=3)
    p.add_argument("--turns", type=int, default=3)
    p.add_argument("--system-tokens", type=int, default=2000)
    p.add_argument("--max-tokens", type=int, default=24, help="tokens per answer")
    p.add_argument("--context", type=int, default=4096)
    p.add_argument("--max-step-tokens", type=int, default=512)
    p.add_argument("--past-prefill", default="2000x256",
                   help="PASTxNEW: also time NEW prompt tokens cold and after PAST cached ones (empty: skip)")
    p.add_argument("--out", type=Path)
    args = p.parse_args(argv)
    model_dir = Path(args.model) if args.model else configs.build(args.config, BUILD_ROOT / "bench", args.dtype)
    args.ndev = 1
    result = configs.run_info(args, model_dir)
    result["workload"] = {"users": args.users, "turns": args.turns, "system_tokens": args.system_tokens,
                          "max_tokens": args.max_tokens}
    log_dir = Path(tempfile.mkdtemp(prefix="bench-multiturn-"))
    result["cache_off"] = serve_workload(model_dir, args, False, log_dir)
    result["cache_on"] = serve_workload(model_dir, args, True, log_dir)
    on, off = result["cache_on"], result["cache_off"]
    result["ratios"] = {"ttft_turn2": on["ttft_by_turn"][2] / off["ttft_by_turn"][2] if args.turns > 1 else None,
                        "throughput": on["turns_per_min"] / off["turns_per_min"]}
    if args.past_prefill:
        past, tokens = (int(x) for x in args.past_prefill.lower().split("x"))
        result["prefill_after_past"] = prefill_after_cached_prefix(model_dir, args, past, tokens)
    table = markdown(result)
    print(table)
    if args.out:
        write_result(args.out, result, table)
