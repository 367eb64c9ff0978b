"""Health, models, metrics, auth, a full queue, and clients that leave mid-request."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import httpx
import openai
import pytest

from .conftest import API_KEY, MODEL
from .test_errors import assert_openai_error

LONG = {"model": MODEL, "messages": [{"role": "user", "content": "go on"}], "max_tokens": 3000}


def metric(base_url: str, name: str) -> float:
    text = httpx.get(f"{base_url}/metrics", timeout=10).text
    found = re.search(rf"^infini_qwen3_{name} (\S+)$", text, re.MULTILINE)
    assert found, f"{name} missing from /metrics"
    return float(found.group(1))


def wait_until_idle(base_url: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if metric(base_url, "requests_running") == 0 and metric(base_url, "requests_waiting") == 0:
            return
        time.sleep(0.05)
    raise AssertionError("requests still hold KV blocks after their clients left")


def test_health_was_503_while_loading_then_200(server):
    assert server.health_seen[-1] == 200
    assert 503 in server.health_seen, f"statuses seen while starting: {sorted(set(server.health_seen))}"


def test_models_lists_the_served_demo_model(client):
    models = client.models.list().data
    assert [m.id for m in models] == [MODEL]
    assert "demo" in models[0].model_extra["description"]


def test_metrics_in_prometheus_text(server, client):
    before = metric(server.base_url, "generation_tokens_total")
    client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}], max_tokens=3)
    text = httpx.get(f"{server.base_url}/metrics").text
    assert metric(server.base_url, "generation_tokens_total") == before + 3
    assert 'infini_qwen3_requests_total{endpoint="/v1/chat/completions",status="200"}' in text
    for name in ("time_to_first_token_seconds_bucket", "time_per_output_token_seconds_count", "kv_blocks_total",
                 "kv_blocks_used", "kv_preemptions",
                 "kv_cache_usage_ratio", "requests_waiting", "prompt_tokens_total"):
        assert f"infini_qwen3_{name}" in text


def guarded_http(server, key: str | None = API_KEY, **options) -> httpx.Client:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.Client(base_url=server.base_url, headers=headers, **{"timeout": 60, **options})


# The disconnect cases run on the guarded server: its 4096-token context makes a 3000-token request that is
# certain to be still running when the client leaves, and its single slot shows the slot really came back.
def test_stream_disconnect_frees_the_slot_at_once(guarded_server):
    with guarded_http(guarded_server) as http:
        with http.stream("POST", "/v1/chat/completions", json={**LONG, "stream": True}) as response:
            lines = response.iter_lines()
            for _ in range(4):
                next(lines)
            assert metric(guarded_server.base_url, "requests_running") == 1
    wait_until_idle(guarded_server.base_url)


def test_non_stream_disconnect_frees_the_slot(guarded_server):
    with guarded_http(guarded_server, timeout=httpx.Timeout(60, read=0.5)) as http:
        with pytest.raises(httpx.ReadTimeout):
            http.post("/v1/chat/completions", json=LONG)
    wait_until_idle(guarded_server.base_url)


def test_server_answers_after_clients_left(guarded_server):
    with guarded_http(guarded_server) as http:
        body = {"model": MODEL, "messages": [{"role": "user", "content": "still there?"}], "max_tokens": 2}
        assert http.post("/v1/chat/completions", json=body).json()["usage"]["completion_tokens"] == 2


def test_api_key_is_required_on_v1_routes(guarded_server):
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}
    with guarded_http(guarded_server, None) as anonymous, guarded_http(guarded_server, "wrong") as wrong, \
            guarded_http(guarded_server) as right:
        assert_openai_error(anonymous.post("/v1/chat/completions", json=body), 401, code="invalid_api_key")
        assert_openai_error(wrong.post("/chat/completions", json=body), 401, code="invalid_api_key")
        assert_openai_error(anonymous.get("/v1/models"), 401)
        assert right.post("/v1/chat/completions", json=body).status_code == 200
        assert anonymous.get("/health").status_code == 200  # health and metrics stay open, as in vLLM
        assert anonymous.get("/metrics").status_code == 200
    sdk = openai.OpenAI(base_url=f"{guarded_server.base_url}/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        sdk.models.list()


def test_full_queue_is_429_server_busy(guarded_server):
    """One slot, a queue of one: a third concurrent request is refused at once, not left hanging."""
    with guarded_http(guarded_server) as http:
        with http.stream("POST", "/v1/chat/completions", json={**LONG, "stream": True}) as running:
            lines = running.iter_lines()  # kept: a dropped line iterator closes the stream (a disconnect)
            next(lines)  # holds the slot
            with http.stream("POST", "/v1/chat/completions", json={**LONG, "stream": True}) as waiting:
                assert waiting.status_code == 200  # queued behind the first
                error = assert_openai_error(http.post("/v1/chat/completions", json=LONG), 429, code="server_busy")
                assert error["type"] == "rate_limit_error"
                assert metric(guarded_server.base_url, "requests_running") == 1
                assert metric(guarded_server.base_url, "requests_waiting") == 1
    wait_until_idle(guarded_server.base_url)


def test_a_request_that_can_never_fit_the_queue_is_400_not_429(guarded_server):
    """429 means "busy now, retry"; more choices than the server ever queues would be retried forever."""
    with guarded_http(guarded_server) as http:
        body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2, "n": 2}
        error = assert_openai_error(http.post("/v1/chat/completions", json=body), 400, param="n")
        assert "queues at most 1" in error["message"]


def test_an_empty_api_key_refuses_to_start():
    for args, env in ((["--api-key", ""], {}), ([], {"INFINI_QWEN3_API_KEY": " "})):
        run = subprocess.run([sys.executable, "-m", "infini_qwen3", "serve", "--port", "0", *args],
                             env={**os.environ, **env}, capture_output=True, text=True, timeout=120)
        assert run.returncode != 0 and "API_KEY" in run.stdout + run.stderr, run.stdout + run.stderr
