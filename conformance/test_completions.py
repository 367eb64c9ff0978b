"""/v1/completions (legacy) through the openai SDK and raw SSE."""

from __future__ import annotations

from .conftest import MODEL
from .test_chat import sse_events


def test_string_prompt_shape_and_usage(client):
    r = client.completions.create(model=MODEL, prompt="Once upon a time", max_tokens=5, seed=1)
    assert r.object == "text_completion" and r.id.startswith("cmpl-") and r.model == MODEL
    assert r.choices[0].index == 0 and r.choices[0].finish_reason == "length" and isinstance(r.choices[0].text, str)
    assert r.usage.completion_tokens == 5 and r.usage.prompt_tokens == 4


def test_prompt_forms_give_one_choice_group_per_prompt(client, server):
    ids = [9707, 11, 1879]  # "Hello, world" in the Qwen3 vocabulary
    for prompt, count in (("a", 1), (["a", "b c"], 2), (ids, 1), ([ids, [40, 1079]], 2)):
        r = client.completions.create(model=MODEL, prompt=prompt, max_tokens=2, n=2)
        assert [c.index for c in r.choices] == list(range(2 * count))
        assert r.usage.completion_tokens == 4 * count


def test_token_prompt_equals_its_text(client):
    text = client.completions.create(model=MODEL, prompt="Hello, world", max_tokens=8, seed=3).choices[0].text
    ids = client.completions.create(model=MODEL, prompt=[9707, 11, 1879], max_tokens=8, seed=3).choices[0].text
    assert text == ids


def test_echo_prepends_the_prompt(client):
    plain = client.completions.create(model=MODEL, prompt="你好世界", max_tokens=4, seed=4).choices[0].text
    echoed = client.completions.create(model=MODEL, prompt="你好世界", max_tokens=4, seed=4, echo=True).choices[0].text
    assert echoed == "你好世界" + plain


def test_stream_shape_and_equality(client, http):
    kwargs = dict(model=MODEL, prompt="The quick brown fox", max_tokens=12, seed=5, temperature=1.0)
    whole = client.completions.create(**kwargs).choices[0].text
    with http.stream("POST", "/v1/completions", json={**kwargs, "stream": True,
                                                       "stream_options": {"include_usage": True}}) as response:
        events = sse_events(response)
    assert events[-1] == "[DONE]" and events[-2]["choices"] == [] and events[-2]["usage"]["completion_tokens"] == 12
    chunks = events[:-2]
    assert all(c["object"] == "text_completion" for c in chunks) and len({c["id"] for c in chunks}) == 1
    assert "".join(c["choices"][0]["text"] for c in chunks) == whole
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"


def test_stream_with_echo_starts_with_the_prompt(client):
    chunks = list(client.completions.create(model=MODEL, prompt="abc", max_tokens=3, stream=True, echo=True))
    assert chunks[0].choices[0].text == "abc"


def test_stop_strings_in_completions(client):
    base = dict(model=MODEL, prompt="Numbers:", max_tokens=20, seed=6, temperature=1.0)
    text = client.completions.create(**base).choices[0].text
    stop = text[len(text) // 2: len(text) // 2 + 2]
    r = client.completions.create(stop=stop, **base)
    assert r.choices[0].text == text[:text.find(stop)] and r.choices[0].finish_reason == "stop"
