"""/v1/chat/completions through the official openai SDK (sync and async) and raw SSE for what the SDK hides."""

from __future__ import annotations

import asyncio
import json

import pytest

from .conftest import MODEL, ExternalServer

HELLO = [{"role": "user", "content": "你好，请介绍一下你自己。"}]


def sse_events(response) -> list:
    """The data payloads of a raw SSE response, in order ([DONE] as the string)."""
    events = []
    for line in response.iter_lines():
        if line.startswith(":") or not line:
            continue
        assert line.startswith("data: "), f"unexpected SSE line {line!r}"
        payload = line[len("data: "):]
        events.append(payload if payload == "[DONE]" else json.loads(payload))
    return events


def test_non_stream_shape_and_usage(client):
    r = client.chat.completions.create(model=MODEL, messages=HELLO, max_tokens=6, seed=1)
    assert r.object == "chat.completion" and r.id.startswith("chatcmpl-") and r.model == MODEL
    assert len(r.choices) == 1
    choice = r.choices[0]
    assert choice.index == 0 and choice.message.role == "assistant" and isinstance(choice.message.content, str)
    assert choice.finish_reason == "length"
    assert r.usage.completion_tokens == 6 and r.usage.prompt_tokens > 5
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens


def test_stream_chunk_order_role_content_finish_done(server, http):
    body = {"model": MODEL, "messages": HELLO, "max_tokens": 5, "stream": True, "seed": 2}
    with http.stream("POST", "/v1/chat/completions", json=body) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = sse_events(response)
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert len({c["id"] for c in chunks}) == 1 and len({c["created"] for c in chunks}) == 1
    assert all(c["object"] == "chat.completion.chunk" and c["model"] == MODEL for c in chunks)
    assert all("usage" not in c for c in chunks), "no usage field without stream_options.include_usage"
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert chunks[0]["choices"][0]["finish_reason"] is None
    for c in chunks[1:-1]:
        assert set(c["choices"][0]["delta"]) == {"content"} and c["choices"][0]["finish_reason"] is None
    assert chunks[-1]["choices"][0]["delta"] == {} and chunks[-1]["choices"][0]["finish_reason"] == "length"


def test_include_usage_adds_one_usage_chunk(http):
    body = {"model": MODEL, "messages": HELLO, "max_tokens": 4, "stream": True,
            "stream_options": {"include_usage": True}}
    with http.stream("POST", "/v1/chat/completions", json=body) as response:
        events = sse_events(response)
    assert events[-1] == "[DONE]"
    usage_chunk = events[-2]
    assert usage_chunk["choices"] == [] and usage_chunk["usage"]["completion_tokens"] == 4
    assert all(c["usage"] is None for c in events[:-2])


def test_empty_stream_options_does_not_enable_usage(client):
    chunks = list(client.chat.completions.create(model=MODEL, messages=HELLO, max_tokens=3, stream=True,
                                                 stream_options={}))
    assert all(c.usage is None for c in chunks) and chunks[-1].choices


def test_stream_equals_non_stream_for_the_same_seed(client):
    for seed in (3, 4, 5):
        kwargs = dict(model=MODEL, messages=HELLO, max_tokens=24, seed=seed, temperature=1.0)
        whole = client.chat.completions.create(**kwargs).choices[0].message.content
        deltas = [c.choices[0].delta.content or "" for c in client.chat.completions.create(stream=True, **kwargs)
                  if c.choices]
        assert "".join(deltas) == whole
        # A delta never ends in U+FFFD unless the complete text has it there too (a split character is held).
        position = 0
        for delta in deltas:
            position += len(delta)
            if delta.endswith("\ufffd"):
                assert whole[position - 1] == "\ufffd"


def test_seed_determinism(client):
    kwargs = dict(model=MODEL, messages=HELLO, max_tokens=16, temperature=1.0)
    a = client.chat.completions.create(seed=7, **kwargs).choices[0].message.content
    b = client.chat.completions.create(seed=7, **kwargs).choices[0].message.content
    c = client.chat.completions.create(seed=8, **kwargs).choices[0].message.content
    assert a == b and a != c


