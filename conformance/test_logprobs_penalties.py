"""Logprobs, logit_bias and penalties through the openai SDK, checked against transformers (f32) on the demo
checkpoint the main server runs: greedy decoding makes every chosen token and every logprob comparable."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from infini_qwen3.tokenizer import Tokenizer

from .conftest import MODEL

MESSAGES = [{"role": "user", "content": "Count to ten."}]
PROMPT_IDS = [9707, 11, 1879, 0]  # "Hello, world!"


@pytest.fixture(scope="module")
def reference(server):
    """transformers on the checkpoint the server serves (the demo, built in the servers' cache)."""
    from transformers import Qwen3ForCausalLM

    from infini_qwen3.demo_checkpoint import ensure_demo_checkpoint

    from .server_process import CACHE

    root = ensure_demo_checkpoint(CACHE)
    return Qwen3ForCausalLM.from_pretrained(root, dtype=torch.float32).eval(), Tokenizer.from_dir(root)


def reference_logprobs(model, ids: list[int]) -> np.ndarray:
    with torch.no_grad():
        return torch.log_softmax(model(torch.tensor([ids])).logits[0].double(), dim=-1).numpy()


def greedy_reference(model, prompt: list[int], steps: int, adjust=lambda logits, generated: logits) -> list[int]:
    """Greedy decoding with transformers, the logits adjusted the way a penalty is specified."""
    ids = list(prompt)
    for _ in range(steps):
        with torch.no_grad():
            logits = model(torch.tensor([ids])).logits[0, -1].double()
        ids.append(int(torch.argmax(adjust(logits, ids[len(prompt):]))))
    return ids[len(prompt):]


def test_chat_logprobs_match_transformers(client, reference):
    model, tokenizer = reference
    r = client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=5, temperature=0, logprobs=True,
                                       top_logprobs=5)
    content = r.choices[0].logprobs.content
    assert len(content) == 5
    prompt = tokenizer.encode_chat(MESSAGES)
    generated = greedy_reference(model, prompt, 5)
    expected = reference_logprobs(model, prompt + generated)[len(prompt) - 1:-1]
    for entry, token, row in zip(content, generated, expected):
        assert bytes(entry.bytes) == tokenizer.token_bytes(token)
        assert entry.logprob == pytest.approx(row[token], abs=2e-4)
        top = np.argsort(-row)[:5]
        assert [bytes(t.bytes) for t in entry.top_logprobs] == [tokenizer.token_bytes(int(t)) for t in top]
        assert [t.logprob for t in entry.top_logprobs] == pytest.approx(row[top].tolist(), abs=2e-4)


def test_streamed_logprobs_equal_the_non_streamed_ones(client):
    kwargs = dict(model=MODEL, messages=MESSAGES, max_tokens=8, seed=3, temperature=1.0, logprobs=True,
                  top_logprobs=2)
    whole = [(e.token, e.logprob) for e in client.chat.completions.create(**kwargs).choices[0].logprobs.content]
    streamed = [(e.token, e.logprob) for chunk in client.chat.completions.create(stream=True, **kwargs)
                if chunk.choices and chunk.choices[0].logprobs for e in chunk.choices[0].logprobs.content]
    assert streamed == whole and len(whole) == 8


def test_completion_logprobs_legacy_shape(client):
    r = client.completions.create(model=MODEL, prompt=PROMPT_IDS, max_tokens=6, temperature=0, logprobs=3)
    lp = r.choices[0].logprobs
    assert len(lp.tokens) == len(lp.token_logprobs) == len(lp.top_logprobs) == len(lp.text_offset) == 6
    assert all(len(top) <= 3 for top in lp.top_logprobs) and lp.text_offset == sorted(lp.text_offset)
    assert all(value <= 0 for value in lp.token_logprobs)


def test_logit_bias_forces_a_token_and_logprobs_stay_raw(client, reference):
    model, tokenizer = reference
    r = client.completions.create(model=MODEL, prompt=PROMPT_IDS, max_tokens=4, temperature=0,
                                  logit_bias={"1234": 100}, logprobs=0)
    assert r.choices[0].text == tokenizer.decode([1234] * 4)
    raw = reference_logprobs(model, PROMPT_IDS + [1234] * 3)[len(PROMPT_IDS) - 1:]
    assert r.choices[0].logprobs.token_logprobs == pytest.approx(raw[:, 1234].tolist(), abs=2e-4)


@pytest.mark.parametrize("penalty", ["frequency_penalty", "presence_penalty"])
def test_frequency_and_presence_penalties_follow_openai_semantics(client, reference, penalty):
    """Two tokens pushed far ahead of all others; the penalty (OpenAI: logit -= frequency * count + presence *
    [count > 0], over generated tokens) decides between them step by step, exactly as specified."""
    model, tokenizer = reference
    bias = {1234: 50.0, 4321: 49.0}
    strength = 1.5

    def adjust(logits, generated):
        logits = logits.clone()
        for token, value in bias.items():
            logits[token] += value
        for token in set(generated):
            count = generated.count(token)
            logits[token] -= strength * count if penalty == "frequency_penalty" else strength
        return logits

    expected = greedy_reference(model, PROMPT_IDS, 8, adjust)
    r = client.completions.create(model=MODEL, prompt=PROMPT_IDS, max_tokens=8, temperature=0,
                                  logit_bias={str(k): v for k, v in bias.items()}, logprobs=0,
                                  extra_body={penalty: strength})
    assert r.choices[0].text == tokenizer.decode(expected)
    assert len(set(expected)) == 2, "the penalty must make the two tokens alternate at some point"


def test_repetition_penalty_equals_transformers_generate(client, reference):
    model, tokenizer = reference
    prompt = torch.tensor([PROMPT_IDS])
    with torch.no_grad():  # an explicit mask: "!" (id 0) in the prompt is not padding
        out = model.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=10, do_sample=False,
                             repetition_penalty=1.3, pad_token_id=None, eos_token_id=None)
    expected = out[0, len(PROMPT_IDS):].tolist()
    r = client.completions.create(model=MODEL, prompt=PROMPT_IDS, max_tokens=10, temperature=0,
                                  extra_body={"repetition_penalty": 1.3})
    assert r.choices[0].text == tokenizer.decode(expected)


def test_min_p_keeps_only_tokens_near_the_top(client):
    """min_p = 1 keeps only the most likely token: sampling at any temperature becomes greedy."""
    greedy = client.completions.create(model=MODEL, prompt=PROMPT_IDS, max_tokens=6, temperature=0).choices[0].text
    hot = client.completions.create(model=MODEL, prompt=PROMPT_IDS, max_tokens=6, temperature=2.0, seed=5,
                                    extra_body={"min_p": 1.0}).choices[0].text
    assert hot == greedy
