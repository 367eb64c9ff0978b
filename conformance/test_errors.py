"""Every bad input gets the OpenAI error body with the right status, never a 5xx, and the server keeps serving."""

from __future__ import annotations

import openai
import pytest

from .conftest import MODEL

CHAT = "/v1/chat/completions"
COMPLETIONS = "/v1/completions"
OK_MESSAGES = [{"role": "user", "content": "hi"}]


def assert_openai_error(response, status: int, param=..., code=...):
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert isinstance(error["message"], str) and error["message"]
    assert error["type"] == ("invalid_request_error" if status < 500 and status != 429 else error["type"])
    if param is not ...:
        assert error["param"] == param
    if code is not ...:
        assert error["code"] == code
    return error


def chat(**fields):
    return {"model": MODEL, "messages": OK_MESSAGES, "max_tokens": 2, **fields}


BAD_CHAT = [
    ({"model": MODEL}, "messages"),
    (chat(messages=[]), "messages"),
    (chat(messages="hi"), "messages"),
    (chat(messages=[{"role": "wizard", "content": "hi"}]), "messages"),
    (chat(messages=[{"role": "user"}]), "messages"),
    (chat(messages=[{"role": "user", "content": 5}]), "messages"),
    (chat(messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]), "messages"),
    (chat(messages=["hi"]), "messages"),
    (chat(temperature=2.5), "temperature"),
    (chat(temperature=-0.1), "temperature"),
    (chat(temperature="hot"), "temperature"),
    (chat(top_p=0), "top_p"),
    (chat(top_p=1.5), "top_p"),
    (chat(top_k=-2), "top_k"),
    (chat(n=0), "n"),
    (chat(n=1000), "n"),
    (chat(max_tokens=0), "max_tokens"),
    (chat(max_tokens=2.5), "max_tokens"),
    (chat(max_tokens=True), "max_tokens"),
    (chat(max_completion_tokens=-1), "max_completion_tokens"),
    (chat(presence_penalty=3), "presence_penalty"),
    (chat(frequency_penalty=-2.5), "frequency_penalty"),
    (chat(stop=["a", "b", "c", "d", "e"]), "stop"),
    (chat(stop=""), "stop"),
    (chat(stop=[1, 2]), "stop"),
    (chat(seed="x"), "seed"),
    (chat(stream="yes"), "stream"),
    (chat(stream_options={"include_usage": True}), "stream_options"),
    (chat(stream=True, stream_options=[]), "stream_options"),
    (chat(chat_template_kwargs={"enable_thinking": "no"}), "chat_template_kwargs"),
    (chat(chat_template_kwargs=[1]), "chat_template_kwargs"),
    (chat(model=42), "model"),
    (chat(logit_bias={"x": 5}), "logit_bias"),
    (chat(logit_bias={"1": 200}), "logit_bias"),
    (chat(logit_bias=[1]), "logit_bias"),
    (chat(logit_bias={"999999999": 1}), "logit_bias"),
    (chat(top_logprobs=2), "top_logprobs"),
    (chat(logprobs=True, top_logprobs=21), "top_logprobs"),
    (chat(logprobs="yes"), "logprobs"),
    (chat(repetition_penalty=0), "repetition_penalty"),
    (chat(min_p=1.5), "min_p"),
    (chat(response_format={"type": "yaml"}), "response_format"),
    (chat(response_format={"type": "json_schema", "json_schema": {"schema": "object"}}), "response_format"),
    (chat(tools="get_weather"), "tools"),
    (chat(tools=[{"type": "function"}]), "tools"),
    (chat(tools=[{"type": "function", "function": {"name": ""}}]), "tools"),
    (chat(tools=[{"type": "retrieval", "function": {"name": "f"}}]), "tools"),
    (chat(tools=[{"type": "function", "function": {"name": "f", "parameters": "none"}}]), "tools"),
    (chat(tool_choice="required"), "tool_choice"),
    (chat(tools=[{"type": "function", "function": {"name": "f"}}], tool_choice="sometimes"), "tool_choice"),
    (chat(tools=[{"type": "function", "function": {"name": "f"}}],
          tool_choice={"type": "function", "function": {"name": "g"}}), "tool_choice"),
    (chat(messages=[{"role": "assistant", "tool_calls": [{"type": "function", "function": {"name": 3}}]}]),
     "messages"),
    (chat(logit_bias={"\u0663": 1}), "logit_bias"),  # an Arabic-Indic digit: int() takes it, a token id is ASCII
    (chat(logit_bias={" 5": 1}), "logit_bias"),
    (chat(logit_bias={"1_0": 1}), "logit_bias"),
    (chat(top_k=2**32 + 1), "top_k"),  # wrapped to 1 (greedy) once
    (chat(top_k=10**6), "top_k"),  # beyond the vocabulary
    (chat(tools=[{"type": "function", "function": {"name": "f"}}],
          tool_choice={"type": "function", "function": "f"}), "tool_choice"),
]