def test_n_choices_are_interleaved_by_index(client, http):
    kwargs = dict(model=MODEL, messages=HELLO, max_tokens=8, n=3, seed=9, temperature=1.0)
    whole = client.chat.completions.create(**kwargs)
    assert [c.index for c in whole.choices] == [0, 1, 2]
    assert whole.usage.completion_tokens == 24
    texts = {c.index: c.message.content for c in whole.choices}
    assert len(set(texts.values())) > 1, "choices of one seeded request draw different random streams"
    with http.stream("POST", "/v1/chat/completions", json={**kwargs, "stream": True}) as response:
        events = sse_events(response)[:-1]
    streamed = {0: "", 1: "", 2: ""}
    finished = set()
    for chunk in events:
        (choice,) = chunk["choices"]
        streamed[choice["index"]] += choice["delta"].get("content") or ""
        if choice["finish_reason"]:
            finished.add(choice["index"])
    assert streamed == texts and finished == {0, 1, 2}


def test_stop_string_is_not_returned_and_never_leaks(client):
    base = dict(model=MODEL, messages=HELLO, max_tokens=24, seed=11, temperature=1.0)
    text = client.chat.completions.create(**base).choices[0].message.content
    assert len(text) > 8
    stop = text[len(text) // 2: len(text) // 2 + 3]
    expected = text[:text.find(stop)]
    r = client.chat.completions.create(stop=[stop, "never-in-output-xyz"], **base)
    assert r.choices[0].message.content == expected and r.choices[0].finish_reason == "stop"
    deltas = [c.choices[0].delta.content or "" for c in client.chat.completions.create(stop=stop, stream=True, **base)
              if c.choices]
    assert "".join(deltas) == expected


def test_max_completion_tokens_wins_over_max_tokens(client):
    r = client.chat.completions.create(model=MODEL, messages=HELLO, max_tokens=9, max_completion_tokens=3)
    assert r.usage.completion_tokens == 3


@pytest.mark.own_server  # it asserts this suite's --max-model-len 256; another server's context is its own
def test_default_max_tokens_is_the_rest_of_the_context(client, server):
    """Without max_tokens a choice may run to the end of the context; the end-of-text ids are banned (logit_bias) so
    that the random model cannot stop earlier."""
    r = client.chat.completions.create(model=MODEL, messages=HELLO, seed=1,
                                       logit_bias={"151643": -100, "151645": -100})
    assert r.choices[0].finish_reason == "length"
    assert r.usage.total_tokens == 256  # --max-model-len 256


def test_text_parts_system_and_history(client):
    messages = [{"role": "system", "content": "You are terse."},
                {"role": "user", "content": [{"type": "text", "text": "Hi"}, {"type": "text", "text": "there"}]},
                {"role": "assistant", "content": "Hello."},
                {"role": "developer", "content": "Answer in Chinese."},
                {"role": "user", "content": "再说一遍"}]
    r = client.chat.completions.create(model=MODEL, messages=messages, max_tokens=3, user="someone")
    assert r.usage.completion_tokens == 3


def test_enable_thinking_false_changes_the_prompt(client):
    on = client.chat.completions.create(model=MODEL, messages=HELLO, max_tokens=1)
    off = client.chat.completions.create(model=MODEL, messages=HELLO, max_tokens=1,
                                         extra_body={"chat_template_kwargs": {"enable_thinking": False}})
    # enable_thinking=False appends an empty <think></think> block to the prompt (Qwen3's template).
    assert off.usage.prompt_tokens > on.usage.prompt_tokens


def test_model_may_be_omitted_and_paths_without_v1_work(http):
    r = http.post("/chat/completions", json={"messages": HELLO, "max_tokens": 2})
    assert r.status_code == 200 and r.json()["model"] == MODEL


@pytest.mark.parametrize("streams", [32])
def test_concurrent_streams_all_progress_and_complete(async_client, server, streams):
    async def one(i):
        first_content, finish, pieces = None, None, 0
        loop = asyncio.get_running_loop()
        stream = await async_client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": f"stream {i}"}], max_tokens=48, stream=True,
            seed=i, temperature=1.0)
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                pieces += 1
                first_content = first_content or loop.time()
            if chunk.choices and chunk.choices[0].finish_reason:
                finish = (loop.time(), chunk.choices[0].finish_reason)
        return first_content, finish, pieces

    async def main():
        return await asyncio.gather(*(one(i) for i in range(streams)))

    results = asyncio.run(main())
    assert all(finish is not None and finish[1] == "length" for _, finish, _ in results)
    assert all(pieces > 0 for _, _, pieces in results)
    if isinstance(server, ExternalServer):
        return  # how many run at once is another server's configuration (llama-server: its --parallel slots)
    # Progress together: every stream had output before any stream was done (32 running at once; no one waits in line).
    first_done = min(finish[0] for _, finish, _ in results)
    assert sum(first <= first_done for first, _, _ in results) == streams
