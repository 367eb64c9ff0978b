"""Host-side logits processing against transformers' own processors and hand-computed OpenAI semantics."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import MinPLogitsWarper, RepetitionPenaltyLogitsProcessor, TopKLogitsWarper, TopPLogitsWarper

from infini_qwen3.logits import LogitsOptions, apply_penalties, candidates, sample, token_logprobs
from infini_qwen3.model import SamplingParams

VOCAB = 64
logit_rows = st.lists(st.floats(-8, 8, allow_nan=False), min_size=VOCAB, max_size=VOCAB).map(np.array)
token_lists = st.lists(st.integers(0, VOCAB - 1), max_size=12)


@given(logits=logit_rows, prompt=token_lists, generated=token_lists, penalty=st.floats(0.5, 2.0))
def test_repetition_penalty_equals_transformers(logits, prompt, generated, penalty):
    ours = apply_penalties(logits, LogitsOptions(repetition_penalty=penalty), prompt, generated)
    ids = torch.tensor([prompt + generated or [0]], dtype=torch.long)
    theirs = RepetitionPenaltyLogitsProcessor(penalty)(ids, torch.tensor(logits)[None].clone())[0].numpy()
    if not prompt + generated:
        theirs = logits
    np.testing.assert_allclose(ours, theirs, rtol=1e-12)


@given(logits=logit_rows, generated=token_lists, frequency=st.floats(-2, 2), presence=st.floats(-2, 2),
       bias=st.dictionaries(st.integers(0, VOCAB - 1), st.floats(-100, 100), max_size=3))
def test_frequency_presence_and_bias_follow_openai(logits, generated, frequency, presence, bias):
    options = LogitsOptions(presence_penalty=presence, frequency_penalty=frequency, logit_bias=tuple(bias.items()))
    ours = apply_penalties(logits, options, [1, 2, 3], generated)
    expected = logits.astype(np.float64).copy()
    for token, value in bias.items():
        expected[token] += value
    for token in set(generated):
        expected[token] -= frequency * generated.count(token) + presence
    np.testing.assert_allclose(ours, expected, rtol=1e-12, atol=1e-12)


def transformers_support(logits, temperature, top_k, top_p, min_p) -> set[int]:
    scores = torch.tensor(logits / temperature)[None]
    ids = torch.zeros((1, 1), dtype=torch.long)
    if min_p:
        scores = MinPLogitsWarper(min_p)(ids, scores)
    if top_k:
        scores = TopKLogitsWarper(top_k)(ids, scores)
    if top_p < 1:
        scores = TopPLogitsWarper(top_p)(ids, scores)
    return set(torch.nonzero(torch.isfinite(scores[0])).flatten().tolist())


@settings(max_examples=40)
@given(logits=st.lists(st.integers(-6, 6), min_size=12, max_size=12).map(lambda v: np.array(v, float) * 0.7),
       temperature=st.sampled_from([0.5, 1.0, 1.7]), top_k=st.sampled_from([0, 3, 8]),
       top_p=st.sampled_from([1.0, 0.9, 0.5]), min_p=st.sampled_from([0.0, 0.1, 0.5]))
def test_sampling_support_equals_transformers_warpers(logits, temperature, top_k, top_p, min_p):
    """The set of tokens that can be drawn is the set transformers' warpers keep (ties aside)."""
    if len(set(logits.tolist())) < len(logits):
        logits = logits + np.arange(len(logits)) * 1e-3  # ties make "the k-th largest" ambiguous
    order, _ = candidates(logits, SamplingParams(temperature=temperature, top_k=top_k, top_p=top_p), min_p)
    assert set(order.tolist()) == transformers_support(logits, temperature, top_k, top_p, min_p)


def test_greedy_is_argmax_and_draws_follow_probabilities():
    logits = np.log(np.array([0.1, 0.6, 0.3]))
    assert sample(logits, SamplingParams(temperature=0.0), 0.0, 0.99) == 1
    draws = [sample(logits, SamplingParams(temperature=1.0), 0.0, r) for r in np.linspace(0, 0.9999, 10000)]
    counts = np.bincount(draws, minlength=3) / len(draws)
    np.testing.assert_allclose(counts, [0.1, 0.6, 0.3], atol=1e-3)


def test_token_logprobs_are_log_softmax_with_the_top_first():
    logits = np.array([1.0, 3.0, 2.0, 3.0])
    entry = token_logprobs(logits, 2, 3)
    expected = torch.log_softmax(torch.tensor(logits), 0).numpy()
    assert entry.logprob == expected[2]
    assert [t for t, _ in entry.top] == [1, 3, 2]  # ties by id
    assert [lp for _, lp in entry.top] == [expected[1], expected[3], expected[2]]
