"""The rest of the surface clients call: models.retrieve, vLLM's /tokenize and /detokenize, /version, the
x-request-id header and CORS (off unless --allowed-origins names the origin)."""

from __future__ import annotations

import openai
import pytest

from .conftest import ALLOWED_ORIGIN, MODEL
from .test_errors import assert_openai_error


def test_models_retrieve(client):
    model = client.models.retrieve(MODEL)
    assert model.id == MODEL and model.object == "model"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("gpt-4o")


def test_tokenize_counts_what_a_completion_runs(http, client):
    answer = http.post("/tokenize", json={"model": MODEL, "prompt": "Hello, world!"}).json()
    assert answer["tokens"] == [9707, 11, 1879, 0] and answer["count"] == 4 and answer["max_model_len"] == 256
    completion = client.completions.create(model=MODEL, prompt="Hello, world!", max_tokens=1)
    assert completion.usage.prompt_tokens == answer["count"]


def test_tokenize_messages_as_the_chat_endpoint_templates_them(http, client):
    messages = [{"role": "user", "content": "hi there"}]
    answer = http.post("/tokenize", json={"model": MODEL, "messages": messages}).json()
    chat = client.chat.completions.create(model=MODEL, messages=messages, max_tokens=1)
    assert answer["count"] == chat.usage.prompt_tokens == len(answer["tokens"])


def test_detokenize_round_trips(http):
    ids = http.post("/tokenize", json={"prompt": "你好，世界 🦙"}).json()["tokens"]
    assert http.post("/detokenize", json={"tokens": ids}).json() == {"prompt": "你好，世界 🦙"}


@pytest.mark.parametrize("path,body,param", [
    ("/tokenize", {"prompt": ["a", "b"]}, "prompt"),
    ("/tokenize", {"messages": []}, "messages"),
    ("/detokenize", {"tokens": [1, "x"]}, "tokens"),
    ("/detokenize", {"tokens": [10**9]}, "tokens"),
])
def test_bad_tokenize_bodies_are_400(http, path, body, param):
    assert_openai_error(http.post(path, json=body), 400, param=param)


def test_version(http):
    assert http.get("/version").json()["version"]


def test_request_id_is_echoed_or_made(http):
    assert http.get("/health", headers={"x-request-id": "abc-123"}).headers["x-request-id"] == "abc-123"
    made = http.post("/v1/completions", json={"prompt": "hi", "max_tokens": 1}).headers["x-request-id"]
    assert len(made) == 32
    unsafe = "a b;c"  # not echoed into a header
    assert http.get("/health", headers={"x-request-id": unsafe}).headers["x-request-id"] != unsafe


def test_cors_preflight_for_an_allowed_origin_only(http):
    preflight = {"access-control-request-method": "POST", "access-control-request-headers": "content-type"}
    allowed = http.options("/v1/chat/completions", headers={"origin": ALLOWED_ORIGIN, **preflight})
    assert allowed.status_code == 200 and allowed.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    other = http.options("/v1/chat/completions", headers={"origin": "http://evil.example", **preflight})
    assert "access-control-allow-origin" not in other.headers
    simple = http.get("/v1/models", headers={"origin": ALLOWED_ORIGIN})
    assert simple.headers["access-control-allow-origin"] == ALLOWED_ORIGIN


def test_cors_is_off_by_default(guarded_server):
    import httpx

    response = httpx.get(f"{guarded_server.base_url}/health", headers={"origin": ALLOWED_ORIGIN})
    assert "access-control-allow-origin" not in response.headers
