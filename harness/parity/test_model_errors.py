"""Bad checkpoints and bad steps are errors with a readable message, never a crash."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from harness.fixtures.device import TEST_DEVICE
from infini_qwen3._native import NativeError
from infini_qwen3.config import ConfigError
from infini_qwen3.model import Qwen3Model, SamplingParams, StepRequest


@pytest.fixture(scope="module")
def good(make_checkpoint):
    return make_checkpoint(num_hidden_layers=1, vocab_size=512, seed=41)


def edited_copy(good, tmp_path, edit):
    target = tmp_path / "edited"
    shutil.copytree(good, target)
    tensors = load_file(target / "model.safetensors")
    edit(tensors)
    save_file(tensors, target / "model.safetensors")
    return target


def test_missing_tensor_is_named(good, tmp_path):
    path = edited_copy(good, tmp_path, lambda t: t.pop("model.layers.0.self_attn.k_norm.weight"))
    with pytest.raises(NativeError, match=r"WEIGHT: missing tensors: model\.layers\.0\.self_attn\.k_norm\.weight"):
        Qwen3Model(path, device=TEST_DEVICE, dtype="f32", max_model_len=16, kv_cache_tokens=16)


def test_wrong_shape_is_named(good, tmp_path):
    path = edited_copy(good, tmp_path, lambda t: t.update(
        {"model.layers.0.self_attn.q_norm.weight": torch.ones(7)}))
    with pytest.raises(NativeError, match=r"q_norm\.weight' has shape \[7\], expected \[32\]"):
        Qwen3Model(path, device=TEST_DEVICE, dtype="f32", max_model_len=16, kv_cache_tokens=16)


def test_unexpected_tensor_is_named(good, tmp_path):
    path = edited_copy(good, tmp_path, lambda t: t.update({"model.layers.5.mlp.up_proj.weight": torch.ones(2, 2)}))
    with pytest.raises(NativeError, match=r"unexpected tensor 'model\.layers\.5\.mlp\.up_proj\.weight'"):
        Qwen3Model(path, device=TEST_DEVICE, dtype="f32", max_model_len=16, kv_cache_tokens=16)


def test_wrong_dtype_is_named(good, tmp_path):
    path = edited_copy(good, tmp_path, lambda t: t.update(
        {"model.norm.weight": torch.ones(64, dtype=torch.float64)}))
    with pytest.raises(ValueError, match=r"model\.norm\.weight.*unsupported dtype 'F64'"):
        Qwen3Model(path, device=TEST_DEVICE, dtype="f32", max_model_len=16, kv_cache_tokens=16)


def test_untied_checkpoint_without_lm_head_fails(good, tmp_path):
    target = tmp_path / "untied"
    shutil.copytree(good, target)
    raw = json.loads((target / "config.json").read_text())
    raw["tie_word_embeddings"] = False
    (target / "config.json").write_text(json.dumps(raw))
    with pytest.raises(NativeError, match="missing tensors: lm_head.weight"):
        Qwen3Model(target, device=TEST_DEVICE, dtype="f32", max_model_len=16, kv_cache_tokens=16)


@pytest.mark.parametrize("change,message", [
    ({"use_sliding_window": True}, "use_sliding_window"),
    ({"rope_scaling": {"rope_type": "yarn", "factor": 4.0}}, "yarn"),
    ({"num_key_value_heads": 3}, "multiple of num_key_value_heads"),
    ({"model_type": "llama"}, "not a Qwen3"),
])
def test_unsupported_config_is_refused(good, tmp_path, change, message):
    target = tmp_path / "config"
    shutil.copytree(good, target)
    raw = json.loads((target / "config.json").read_text())
    raw.update(change)
    (target / "config.json").write_text(json.dumps(raw))
    with pytest.raises(ConfigError, match=message):
        Qwen3Model(target, device=TEST_DEVICE, dtype="f32", max_model_len=16, kv_cache_tokens=16)


@pytest.fixture(scope="module")
def model(good):
    # 8 blocks of 4 tokens; a request holds at most 16 tokens (4 blocks)
    with Qwen3Model(good, device=TEST_DEVICE, dtype="f32", max_model_len=16, kv_cache_tokens=32, block_size=4,
                    max_step_tokens=12) as m:
        yield m


def test_context_overflow_is_a_capacity_error(model):
    with pytest.raises(NativeError, match="CAPACITY: request 0 would reach position 17 but the context holds 16"):
        model.forward([StepRequest([1, 2, 3], 14, [0, 1, 2, 3])])
    model.forward([StepRequest([1, 2, 3], 0, [0])])  # still usable afterwards


def test_a_block_table_too_short_is_a_capacity_error(model):
    with pytest.raises(NativeError, match="CAPACITY: request 0 needs 2 KV blocks; its block table has 1"):
        model.forward([StepRequest([1, 2, 3, 4, 5], 0, [0])])


@pytest.mark.parametrize("requests,message", [
    ([StepRequest([600], 0, [0])], "token id 600 is outside the vocabulary of 512"),
    ([StepRequest([1], 0, [9])], "request 0 uses KV block 9 of 8"),
    ([StepRequest([1], 0, [0]), StepRequest([2], 0, [0])], "KV block 0 is written by one request of the step and "
                                                           "used again by request 1"),
    ([StepRequest([1], 4, [0, 1]), StepRequest([2], 0, [0])], "KV block 0 is written by one request of the step"),
    ([StepRequest(list(range(13)), 0, [0, 1, 2, 3])], "13 tokens exceed max_step_tokens 12"),
    ([StepRequest([], 0, [0]), StepRequest([1], 0, [1])], "request 0 has no tokens"),
])
def test_bad_step_is_invalid_argument(model, requests, message):
    with pytest.raises(NativeError, match="INVALID_ARGUMENT: invalid batch: " + message):
        model.forward(requests)


@pytest.mark.parametrize("params,message", [
    (SamplingParams(-1.0, 0, 1.0), "temperature"),
    (SamplingParams(1.0, 0, 0.0), "top_p"),
    (SamplingParams(1.0, 0, 1.5), "top_p"),
])
def test_bad_sampling_is_invalid_argument(model, params, message):
    with pytest.raises(NativeError, match=message):
        model.infer([StepRequest([1, 2], 0, [0], params, 0.5)])


@pytest.mark.parametrize("options, message", [
    (dict(ndev=3), "INVALID_ARGUMENT: ndev 3 must divide the 2 KV heads, the intermediate size 160 and the "
                   "vocabulary 512"),
    (dict(device_ids=[0, 1]), "INVALID_ARGUMENT: device id 1 is not one of the 1 cpu devices visible"),
])
@pytest.mark.skipif(TEST_DEVICE != "cpu", reason="the CPU's device list")
def test_an_impossible_split_is_refused_clearly(good, options, message):
    with pytest.raises(NativeError, match=message):
        Qwen3Model(good, device=TEST_DEVICE, dtype="f32", max_model_len=16, kv_cache_tokens=16, **options)
