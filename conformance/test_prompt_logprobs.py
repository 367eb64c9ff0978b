"""Prompt logprobs, as lm-evaluation-harness's loglikelihood tasks read them: /v1/completions with `echo` and
`logprobs` returns every prompt token's logprob (None for the first) in the legacy shape, streamed and not, for
text and token-id prompts, with max_tokens 0 and 1; vLLM's `prompt_logprobs` field; /tokenizer_info. Checked
against transformers' log_softmax of the prompt (f32) on the demo checkpoint the main server runs."""

from __future__ import annotations

import numpy as np
import pytest

from .conftest import MODEL
from .test_errors import assert_openai_error
from .test_logprobs_penalties import reference, reference_logprobs  # noqa: F401 (a fixture)

TEXT = "The quick brown fox jumps over the lazy dog. 你好，世界"
TOLERANCE = 1e-4


def expected_for(model, ids: list[int]) -> list[float]:
    table = reference_logprobs(model, ids)
    return [float(table[i - 1, ids[i]]) for i in range(1, len(ids))]


def legacy_from_stream(chunks: list) -> dict:
    merged = {"tokens": [], "token_logprobs": [], "top_logprobs": [], "text_offset": []}
    for chunk in chunks:
        for choice in chunk.choices:
            if choice.logprobs is not None:
                for key in merged:
                    merged[key] += getattr(choice.logprobs, key) or []
    return merged


@pytest.mark.parametrize("max_tokens", [0, 1])
@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("as_ids", [False, True], ids=["text", "token-ids"])
def test_echo_with_logprobs_returns_the_prompts_logprobs(client, reference, max_tokens, stream, as_ids):  # noqa: F811
    model, tokenizer = reference
    ids = tokenizer.encode(TEXT)
    prompt = ids if as_ids else TEXT
    kwargs = dict(model=MODEL, prompt=prompt, max_tokens=max_tokens, temperature=0, logprobs=1, echo=True)
    if stream:
        chunks = list(client.completions.create(stream=True, **kwargs))
        logprobs = legacy_from_stream(chunks)
        text = "".join(c.text for chunk in chunks for c in chunk.choices)
        finish = [c.finish_reason for chunk in chunks for c in chunk.choices if c.finish_reason]
    else:
        answer = client.completions.create(**kwargs)
        logprobs, text = answer.choices[0].logprobs.model_dump(), answer.choices[0].text
        finish = [answer.choices[0].finish_reason]
    assert finish == ["length"]
    assert text.startswith(TEXT)
    assert len(logprobs["tokens"]) == len(ids) + max_tokens
    assert logprobs["token_logprobs"][0] is None and logprobs["top_logprobs"][0] is None
    got = logprobs["token_logprobs"][1:len(ids)]
    assert np.allclose(got, expected_for(model, ids), atol=TOLERANCE, rtol=0)
    assert "".join(logprobs["tokens"][:len(ids)]) == TEXT
    assert logprobs["text_offset"][:3] == [0, len(logprobs["tokens"][0]),
                                           len(logprobs["tokens"][0]) + len(logprobs["tokens"][1])]
    for position, top in enumerate(logprobs["top_logprobs"][1:len(ids)], start=1):
        table = reference_logprobs(model, ids)[position - 1]
        assert len(top) == 1 and abs(max(top.values()) - float(np.max(table))) < TOLERANCE


def test_lm_eval_loglikelihood_request_shape(client, reference):  # noqa: F811
    """lm-eval's local-completions sends a batch of token-id prompts, echo, logprobs 1, max_tokens 1, and sums
    token_logprobs[ctxlen:-1]; is_greedy compares each with the top logprob."""
    model, tokenizer = reference
    context, continuation = tokenizer.encode("Question: 2 + 2 ="), tokenizer.encode(" 4")
    batch = [context + continuation, tokenizer.encode("Another prompt") + continuation]
    answer = client.completions.create(model=MODEL, prompt=batch, max_tokens=1, temperature=0, logprobs=1,
                                       echo=True, seed=1234)
    for choice, ids in zip(sorted(answer.choices, key=lambda c: c.index), batch):
        ctxlen = len(ids) - len(continuation)
        got = sum(choice.logprobs.token_logprobs[ctxlen:-1])
        assert abs(got - sum(expected_for(model, ids)[ctxlen - 1:])) < TOLERANCE * len(continuation)


@pytest.mark.parametrize("endpoint", ["completions", "chat"])
def test_vllm_prompt_logprobs_field(http, reference, endpoint):  # noqa: F811
    model, tokenizer = reference
    if endpoint == "chat":
        messages = [{"role": "user", "content": "Hello there"}]
        body = {"model": MODEL, "messages": messages, "max_tokens": 1, "prompt_logprobs": 2}
        ids = http.post("/tokenize", json={"model": MODEL, "messages": messages}).json()["tokens"]
    else:
        ids = tokenizer.encode(TEXT)
        body = {"model": MODEL, "prompt": ids, "max_tokens": 1, "prompt_logprobs": 2}
    response = http.post(f"/v1/{'chat/completions' if endpoint == 'chat' else 'completions'}", json=body).json()
    scored = response["prompt_logprobs"] if endpoint == "chat" else response["choices"][0]["prompt_logprobs"]
    assert scored[0] is None and len(scored) == len(ids)
    expected = expected_for(model, ids)
    for position, entry in enumerate(scored[1:], start=1):
        mine = entry[str(ids[position])]
        assert abs(mine["logprob"] - expected[position - 1]) < TOLERANCE
        assert mine["rank"] >= 1 and len(entry) <= 3
        assert {e["rank"] for t, e in entry.items() if t != str(ids[position])} <= {1, 2}


def test_max_tokens_0_needs_echo(http):
    response = http.post("/v1/completions", json={"model": MODEL, "prompt": "hi", "max_tokens": 0})
    assert_openai_error(response, 400, param="max_tokens")
    chat = http.post("/v1/chat/completions", json={"model": MODEL, "messages": [{"role": "user", "content": "hi"}],
                                                   "max_tokens": 0})
    assert_openai_error(chat, 400, param="max_tokens")


def test_tokenizer_info_as_lm_eval_reads_it(http):
    info = http.get("/tokenizer_info").json()
    assert info["eos_token"] == "<|im_end|>" and "chat_template" in info and info["model_max_length"] > 0
    tokens = http.post("/tokenize", json={"prompt": "<|im_end|>", "add_special_tokens": False}).json()["tokens"]
    assert tokens == [151645]
