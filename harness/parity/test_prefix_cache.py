"""Prefix caching changes nothing but the work done: the same requests through the scheduler with the cache on
and off give the same greedy tokens, logprobs within 1e-5 (f32) and the same seeded samples, for prompts that
share prefixes in one step and across steps, under a pool small enough to preempt and evict, and on two ranks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from harness.fixtures.device import TEST_DEVICE
from infini_qwen3.generation import run
from infini_qwen3.logits import LogitsOptions
from infini_qwen3.model import Qwen3Model, SamplingParams
from infini_qwen3.output import TokenOutput
from infini_qwen3.scheduler import Request, Scheduler

BLOCK = 8
GREEDY = SamplingParams(temperature=0.0)
SAMPLED = SamplingParams(temperature=0.9, top_k=50, top_p=0.95)


@pytest.fixture(scope="module")
def checkpoint_dir(make_checkpoint):
    return make_checkpoint(num_hidden_layers=2, num_attention_heads=8, num_key_value_heads=4, head_dim=32,
                           hidden_size=96, vocab_size=4096, seed=33)


def token_ids(n: int, seed: int) -> list[int]:
    return torch.randint(1, 4096, (n,), generator=torch.Generator().manual_seed(seed)).tolist()


SYSTEM = token_ids(3 * BLOCK + 5, seed=1)  # three full blocks shared, then part of a fourth


def waves() -> list[list[tuple[list[int], SamplingParams]]]:
    """Wave 1 computes the shared prefix; wave 2's requests read it together in one step (and one of them is the
    whole first prompt again, hitting all but its last block); wave 3 continues the first prompt with new tokens."""
    first = SYSTEM + token_ids(6, seed=2)
    return [
        [(first, GREEDY)],
        [(SYSTEM + token_ids(11, seed=3), GREEDY), (SYSTEM + token_ids(2, seed=4), SAMPLED), (first, GREEDY),
         (SYSTEM[:2 * BLOCK + 1], SAMPLED)],
        [(first + token_ids(BLOCK + 3, seed=5), GREEDY), (SYSTEM + token_ids(20, seed=6), SAMPLED)],
    ]


def run_waves(checkpoint_dir, caching: bool, kv_cache_tokens: int, max_batch: int = 4, ndev: int = 1):
    """Each wave runs to completion on one scheduler (so later waves find what earlier ones left in the cache).
    Returns every request's (tokens, logprobs) and the scheduler's stats."""
    with Qwen3Model(checkpoint_dir, device=TEST_DEVICE, ndev=ndev, dtype="f32", max_model_len=96,
                    kv_cache_tokens=kv_cache_tokens, block_size=BLOCK, max_step_tokens=48) as model:
        scheduler = Scheduler(model, max_batch=max_batch, enable_prefix_caching=caching)
        results = []
        for w, wave in enumerate(waves()):
            requests = [Request(prompt, 12, sampling, on_event=None, output=TokenOutput(), seed=100 + w,
                                id=f"{w}-{i}", choice_index=i, logits=LogitsOptions(logprobs=3))
                        for i, (prompt, sampling) in enumerate(wave)]
            got: list[list] = [[] for _ in requests]
            for index, event in run(scheduler, requests):
                assert event.kind != "error", event.message
                if event.kind == "token":
                    got[index].append((event.token, event.logprobs, event.cached_tokens))
            results += got
        return results, scheduler.stats


def assert_same_outputs(cached, cold):
    for with_cache, without in zip(cached, cold):
        assert [t for t, _, _ in with_cache] == [t for t, _, _ in without]
        for (_, a, _), (_, b, _) in zip(with_cache, without):
            assert abs(a.logprob - b.logprob) < 1e-5
            assert [t for t, _ in a.top] == [t for t, _ in b.top]
            assert np.allclose([p for _, p in a.top], [p for _, p in b.top], atol=1e-5, rtol=0)


@pytest.mark.parametrize("kv_cache_tokens", [96 * 4, 96 + 2 * BLOCK], ids=["roomy", "preempting-pool"])
def test_outputs_with_the_prefix_cache_are_the_outputs_without_it(checkpoint_dir, kv_cache_tokens):
    cold, cold_stats = run_waves(checkpoint_dir, False, kv_cache_tokens)
    cached, stats = run_waves(checkpoint_dir, True, kv_cache_tokens)
    assert_same_outputs(cached, cold)
    assert cold_stats.prefix_cache_hits == 0 and all(c == 0 for r in cold for _, _, c in r)
    assert stats.prefix_cache_hits > 0
    cached_tokens = [r[0][2] for r in cached]
    assert cached_tokens[0] == 0
    if kv_cache_tokens == 96 * 4:  # nothing evicted: every shared full block is found
        assert cached_tokens[1:5] == [3 * BLOCK, 3 * BLOCK, 4 * BLOCK, 2 * BLOCK]
        assert cached_tokens[5:] == [4 * BLOCK, 3 * BLOCK]
    else:
        assert cold_stats.preemptions > 0 and stats.preemptions > 0


def test_two_ranks_with_the_prefix_cache_give_the_outputs_without_it(checkpoint_dir):
    cold, _ = run_waves(checkpoint_dir, False, 96 * 4, ndev=2)
    cached, stats = run_waves(checkpoint_dir, True, 96 * 4, ndev=2)
    assert_same_outputs(cached, cold)
    assert stats.prefix_cache_hits > 0


def test_requests_of_one_step_read_shared_blocks_and_write_their_own(checkpoint_dir):
    """The native rule: two requests may list the same block when both only read it."""
    from infini_qwen3.model import StepRequest

    with Qwen3Model(checkpoint_dir, device=TEST_DEVICE, dtype="f32", max_model_len=32, kv_cache_tokens=64,
                    block_size=BLOCK) as model:
        prefix = token_ids(BLOCK, seed=9)
        model.forward([StepRequest(prefix, 0, [0])])
        a, b = token_ids(3, seed=10), token_ids(5, seed=11)
        shared = model.forward([StepRequest(a, BLOCK, [0, 1]), StepRequest(b, BLOCK, [0, 2])])
        alone = [model.forward([StepRequest(a, BLOCK, [0, 3])])[0], model.forward([StepRequest(b, BLOCK, [0, 4])])[0]]
    assert np.allclose(shared, np.stack(alone), atol=1e-5, rtol=0)
