"""The paged KV cache as a server user meets it: the context is the checkpoint's whole window while KV memory is
set by --kv-cache-memory (not by requests x context), and a prompt of 16,000 tokens streams."""

from __future__ import annotations

import httpx
import openai
import pytest

from .conftest import MODEL
from .server_process import ServerProcess
from .test_lifecycle import metric, wait_until_idle

KV_MEMORY = 48 * 2**20
# The demo checkpoint: 2 layers x (K, V) x 2 KV heads x 32 dims x 2 bytes (bf16) x 16 tokens per block.
BLOCK_BYTES = 2 * 2 * 2 * 32 * 2 * 16


@pytest.fixture(scope="module")
def paged_server(tmp_path_factory, server):  # after `server`: the demo checkpoint is already built
    with ServerProcess("--max-batch", "64", "--max-model-len", "40960", "--kv-cache-memory", "48MiB",
                       "--max-step-tokens", "4096",
                       log_path=tmp_path_factory.mktemp("server") / "paged.log") as process:
        yield process


def test_full_context_with_kv_memory_set_by_the_option(paged_server):
    assert metric(paged_server.base_url, "kv_blocks_total") == KV_MEMORY // BLOCK_BYTES
    assert metric(paged_server.base_url, "kv_blocks_used") == 0
    # (64 requests x 40960 tokens as fixed slots would have been 64 x 20 MiB, far beyond this 48 MiB pool.)


def test_a_16000_token_prompt_streams(paged_server):
    client = openai.OpenAI(base_url=f"{paged_server.base_url}/v1", api_key="unused", max_retries=0, timeout=600)
    prompt = [(7 * i) % 5000 + 100 for i in range(16000)]
    stream = client.completions.create(model=MODEL, prompt=prompt, max_tokens=4, stream=True, temperature=0,
                                       stream_options={"include_usage": True})
    chunks = list(stream)
    text_chunks = [c for c in chunks if c.choices]
    assert len(text_chunks) >= 1 and text_chunks[-1].choices[0].finish_reason == "length"
    assert chunks[-1].usage.prompt_tokens == 16000 and chunks[-1].usage.completion_tokens == 4
    wait_until_idle(paged_server.base_url)
    assert metric(paged_server.base_url, "kv_blocks_used") == 0


def test_a_prompt_beyond_the_context_is_rejected(paged_server):
    body = {"model": MODEL, "prompt": [5] * 40960, "max_tokens": 1}
    response = httpx.post(f"{paged_server.base_url}/v1/completions", json=body, timeout=60)
    assert response.status_code == 400


def test_a_7_mb_body_delays_no_other_client(paged_server):
    """Parsing and tokenizing a huge body happen off the event loop (and a prompt too long to fit whatever its
    tokens is refused before tokenizing): /health and a running stream keep their pace meanwhile."""
    import threading
    import time

    base = paged_server.base_url
    huge = {"model": MODEL, "messages": [{"role": "user", "content": "lorem ipsum dolor sit amet " * 260000}],
            "max_tokens": 4}
    raw = httpx.Request("POST", "/", json=huge).content
    assert 6_500_000 < len(raw) < 8 * 2**20
    health, statuses, gaps, stop = [], [], [], threading.Event()

    def poll_health():  # statuses are checked in the test's own thread: a failed assert here would only warn
        with httpx.Client(base_url=base, timeout=10) as http:
            while not stop.is_set():
                start = time.perf_counter()
                statuses.append(http.get("/health").status_code)
                health.append(time.perf_counter() - start)
                time.sleep(0.01)

    def stream():
        body = {"model": MODEL, "prompt": "once upon a time", "max_tokens": 400, "stream": True, "temperature": 0}
        with httpx.Client(base_url=base, timeout=60) as http:
            with http.stream("POST", "/v1/completions", json=body) as response:
                last = time.perf_counter()
                for line in response.iter_lines():
                    now = time.perf_counter()
                    if line.startswith("data: ") and not stop.is_set():
                        gaps.append(now - last)
                    last = now

    threads = [threading.Thread(target=poll_health), threading.Thread(target=stream)]
    for t in threads:
        t.start()
    time.sleep(1.0)  # both under way
    with httpx.Client(base_url=base, timeout=120) as http:
        response = http.post("/v1/chat/completions", content=raw, headers={"content-type": "application/json"})
    time.sleep(0.3)
    stop.set()
    for t in threads:
        t.join(timeout=120)
    assert response.status_code == 400 and response.json()["error"]["code"] == "context_length_exceeded"
    assert statuses and set(statuses) == {200}, sorted(set(statuses))
    health.sort()
    assert health[int(0.99 * (len(health) - 1))] < 0.1, health[-5:]
    assert gaps and max(gaps) < 0.2, sorted(gaps)[-5:]
