"""8-bit checkpoints (FP8 fine-grained, GPTQ-Int8) made from a random Qwen3 at test time, against transformers on
the same model with the dequantized weights: every operator within 1e-5 in f32 (a short prompt reads the 8-bit
weights directly, a long one dequantizes them for the GEMM), bf16 within twice transformers' own bf16 error,
greedy generation identical; tied and untied lm_head; shapes with partial 128-blocks and groups; two ranks."""

from __future__ import annotations

import json

import pytest
import torch

from harness.fixtures.device import TEST_DEVICE
from harness.fixtures.quantized import quantized_checkpoint
from infini_qwen3._native import NativeError
from infini_qwen3.config import ConfigError, Qwen3Config
from infini_qwen3.generation import generate
from infini_qwen3.model import Qwen3Model

from .reference import compare_traces, greedy_continuations, load_reference, operator_order, reference_trace
from .test_operator_parity import HALF, f32_limit, native_trace, prompt_for

# hidden 160 and intermediate 200: partial 128-blocks (FP8) and groups (GPTQ) along both dimensions
SHAPE = dict(num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, head_dim=32, hidden_size=160,
             intermediate_size=200, vocab_size=512)
FORMATS = [("fp8", "float32"), ("fp8", "bfloat16"), ("gptq", "float32")]


@pytest.fixture(scope="module", params=[(m, s, tie) for m, s in FORMATS for tie in (False, True)],
                ids=lambda p: f"{p[0]}-{p[1]}-{'tied' if p[2] else 'untied'}")
def checkpoints(request, make_checkpoint, tmp_path_factory):
    method, scale_dtype, tied = request.param
    dense = make_checkpoint(**SHAPE, tie_word_embeddings=tied, seed=41)
    out = tmp_path_factory.mktemp(f"{method}-{scale_dtype}-{tied}")
    return quantized_checkpoint(dense, out, method, scale_dtype=scale_dtype)


@pytest.mark.parametrize("length", [7, 40], ids=["direct-8-bit", "dequantized-gemm"])
def test_f32_every_operator_matches_transformers_on_the_dequantized_weights(checkpoints, parity_record, length):
    quantized, twin = checkpoints
    with Qwen3Model(quantized, device=TEST_DEVICE, dtype="f32", max_model_len=64, kv_cache_tokens=64) as model:
        tokens = prompt_for(model.vocab_size, length, 3)
        ours = native_trace(model, tokens, "auto")
    reference = reference_trace(load_reference(twin, torch.float32), tokens)
    errors, first = compare_traces(ours, reference, operator_order(SHAPE["num_hidden_layers"]), f32_limit)
    parity_record.add("f32 8-bit", errors, f32_limit)
    assert first is None, f"{first}; all errors: {errors}"


def test_bf16_no_worse_than_twice_transformers(checkpoints, parity_record):
    quantized, twin = checkpoints
    with Qwen3Model(quantized, device=TEST_DEVICE, dtype="bf16", max_model_len=64, kv_cache_tokens=64) as model:
        tokens = prompt_for(model.vocab_size, 9, 4)
        ours = native_trace(model, tokens, "auto")
    exact = reference_trace(load_reference(twin, torch.float32), tokens)
    theirs = reference_trace(load_reference(twin, HALF["bf16"]), tokens)
    order = operator_order(SHAPE["num_hidden_layers"])
    their_errors, _ = compare_traces(theirs, exact, order, lambda name: float("inf"))

    def half_limit(name):
        return 2 * max(their_errors[name], 2.0 ** -8)

    errors, first = compare_traces(ours, exact, order, half_limit)
    parity_record.add("bf16 8-bit", errors, half_limit)
    assert first is None, f"{first}; ours: {errors}; transformers': {their_errors}"


def greedy(quantized, prompts, ndev=1):
    with Qwen3Model(quantized, device=TEST_DEVICE, ndev=ndev, dtype="f32", max_model_len=64,
                    kv_cache_tokens=256) as model:
        got = [[] for _ in prompts]
        for index, token in generate(model, prompts, max_new_tokens=8, eos_token_ids=()):
            got[index].append(token)
    return got


PROMPTS = [prompt_for(512, 5, 7), prompt_for(512, 21, 8)]


def test_greedy_generation_equals_transformers(checkpoints):
    quantized, twin = checkpoints
    assert greedy(quantized, PROMPTS) == greedy_continuations(twin, PROMPTS, 8)


# Two ranks split o_proj's and down's inputs: each rank's part must be whole 128-column groups.
SHAPE_2RANKS = {**SHAPE, "num_attention_heads": 8, "intermediate_size": 256}


@pytest.mark.parametrize("method", ["fp8", "gptq"])
def test_two_ranks_generate_what_transformers_does(make_checkpoint, tmp_path_factory, method):
    dense = make_checkpoint(**SHAPE_2RANKS, seed=43)
    quantized, twin = quantized_checkpoint(dense, tmp_path_factory.mktemp(f"{method}-2ranks"), method)
    assert greedy(quantized, PROMPTS, ndev=2) == greedy_continuations(twin, PROMPTS, 8)


def test_groups_split_between_ranks_are_refused_clearly(checkpoints):
    quantized, _ = checkpoints
    with pytest.raises(NativeError, match="64 input columns per rank are not a whole number of 128-column"):
        Qwen3Model(quantized, device=TEST_DEVICE, ndev=2, dtype="f32", max_model_len=64, kv_cache_tokens=256)


def test_an_fp8_weight_holding_nan_is_refused_by_name(make_checkpoint, tmp_path):
    """E4M3's NaN bytes (0x7F, 0xFF) would be read as +-480 by the 8-bit GEMMs and as NaN by transformers."""
    from safetensors.torch import load_file, save_file

    dense = make_checkpoint(**SHAPE, seed=41)
    quantized, _ = quantized_checkpoint(dense, tmp_path, "fp8", twin=False)
    path = next(quantized.glob("*.safetensors"))
    tensors = load_file(path)
    name = "model.layers.1.mlp.down_proj.weight"
    damaged = tensors[name].view(torch.uint8).clone()
    damaged[3, 5] = 0xFF
    tensors[name] = damaged.view(torch.float8_e4m3fn)
    save_file(tensors, path)
    with pytest.raises(ConfigError, match=r"model\.layers\.1\.mlp\.down_proj\.weight holds NaN"):
        Qwen3Model(quantized, device=TEST_DEVICE, dtype="f32", max_model_len=16, kv_cache_tokens=16)


@pytest.mark.parametrize("config,message", [
    ({"quant_method": "awq", "bits": 4}, "quantization method 'awq' is not supported"),
    ({"quant_method": "gptq", "bits": 4, "group_size": 128}, "gptq with 4 bits is not supported"),
    ({"quant_method": "gptq", "bits": 8, "group_size": 128, "desc_act": True}, "desc_act=true"),
    ({"quant_method": "fp8", "fmt": "e5m2", "weight_block_size": [128, 128]}, "only e4m3"),
    ({"quant_method": "fp8", "fmt": "e4m3", "activation_scheme": "static"}, "activation_scheme"),
    ({"quant_method": "fp8", "fmt": "e4m3"}, "weight_block_size"),
])
def test_unsupported_quantization_is_refused_by_name(make_checkpoint, config, message):
    dense = make_checkpoint(**SHAPE, seed=41)
    raw = {**json.loads((dense / "config.json").read_text()), "quantization_config": config}
    with pytest.raises(ConfigError, match=message):
        Qwen3Config.from_dict(raw)
