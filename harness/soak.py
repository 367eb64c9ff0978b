"""Soak test: drive a live server (CPU, demo checkpoint) for a bounded time with a mix of good streams, clients
that disconnect mid-stream, bad bodies, oversized bodies and idle sockets, then report requests served, errors by
class, the p95 inter-token latency of the good streams, KV blocks left in use and resident memory at start and end.

    python -m harness.soak [--seconds 600] [--out build/results/soak.json]      (tox -e soak)

Exit status 1 when a 5xx was answered, KV blocks stayed in use after the clients left, or the resident memory
grew by more than 10%."""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import socket
import sys
import time
from collections import Counter
from pathlib import Path

import httpx

from conformance.server_process import ServerProcess
from harness.bench.serving import pct

MODEL = "qwen3-demo"
BODY_LIMIT = 65536
CHAT = "/v1/chat/completions"


def resident_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def chat(max_tokens: int, stream: bool = True) -> dict:
    words = " ".join(random.choice(["tell", "me", "a", "story", "about", "cats", "and", "rain"]) for _ in range(12))
    return {"model": MODEL, "messages": [{"role": "user", "content": words}], "max_tokens": max_tokens,
            "stream": stream, "temperature": 1.0, "seed": random.randrange(1 << 30)}


class Soak:
    def __init__(self, base_url: str, port: int, deadline: float):
        self.base_url, self.port, self.deadline = base_url, port, deadline
        self.outcomes: Counter[str] = Counter()
        self.gaps: list[float] = []

    def running(self) -> bool:
        return time.monotonic() < self.deadline

    async def good_streams(self, http: httpx.AsyncClient) -> None:
        while self.running():
            async with http.stream("POST", CHAT, json=chat(32)) as response:
                last = time.perf_counter()
                async for line in response.aiter_lines():
                    now = time.perf_counter()
                    if line.startswith("data: {") and '"content"' in line:
                        self.gaps.append(now - last)
                    last = now
                self.outcomes[f"good {response.status_code}"] += 1

    async def disconnects(self, http: httpx.AsyncClient) -> None:
        while self.running():
            async with http.stream("POST", CHAT, json=chat(200)) as response:
                seen = 0
                async for _ in response.aiter_lines():
                    seen += 1
                    if seen >= random.randint(1, 8):
                        break  # leaving mid-stream closes the connection
                self.outcomes[f"disconnect {response.status_code}"] += 1

    async def bad_bodies(self, http: httpx.AsyncClient) -> None:
        bad = [b"{", b"[]", b'{"messages": 5}', b'{"messages": [{"role": "user", "content": "\\ud800"}]}',
               b'{"messages": [{"role": "user", "content": "hi"}], "top_k": 4294967297}',
               b'{"prompt": [99999999]}', bytes(random.randrange(256) for _ in range(64))]
        while self.running():
            path = random.choice([CHAT, "/v1/completions"])
            response = await http.post(path, content=random.choice(bad), headers={"content-type": "application/json"})
            self.outcomes[f"bad body {response.status_code}"] += 1
            await asyncio.sleep(0.05)

    async def oversized(self, http: httpx.AsyncClient) -> None:
        while self.running():
            body = {"model": MODEL, "messages": [{"role": "user", "content": "x" * (BODY_LIMIT + 10)}]}
            response = await http.post(CHAT, json=body)
            self.outcomes[f"oversized {response.status_code}"] += 1
            await asyncio.sleep(0.2)

    async def idle_sockets(self) -> None:
        while self.running():
            sockets = []
            for _ in range(20):
                sock = socket.create_connection(("127.0.0.1", self.port))
                sock.setblocking(False)
                sockets.append(sock)
            await asyncio.sleep(4)  # past the server's head timeout
            closed = 0
            for sock in sockets:
                try:
                    closed += sock.recv(1) == b""
                except BlockingIOError:
                    pass
                sock.close()
            self.outcomes["idle socket closed"] += closed
            self.outcomes["idle socket still open"] += len(sockets) - closed


async def drive(soak: Soak) -> None:
    async with httpx.AsyncClient(base_url=soak.base_url, timeout=120) as http:
        tasks = [soak.good_streams(http) for _ in range(6)] + [soak.disconnects(http) for _ in range(3)]
        tasks += [soak.bad_bodies(http), soak.oversized(http), soak.idle_sockets()]
        await asyncio.gather(*tasks)


def metric(base_url: str, name: str) -> float:
    for line in httpx.get(f"{base_url}/metrics", timeout=10).text.splitlines():
        if line.startswith(f"infini_qwen3_{name} "):
            return float(line.split()[1])
    return float("nan")


def server_errors(base_url: str) -> int:
    text = httpx.get(f"{base_url}/metrics", timeout=10).text
    return sum(int(float(line.split()[-1])) for line in text.splitlines()
               if line.startswith("infini_qwen3_requests_total{") and 'status="5' in line)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=600)
    parser.add_argument("--out", type=Path, default=Path("build/results/soak.json"))
    args = parser.parse_args(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    server = ServerProcess("--max-batch", "16", "--max-queue", "64", "--max-model-len", "512",
                           "--max-body-bytes", str(BODY_LIMIT), "--request-head-timeout", "2",
                           log_path=args.out.with_suffix(".server.log")).start()
    try:
        httpx.post(f"{server.base_url}{CHAT}", json=chat(8, stream=False), timeout=120)  # warm up
        rss_start = resident_mib(server.process.pid)
        soak = Soak(server.base_url, server.port, time.monotonic() + args.seconds)
        asyncio.run(drive(soak))
        deadline = time.monotonic() + 30
        while metric(server.base_url, "requests_running") and time.monotonic() < deadline:
            time.sleep(0.2)
        report = {
            "seconds": args.seconds, "outcomes": dict(sorted(soak.outcomes.items())),
            "requests_served": sum(n for k, n in soak.outcomes.items() if not k.startswith("idle")),
            "server_5xx": server_errors(server.base_url),
            "itl_p95_s": pct(soak.gaps, 95),
            "kv_blocks_used_after": metric(server.base_url, "kv_blocks_used"),
            "rss_mib_start": rss_start, "rss_mib_end": resident_mib(server.process.pid),
        }
        report["rss_growth"] = report["rss_mib_end"] / report["rss_mib_start"] - 1
    finally:
        server.stop()
    args.out.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    ok = report["server_5xx"] == 0 and report["kv_blocks_used_after"] == 0 and report["rss_growth"] < 0.10
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
