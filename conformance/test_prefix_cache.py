"""The prefix cache as an OpenAI client meets it: a conversation's second turn reports in
usage.prompt_tokens_details.cached_tokens the full KV blocks it shares with the first, another cache_salt
shares nothing, --no-enable-prefix-caching never reports any, and /metrics counts queries and hits under this
project's names and vLLM's."""

from __future__ import annotations

import re
import uuid

import httpx
import openai
import pytest

from .conftest import MODEL
from .server_process import ServerProcess
from .test_errors import assert_openai_error
from .test_lifecycle import wait_until_idle

BLOCK = 16  # the server's KV block size


@pytest.fixture(scope="module")
def uncached_server(tmp_path_factory, server):  # after `server`: the demo checkpoint is already built
    with ServerProcess("--max-model-len", "1024", "--dtype", "f32", "--no-enable-prefix-caching",
                       log_path=tmp_path_factory.mktemp("server") / "uncached.log") as process:
        yield process


def conversation() -> list[list[dict]]:
    """Two turns behind a system prompt no other test sends (so nothing else warmed the cache for it)."""
    system = {"role": "system", "content": f"Session {uuid.uuid4().hex}. " + "You answer briefly and kindly. " * 12}
    first = [system, {"role": "user", "content": "What is a KV cache?"}]
    return [first, first + [{"role": "assistant", "content": "A store of keys and values."},
                            {"role": "user", "content": "And a prefix cache?"}]]


def prompt_ids(base_url: str, messages: list[dict]) -> list[int]:
    return httpx.post(f"{base_url}/tokenize", json={"model": MODEL, "messages": messages}, timeout=30).json()["tokens"]


def shared_full_blocks(first: list[int], second: list[int]) -> int:
    """Tokens of the full blocks of `first` (all of it is in the cache after a one-token answer) that `second`
    starts with, leaving `second`'s last token to compute."""
    common = 0
    while common < min(len(first), len(second) - 1) and first[common] == second[common]:
        common += 1
    return common // BLOCK * BLOCK


def cached_tokens(client: openai.OpenAI, messages: list[dict], **extra) -> int:
    answer = client.chat.completions.create(model=MODEL, messages=messages, max_tokens=1, temperature=0,
                                            extra_body=extra)
    return answer.usage.prompt_tokens_details.cached_tokens


def test_the_second_turn_reports_the_shared_full_blocks_as_cached(server, client):
    first, second = conversation()
    assert cached_tokens(client, first) == 0
    expected = shared_full_blocks(prompt_ids(server.base_url, first), prompt_ids(server.base_url, second))
    assert expected >= 6 * BLOCK
    assert cached_tokens(client, second) == expected
    assert cached_tokens(client, second, cache_salt="another tenant") == 0


def test_a_salted_conversation_shares_only_with_its_salt(server, client):
    first, second = conversation()
    assert cached_tokens(client, first, cache_salt="tenant-a") == 0
    assert cached_tokens(client, second, cache_salt="tenant-b") == 0
    assert cached_tokens(client, second, cache_salt="tenant-a") > 0


def test_the_stream_usage_chunk_and_completions_report_cached_tokens(server, client):
    prompt = [uuid.uuid4().int % 1000 + 4000] + [(11 * i) % 3000 + 200 for i in range(5 * BLOCK + 2)]
    first = client.completions.create(model=MODEL, prompt=prompt, max_tokens=2, temperature=0)
    assert first.usage.prompt_tokens_details.cached_tokens == 0
    chunks = list(client.completions.create(model=MODEL, prompt=prompt + [7, 8], max_tokens=2, temperature=0,
                                            stream=True, stream_options={"include_usage": True}))
    assert chunks[-1].usage.prompt_tokens_details.cached_tokens == 5 * BLOCK


def test_without_prefix_caching_nothing_is_cached(uncached_server):
    client = openai.OpenAI(base_url=f"{uncached_server.base_url}/v1", api_key="unused", max_retries=0, timeout=60)
    first, second = conversation()
    assert cached_tokens(client, first) == 0
    assert cached_tokens(client, second) == 0
    text = httpx.get(f"{uncached_server.base_url}/metrics", timeout=10).text
    assert 'enable_prefix_caching="False"' in text
    assert re.search(r"^infini_qwen3_prefix_cache_hits_total 0$", text, re.MULTILINE)


def counter(base_url: str, name: str) -> float:
    text = httpx.get(f"{base_url}/metrics", timeout=10).text
    found = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    assert found, f"{name} missing from /metrics"
    return float(found.group(1))


def test_metrics_count_queries_and_hits_under_both_names(server, client):
    base = server.base_url
    wait_until_idle(base)
    before = {name: counter(base, name) for name in ("infini_qwen3_prefix_cache_queries_total",
                                                     "infini_qwen3_prefix_cache_hits_total",
                                                     "vllm:prefix_cache_queries_total", "vllm:prefix_cache_hits_total")}
    first, second = conversation()
    cached_tokens(client, first)
    hit = cached_tokens(client, second)
    asked = len(prompt_ids(base, first)) + len(prompt_ids(base, second))
    wait_until_idle(base)
    for prefix in ("infini_qwen3_prefix_cache", "vllm:prefix_cache"):
        assert counter(base, f"{prefix}_queries_total") - before[f"{prefix}_queries_total"] == asked
        assert counter(base, f"{prefix}_hits_total") - before[f"{prefix}_hits_total"] == hit
    text = httpx.get(f"{base}/metrics", timeout=10).text
    blocks = counter(base, "infini_qwen3_kv_blocks_total")
    assert f'vllm:cache_config_info{{block_size="{BLOCK}",num_gpu_blocks="{int(blocks)}"' in text
    assert counter(base, "vllm:num_requests_running") == 0 and counter(base, "vllm:num_requests_waiting") == 0
    assert 0 <= counter(base, "vllm:kv_cache_usage_perc") <= 1


@pytest.mark.parametrize("salt", ["", 5, ["a"]])
def test_a_cache_salt_must_be_a_non_empty_string(http, salt):
    response = http.post("/v1/chat/completions", json={"model": MODEL, "messages": [{"role": "user", "content": "hi"}],
                                                       "cache_salt": salt})
    assert_openai_error(response, 400, param="cache_salt")
