"""Sampling on the device (InfiniCore random_sample) against the reference implementation, seeding, and the
distribution of many draws."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from harness.fixtures.blocks import slot_blocks
from harness.fixtures.device import TEST_DEVICE
from infini_qwen3.generation import generate
from infini_qwen3.model import Qwen3Model, SamplingParams, StepRequest

from .sampling_reference import reference_distribution, reference_sample


@pytest.fixture(scope="module")
def model(make_checkpoint):
    path = make_checkpoint(num_hidden_layers=1, vocab_size=512, init_std=0.05, seed=31)
    with Qwen3Model(path, device=TEST_DEVICE, dtype="f32", max_model_len=64, kv_cache_tokens=256) as m:
        yield m


PROMPT = [5, 17, 300, 42]


@pytest.mark.parametrize("params", [SamplingParams(1.0, 0, 1.0), SamplingParams(0.6, 20, 0.95),
                                    SamplingParams(1.3, 50, 0.8), SamplingParams(0.7, 5, 1.0)])
def test_chosen_token_equals_reference_for_fixed_logits_and_random_values(model, params):
    logits = torch.from_numpy(model.forward([StepRequest(PROMPT, 0, slot_blocks(model, 0))])[0])
    for u in random.Random(7).sample(range(1, 10_000), 25):
        u = u / 10_000
        token = model.infer([StepRequest(PROMPT, 0, slot_blocks(model, 0), params, u)])[0]
        expected = reference_sample(logits, u, params.top_p, params.top_k or logits.numel(), params.temperature)
        assert token == expected or logits[token] == logits[expected]


def test_greedy_is_argmax(model):
    logits = model.forward([StepRequest(PROMPT, 0, slot_blocks(model, 0))])[0]
    greedy = StepRequest(PROMPT, 0, slot_blocks(model, 0), SamplingParams(0.0, 0, 1.0), 0.5)
    assert model.infer([greedy])[0] == int(np.argmax(logits))


def test_same_seed_same_tokens_other_seed_other_tokens(model):
    params = SamplingParams(1.0, 0, 1.0)
    runs = {}
    for seed in (1, 1, 2):
        runs.setdefault(seed, []).append(
            [t for _, t in generate(model, [PROMPT, PROMPT[:2]], max_new_tokens=24, sampling=params, seed=seed,
                                    eos_token_ids=())])
    assert runs[1][0] == runs[1][1]
    assert runs[1][0] != runs[2][0]


def test_sampled_frequencies_match_reference_distribution(model):
    """Chi-square goodness of fit of 3000 device draws against the reference distribution (fixed seed)."""
    params = SamplingParams(0.8, 30, 0.9)
    logits = torch.from_numpy(model.forward([StepRequest(PROMPT, 0, slot_blocks(model, 0))])[0])
    expected = reference_distribution(logits, params.top_p, params.top_k, params.temperature).numpy()
    rng = random.Random(1234)
    draws = 3000
    counts = np.zeros(logits.numel())
    for _ in range(draws):
        counts[model.infer([StepRequest(PROMPT, 0, slot_blocks(model, 0), params, rng.random())])[0]] += 1
    support = expected > 0
    assert counts[~support].sum() == 0, "sampled a token outside top-k / top-p"
    # Pool the rare tokens so that every cell expects at least 5 draws.
    order = np.argsort(-expected[support])
    exp_sorted, obs_sorted = expected[support][order] * draws, counts[support][order]
    cells_exp, cells_obs, acc_e, acc_o = [], [], 0.0, 0.0
    for e, o in zip(exp_sorted, obs_sorted):
        acc_e, acc_o = acc_e + e, acc_o + o
        if acc_e >= 5:
            cells_exp.append(acc_e)
            cells_obs.append(acc_o)
            acc_e, acc_o = 0.0, 0.0
    if acc_e:
        cells_exp[-1] += acc_e
        cells_obs[-1] += acc_o
    chi2 = float(((np.array(cells_obs) - np.array(cells_exp)) ** 2 / np.array(cells_exp)).sum())
    dof = len(cells_exp) - 1
    assert dof >= 3, "the test distribution is too peaked to test anything"
    # p < 0.001 critical value via the Wilson-Hilferty approximation
    z = 3.09
    critical = dof * (1 - 2 / (9 * dof) + z * (2 / (9 * dof)) ** 0.5) ** 3
    assert chi2 < critical, f"chi2 {chi2:.1f} over {dof} dof exceeds {critical:.1f}"


def test_infer_with_logits_gives_the_raw_logits_and_the_same_device_token(model):
    """iq3InferWithLogits: the logits are forward()'s (copied before sampling), the token is iq3Infer's."""
    requests = [StepRequest(PROMPT, 0, slot_blocks(model, 0), SamplingParams(0.8, 10, 0.9), 0.37),
                StepRequest([9, 8, 7], 0, slot_blocks(model, 1), SamplingParams(temperature=0.0))]
    expected_logits = model.forward([StepRequest(r.tokens, 0, r.blocks) for r in requests])
    tokens, logits = model.infer_with_logits(requests)
    assert tokens == model.infer(requests)
    np.testing.assert_array_equal(logits, expected_logits)
    assert tokens[1] == int(np.argmax(logits[1]))


def test_tiny_temperature_and_top_p_draw_the_argmax(model):
    """Values a client may send that float32 (the device's sampling parameters) cannot hold: greedy, not an error."""
    logits = model.forward([StepRequest(PROMPT, 0, slot_blocks(model, 0))])[0]
    for params in (SamplingParams(1e-300, 0, 1.0), SamplingParams(1.0, 0, 1e-300), SamplingParams(1e-7, 50, 0.5)):
        assert model.infer([StepRequest(PROMPT, 0, slot_blocks(model, 0), params, 0.7)])[0] == int(np.argmax(logits))
