"""Every traced intermediate of the native forward against transformers, operator by operator.
A failure names the first operator (and layer) whose output diverges."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from harness.fixtures.blocks import slot_blocks
from harness.fixtures.device import TEST_DEVICE
from infini_qwen3.model import Qwen3Model, StepRequest

from .reference import compare_traces, load_reference, operator_order, reference_trace, unpermute_gptj

F32_OPERATOR_TOL = 1e-5
F32_LOGITS_TOL = 1e-4


@st.composite
def qwen3_configs(draw):
    kv_heads = draw(st.sampled_from([1, 2, 4]))
    ratio = draw(st.sampled_from([1, 2, 4]))
    head_dim = draw(st.sampled_from([16, 32, 64, 128]))
    heads = kv_heads * ratio
    # hidden is drawn independently of heads * head_dim: they differ in Qwen3-0.6B and 4B.
    hidden = draw(st.sampled_from([32, 64, 96, 128]))
    return dict(
        num_hidden_layers=draw(st.integers(1, 3)),
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        head_dim=head_dim,
        hidden_size=hidden,
        intermediate_size=draw(st.sampled_from([64, 96, 160])),
        vocab_size=draw(st.sampled_from([512, 4096, 151936])),
        tie_word_embeddings=draw(st.booleans()),
        config_form=draw(st.sampled_from(["rope_theta", "rope_parameters"])),
        max_shard_size=draw(st.sampled_from([None, "200KB"])),
        dtype=draw(st.sampled_from(["float32", "bfloat16"])),
        seed=draw(st.integers(0, 1000)),
    )


def prompt_for(vocab_size: int, length: int, seed: int) -> list[int]:
    return torch.randint(0, vocab_size, (length,), generator=torch.Generator().manual_seed(seed)).tolist()


def native_trace(model: Qwen3Model, tokens: list[int], rope_layout: str) -> dict[str, np.ndarray]:
    model.set_trace(True)
    model.forward([StepRequest(tokens, 0, slot_blocks(model, 0))], all_positions=True)
    trace = model.trace()
    model.set_trace(False)
    if rope_layout == "gpt_j":
        trace = {k: unpermute_gptj(k, v, model.config.head_dim) for k, v in trace.items()}
    return trace


def f32_limit(name: str) -> float:
    return F32_LOGITS_TOL if name == "logits" else F32_OPERATOR_TOL


def assert_f32_parity(record, checkpoint_dir, rope_layout="auto", length=7, seed=0):
    with Qwen3Model(checkpoint_dir, device=TEST_DEVICE, dtype="f32", max_model_len=64, kv_cache_tokens=64,
                    rope_layout=rope_layout) as model:
        tokens = prompt_for(model.vocab_size, length, seed)
        ours = native_trace(model, tokens, rope_layout)
        config = model.config
    reference = reference_trace(load_reference(checkpoint_dir, torch.float32), tokens)
    errors, first = compare_traces(ours, reference, operator_order(config.num_layers), f32_limit)
    record.add("f32", errors, f32_limit)
    assert first is None, f"{first}; all errors: {errors}"


@given(options=qwen3_configs())
def test_f32_every_operator_matches_transformers(make_checkpoint, parity_record, options):
    assert_f32_parity(parity_record, make_checkpoint(**options), seed=options["seed"])


def test_f32_parity_with_gptj_rope_layout(make_checkpoint, parity_record):
    """Backends without NeoX RoPE (Ascend, Cambricon, Kunlun) get permuted q/k rows: still the same model."""
    assert_f32_parity(parity_record, make_checkpoint(num_attention_heads=4, num_key_value_heads=2, head_dim=32, seed=3),
                      rope_layout="gpt_j")


def test_parity_localizes_a_wrong_operator(make_checkpoint):
    """The harness must name the first diverging operator: perturb q_norm of layer 1 in the reference."""
    path = make_checkpoint(num_hidden_layers=2, seed=5)
    with Qwen3Model(path, device=TEST_DEVICE, dtype="f32", max_model_len=64, kv_cache_tokens=64) as model:
        tokens = prompt_for(model.vocab_size, 5, 1)
        ours = native_trace(model, tokens, "auto")
    reference_model = load_reference(path, torch.float32)
    with torch.no_grad():
        reference_model.model.layers[1].self_attn.q_norm.weight.mul_(1.5)
    reference = reference_trace(reference_model, tokens)
    _, first = compare_traces(ours, reference, operator_order(2), lambda name: F32_OPERATOR_TOL)
    assert first is not None and first.name == "layers.1.q_norm"


HALF = {"bf16": torch.bfloat16, "f16": torch.float16}


@pytest.mark.parametrize("dtype", ["bf16", "f16"])
@pytest.mark.parametrize("options", [
    dict(num_hidden_layers=2, seed=11),
    dict(num_hidden_layers=3, num_attention_heads=8, num_key_value_heads=2, head_dim=64, hidden_size=96,
         tie_word_embeddings=False, dtype="bfloat16", seed=12),
])
def test_half_precision_no_worse_than_twice_transformers(make_checkpoint, parity_record, dtype, options):
    """Thresholds come from transformers itself: its bf16/f16 result against its own f32 result. Ours (in the
    same dtype) may be at most twice as far from that f32 result, operator by operator."""
    path = make_checkpoint(**options)
    with Qwen3Model(path, device=TEST_DEVICE, dtype=dtype, max_model_len=64, kv_cache_tokens=64) as model:
        tokens = prompt_for(model.vocab_size, 9, options["seed"])
        ours = native_trace(model, tokens, "auto")
        layers = model.config.num_layers
    exact = reference_trace(load_reference(path, torch.float32), tokens)
    theirs = reference_trace(load_reference(path, HALF[dtype]), tokens)
    order = operator_order(layers)
    their_errors, _ = compare_traces(theirs, exact, order, lambda name: float("inf"))
    # A floor of one half-precision rounding step keeps operators that transformers computes exactly
    # (the embedding lookup) from demanding bit-identical results.
    floor = 2.0 ** -8 if dtype == "bf16" else 2.0 ** -11
    def half_limit(name):
        return 2 * max(their_errors[name], floor)

    errors, first = compare_traces(ours, exact, order, half_limit)
    parity_record.add(dtype, errors, half_limit)
    assert first is None, f"{first}; ours: {errors}; transformers': {their_errors}"
