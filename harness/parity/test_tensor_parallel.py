"""Tensor parallelism (ndev ranks; on the CPU, threads joined by InfiniCCL's CPU backend): every rank's trace
is its slice of transformers' intermediates, the logits equal those of one rank, and generation (paged KV,
batched decode, chunked prefill) draws transformers' greedy tokens."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from harness.fixtures.blocks import slot_blocks
from harness.fixtures.device import TEST_DEVICE
from infini_qwen3.generation import generate
from infini_qwen3.model import Qwen3Model, StepRequest

from .reference import compare_traces, greedy_continuations, load_reference, operator_order, reference_trace, rel_l2
from .test_operator_parity import F32_OPERATOR_TOL, f32_limit, prompt_for

# Which part of an intermediate a rank computes: its query heads, its KV heads, its MLP columns; the rest
# (embedding, norms, the residual stream and the logits after each all-reduce) is whole on every rank.
QUERY_HEAD_OPS = {"q", "q_norm", "q_rope", "attn"}
KV_HEAD_OPS = {"k", "v", "k_norm", "k_rope"}
MLP_COLUMN_OPS = {"gate", "up", "act"}


def rank_slice(name: str, value: np.ndarray, rank: int, ranks: int, config) -> np.ndarray:
    op = name.rsplit(".", 1)[-1]
    groups = {**dict.fromkeys(QUERY_HEAD_OPS, config.num_heads), **dict.fromkeys(KV_HEAD_OPS, config.num_kv_heads),
              **dict.fromkeys(MLP_COLUMN_OPS, config.intermediate_size)}.get(op)
    if groups is None:
        return value
    part = groups // ranks
    return value.reshape(value.shape[0], groups, -1)[:, rank * part:(rank + 1) * part]


def rank_traces(trace: dict[str, np.ndarray]) -> list[dict[str, np.ndarray]]:
    """{"rank1/layers.0.q": ...} -> one {"layers.0.q": ...} per rank, by rank."""
    split: dict[int, dict[str, np.ndarray]] = {}
    for name, value in trace.items():
        prefix, _, op = name.partition("/")
        split.setdefault(int(prefix.removeprefix("rank")), {})[op] = value
    return [split[r] for r in sorted(split)]


def assert_ranks_match(trace: dict[str, np.ndarray], reference: dict[str, np.ndarray], ranks: int, config, limit,
                       record, label: str, context: str = "") -> None:
    """Every rank traced every operator, each within limit(name) of its slice of the reference."""
    order = operator_order(config.num_layers)
    split = rank_traces(trace)
    assert len(split) == ranks, f"traces of {len(split)} ranks, expected {ranks}"
    for rank, ours in enumerate(split):
        assert sorted(ours) == sorted(order), f"rank {rank} traced {sorted(ours)}"
        expected = {n: rank_slice(n, reference[n], rank, ranks, config) for n in order}
        errors, first = compare_traces(ours, expected, order, limit)
        record.add(label, errors, limit)
        assert first is None, f"rank {rank} of {ranks}: {first}; all errors: {errors} {context}"


def traced_forward(checkpoint_dir, dtype: str, ranks: int, seed: int):
    """One 9-token prompt through the model split over `ranks`, traced: (tokens, trace, config)."""
    with Qwen3Model(checkpoint_dir, device=TEST_DEVICE, dtype=dtype, ndev=ranks, max_model_len=64,
                    kv_cache_tokens=64) as model:
        tokens = prompt_for(model.vocab_size, 9, seed)
        model.set_trace(True)
        model.forward([StepRequest(tokens, 0, slot_blocks(model, 0))], all_positions=True)
        return tokens, model.trace(), model.config


CONFIG = dict(num_hidden_layers=2, num_attention_heads=8, num_key_value_heads=4, head_dim=32, hidden_size=96,
              intermediate_size=160, vocab_size=4096, tie_word_embeddings=False, seed=31)


@pytest.fixture(scope="module")
def checkpoint_dir(make_checkpoint):
    return make_checkpoint(**CONFIG)


@pytest.mark.parametrize("ranks", [2, 4])
def test_each_rank_traces_its_slice_of_transformers(checkpoint_dir, parity_record, ranks):
    tokens, trace, config = traced_forward(checkpoint_dir, "f32", ranks, seed=3)
    reference = reference_trace(load_reference(checkpoint_dir, torch.float32), tokens)
    assert_ranks_match(trace, reference, ranks, config, f32_limit, parity_record, f"f32, ndev {ranks}")


@pytest.mark.parametrize("options", [
    dict(num_attention_heads=4, num_key_value_heads=2, head_dim=64, hidden_size=64, intermediate_size=96,
         tie_word_embeddings=True, seed=32),
    dict(num_attention_heads=8, num_key_value_heads=4, head_dim=16, hidden_size=128, intermediate_size=64,
         dtype="bfloat16", seed=33),
])
def test_ranks_give_the_logits_of_one_rank(make_checkpoint, options):
    path = make_checkpoint(num_hidden_layers=2, vocab_size=4096, **options)
    logits = {}
    for ranks in (1, 2, options["num_key_value_heads"]):
        with Qwen3Model(path, device=TEST_DEVICE, dtype="f32", ndev=ranks, max_model_len=64,
                        kv_cache_tokens=64) as model:
            tokens = prompt_for(model.vocab_size, 11, options["seed"])
            logits[ranks] = model.forward([StepRequest(tokens, 0, slot_blocks(model, 0))], all_positions=True)
    for ranks, got in logits.items():
        assert rel_l2(got, logits[1]) < F32_OPERATOR_TOL, f"ndev {ranks}"


@pytest.mark.parametrize("ranks, step_tokens", [(2, 64), (4, 4)])
def test_greedy_generation_on_ranks_equals_transformers_generate(checkpoint_dir, ranks, step_tokens):
    """Four prompts decoded together over paged KV (a step budget of 4 also prefills them in chunks, next to
    decoding requests): transformers' greedy tokens."""
    g = torch.Generator().manual_seed(7)
    batch = [torch.randint(0, 4096, (n,), generator=g).tolist() for n in (3, 9, 5, 14)]
    with Qwen3Model(checkpoint_dir, device=TEST_DEVICE, dtype="f32", ndev=ranks, max_model_len=128,
                    kv_cache_tokens=512, max_step_tokens=step_tokens) as model:
        outputs = [[] for _ in batch]
        for index, token in generate(model, batch, max_new_tokens=32, eos_token_ids=()):
            outputs[index].append(token)
    assert outputs == greedy_continuations(checkpoint_dir, batch, 32)


def test_bf16_ranks_no_worse_than_twice_transformers(checkpoint_dir, parity_record):
    """The half-precision rule of the parity suite, per rank: each intermediate at most twice as far from the
    f32 result as transformers' own bf16 result (the all-reduce adds the ranks' rounded partial sums)."""
    ranks = 2
    tokens, trace, config = traced_forward(checkpoint_dir, "bf16", ranks, seed=5)
    exact = reference_trace(load_reference(checkpoint_dir, torch.float32), tokens)
    theirs = reference_trace(load_reference(checkpoint_dir, torch.bfloat16), tokens)
    order = operator_order(config.num_layers)
    their_errors, _ = compare_traces(theirs, exact, order, lambda name: float("inf"))

    def half_limit(name):
        return 2 * max(their_errors[name], 2.0 ** -8)

    assert_ranks_match(trace, exact, ranks, config, half_limit, parity_record, f"bf16, ndev {ranks}",
                       f"transformers' own errors: {their_errors}")