@pytest.mark.parametrize("body,param", BAD_CHAT, ids=[p + str(i) for i, (_, p) in enumerate(BAD_CHAT)])
def test_invalid_chat_bodies_are_400_naming_the_field(http, body, param):
    assert_openai_error(http.post(CHAT, json=body), 400, param=param)


@pytest.mark.parametrize("body,param", [
    ({"model": MODEL}, "prompt"),
    ({"prompt": ""}, "prompt"),
    ({"prompt": []}, "prompt"),
    ({"prompt": [1, "a"]}, "prompt"),
    ({"prompt": [-1]}, "prompt"),
    ({"prompt": [999999999]}, "prompt"),
    ({"prompt": {"text": "a"}}, "prompt"),
    ({"prompt": "a", "echo": "yes"}, "echo"),
    ({"prompt": "a", "best_of": 3}, "best_of"),
    ({"prompt": "a", "suffix": "b"}, "suffix"),
    ({"prompt": "a", "stop_token_ids": [999999999]}, "stop_token_ids"),
    ({"prompt": "a", "logprobs": 21}, "logprobs"),
    ({"prompt": "a", "logprobs": True}, "logprobs"),
])
def test_invalid_completion_bodies_are_400(http, body, param):
    assert_openai_error(http.post(COMPLETIONS, json=body), 400, param=param)


@pytest.mark.parametrize("raw", [b"{", b"not json", b"[1, 2]", b"", b"\xff\xfe", b'"text"', b"null"])
def test_malformed_json_is_400(http, raw):
    assert_openai_error(http.post(CHAT, content=raw, headers={"content-type": "application/json"}), 400)


def test_unknown_model_is_404(http):
    assert_openai_error(http.post(CHAT, json=chat(model="gpt-4o")), 404, param="model", code="model_not_found")


def test_context_length_exceeded(http):
    long_prompt = [{"role": "user", "content": "word " * 400}]  # --max-model-len 256
    assert_openai_error(http.post(CHAT, json=chat(messages=long_prompt)), 400, param="messages",
                        code="context_length_exceeded")
    assert_openai_error(http.post(CHAT, json=chat(max_tokens=250)), 400, param="messages",
                        code="context_length_exceeded")
    assert_openai_error(http.post(COMPLETIONS, json={"prompt": "hi", "max_tokens": 1000}), 400, param="prompt",
                        code="context_length_exceeded")


def test_oversized_body_is_413(http):
    body = chat(messages=[{"role": "user", "content": "x" * 70_000}])  # --max-body-bytes 65536
    assert_openai_error(http.post(CHAT, json=body), 413)


def test_unknown_route_and_method_use_the_error_shape(http):
    assert http.get("/v1/nothing-here").json()["error"]["code"] == "not_found"
    assert http.get(CHAT).status_code == 405 and "error" in http.get(CHAT).json()


def test_sdk_raises_bad_request_error(client):
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=MODEL, messages=OK_MESSAGES, temperature=5)
    assert info.value.status_code == 400 and "temperature" in str(info.value)
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="nope", messages=OK_MESSAGES)


@pytest.mark.parametrize("raw", [
    b'{"messages": [{"role": "user", "content": "hi \\ud800"}], "max_tokens": 2}',
    b'{"messages": [{"role": "user", "content": "hi"}], "model": "\\udfff", "max_tokens": 2}',
    b'{"messages": [{"role": "user", "content": "hi"}], "stop": ["\\ud83d"], "max_tokens": 2}',
    b'{"messages": [{"role": "user", "content": "hi"}], "tools": [{"type": "function", "function": '
    b'{"name": "\\ud800"}}], "max_tokens": 2}',
])
def test_lone_surrogates_anywhere_are_400(http, raw):
    assert_openai_error(http.post(CHAT, content=raw, headers={"content-type": "application/json"}), 400)
    assert http.post(CHAT, json=chat()).status_code == 200  # and the server keeps serving


def test_a_completion_prompt_with_a_lone_surrogate_is_400(http):
    raw = b'{"prompt": "abc \\udc00 def", "max_tokens": 2}'
    assert_openai_error(http.post(COMPLETIONS, content=raw, headers={"content-type": "application/json"}), 400)


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_only_json_bodies_are_accepted(http, content_type):
    """A web page's "simple" cross-origin POST (no preflight) cannot start a generation."""
    headers = {"content-type": content_type} if content_type else {}
    raw = b'{"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}'
    response = http.post(CHAT, content=raw, headers=headers)
    assert response.status_code == 415 and response.json()["error"]["type"] == "invalid_request_error"


def test_a_trailing_slash_is_404_not_a_redirect_to_the_host_header(http):
    response = http.post(CHAT + "/", json=chat(), headers={"host": "evil.example"}, follow_redirects=False)
    assert response.status_code == 404 and "location" not in response.headers


def test_models_show_no_filesystem_path(http):
    entry = http.get("/v1/models").json()["data"][0]
    assert entry["root"] == entry["id"] == MODEL
    assert "/" not in http.get("/v1/models").text.replace("\\/", "")
