"""Hypothesis-drawn request bodies, valid and invalid: every one gets a 2xx or a 4xx in the OpenAI shape, never
a 5xx, and the server keeps serving."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .conftest import MODEL

junk = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                                   max_size=3), max_leaves=6)
text = st.text(max_size=40)
short_text = st.text(min_size=1, max_size=5)


def mostly(valid, invalid):
    """Valid three times out of four, so that bodies get past the first bad field and reach the model."""
    return st.integers(0, 3).flatmap(lambda pick: invalid if pick == 0 else valid)


text_part = st.fixed_dictionaries({"type": st.just("text"), "text": text})
bad_part = st.fixed_dictionaries({"type": st.sampled_from(["image_url", "audio", 3]), "text": text | junk})
good_message = st.fixed_dictionaries({"role": st.sampled_from(["system", "user", "assistant", "developer"]),
                                      "content": text | st.lists(text_part, min_size=1, max_size=2)})
bad_message = st.fixed_dictionaries({"role": st.sampled_from(["tool", "x"]) | junk,
                                     "content": st.lists(bad_part, max_size=2) | junk})
small_tokens = st.integers(1, 4)
FIELDS = {
    "model": mostly(st.just(MODEL), st.text(max_size=6) | junk),
    "max_tokens": mostly(small_tokens, st.integers(-3, 0) | junk),
    "max_completion_tokens": mostly(small_tokens, st.integers(-3, 0) | junk),
    "temperature": mostly(st.floats(0, 2), st.floats(-1, 3) | junk),
    "top_p": mostly(st.floats(0.01, 1), st.floats(-0.5, 1.5) | junk),
    "top_k": mostly(st.integers(-1, 50), st.integers(-5, -2) | junk),
    "n": mostly(st.integers(1, 3), st.integers(-1, 0) | junk),
    "stop": mostly(short_text | st.lists(short_text, max_size=4), st.lists(text, min_size=5, max_size=6) | junk),
    "seed": mostly(st.integers(-(2 ** 63), 2 ** 64 - 1), st.integers(2 ** 64, 2 ** 70) | junk),
    "stream": mostly(st.booleans(), junk),
    "stream_options": mostly(st.fixed_dictionaries({"include_usage": st.booleans()}), junk),
    "presence_penalty": mostly(st.floats(-2, 2), st.floats(2.01, 5) | junk),
    "frequency_penalty": mostly(st.floats(-2, 2), st.floats(-5, -2.01) | junk),
    "repetition_penalty": mostly(st.floats(0.1, 2), st.floats(-1, 0) | junk),
    "min_p": mostly(st.floats(0, 1), st.floats(1.01, 3) | junk),
    "logit_bias": mostly(st.dictionaries(st.integers(0, 151000).map(str), st.floats(-100, 100), max_size=3),
                         st.dictionaries(st.text(max_size=3), junk, max_size=2) | junk),
    "logprobs": mostly(st.booleans() | st.integers(0, 20), st.integers(21, 99) | junk),
    "top_logprobs": mostly(st.integers(0, 20), st.integers(21, 99) | junk),
    "tools": mostly(st.just([{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]),
                    st.lists(junk, max_size=2) | junk),
    "tool_choice": mostly(st.sampled_from(["auto", "none"]), junk),
    "chat_template_kwargs": mostly(st.fixed_dictionaries({"enable_thinking": st.booleans()}), junk),
    "user": mostly(text, junk),
    "echo": mostly(st.booleans(), junk),
    "stop_token_ids": mostly(st.lists(st.integers(0, 151000), max_size=2),
                             st.lists(st.integers(-2, 200_000), max_size=3) | junk),
}


@st.composite
def bodies(draw, chat: bool):
    body = {}
    for name, strategy in FIELDS.items():
        if draw(st.integers(0, 3)) == 0:  # a few fields per body, so that many bodies are valid
            body[name] = draw(strategy)
    if chat:
        body["messages"] = draw(mostly(st.lists(good_message, min_size=1, max_size=2),
                                       st.lists(good_message | bad_message, max_size=3) | junk))
    else:
        body["prompt"] = draw(mostly(short_text | st.lists(short_text, min_size=1, max_size=2)
                                     | st.lists(st.integers(0, 151000), min_size=1, max_size=4),
                                     st.lists(st.integers(-5, 200_000), max_size=4) | junk))
    if "max_tokens" not in body and "max_completion_tokens" not in body:
        body["max_tokens"] = draw(small_tokens)  # a valid body must not run to the end of the context
    unknown = st.text(min_size=1, max_size=6).filter(lambda k: k not in FIELDS and k not in ("messages", "prompt"))
    body.update(draw(st.dictionaries(unknown, junk, max_size=2)))  # unknown fields are ignored
    return body


def check(http, path: str, body: dict) -> None:
    payload = json.dumps(body, allow_nan=True)  # NaN/Infinity are not JSON: the server must still answer 400
    response = http.post(path, content=payload, headers={"content-type": "application/json"})
    assert response.status_code < 500, f"{response.status_code} for {payload}: {response.text}"
    if response.status_code >= 400:
        error = response.json()["error"]
        assert set(error) == {"message", "type", "param", "code"}
        return
    if response.headers["content-type"].startswith("text/event-stream"):
        lines = [line for line in response.text.split("\n") if line]
        assert lines[-1] == "data: [DONE]"
        assert not any('"error"' in line for line in lines), response.text
    else:
        assert response.json()["choices"]


FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                       HealthCheck.too_slow])


@FUZZ
@given(body=bodies(chat=True))
def test_chat_bodies_never_5xx(http, body):
    check(http, "/v1/chat/completions", body)


@FUZZ
@given(body=bodies(chat=False))
def test_completion_bodies_never_5xx(http, body):
    check(http, "/v1/completions", body)


input_item = (good_message
              | st.fixed_dictionaries({"type": st.just("function_call"), "call_id": short_text, "name": short_text,
                                       "arguments": st.just("{}") | text})
              | st.fixed_dictionaries({"type": st.just("function_call_output"), "call_id": short_text,
                                       "output": text})
              | st.fixed_dictionaries({"type": st.just("reasoning"), "summary": st.just([])}))
RESPONSES_FIELDS = {
    "model": FIELDS["model"], "temperature": FIELDS["temperature"], "top_p": FIELDS["top_p"],
    "stream": FIELDS["stream"], "user": FIELDS["user"], "seed": FIELDS["seed"],
    "instructions": mostly(text, junk),
    "tools": mostly(st.just([{"type": "function", "name": "f", "parameters": {"type": "object"}}]),
                    st.lists(junk, max_size=2) | junk),
    "tool_choice": mostly(st.sampled_from(["auto", "none"]) | st.just({"type": "function", "name": "f"}), junk),
    "text": mostly(st.just({"format": {"type": "text"}}) | st.just({"format": {"type": "json_object"}}), junk),
    "reasoning": mostly(st.fixed_dictionaries({"effort": st.sampled_from(["minimal", "low", "high"])}), junk),
    "store": mostly(st.booleans(), junk), "metadata": mostly(st.just({"k": "v"}), junk),
    "parallel_tool_calls": mostly(st.booleans(), junk),
    "previous_response_id": mostly(st.none(), short_text | junk),
}


@st.composite
def responses_bodies(draw):
    body = {name: draw(strategy) for name, strategy in RESPONSES_FIELDS.items() if draw(st.integers(0, 3)) == 0}
    body["input"] = draw(mostly(text | st.lists(input_item, min_size=1, max_size=3),
                                st.lists(input_item | junk, max_size=3) | junk))
    body["max_output_tokens"] = draw(mostly(small_tokens, st.integers(-3, 0) | junk))
    return body


@FUZZ
@given(body=responses_bodies())
def test_responses_bodies_never_5xx(http, body):
    payload = json.dumps(body, allow_nan=True)
    response = http.post("/v1/responses", content=payload, headers={"content-type": "application/json"})
    assert response.status_code < 500, f"{response.status_code} for {payload}: {response.text}"
    if response.status_code >= 400:
        assert set(response.json()["error"]) == {"message", "type", "param", "code"}
    elif response.headers["content-type"].startswith("text/event-stream"):
        assert "event: response.completed" in response.text and "response.failed" not in response.text
    else:
        assert response.json()["object"] == "response"
