"""The default size of the KV cache: fixed on the CPU; on a GPU, what a memory-utilization fraction leaves once
memory in use, the weights and the reserve are counted (the CUDA runtime's answer is stubbed here)."""

from __future__ import annotations

import pytest
from safetensors import safe_open

from harness.fixtures.checkpoints import checkpoint
from infini_qwen3 import kv_memory
from infini_qwen3.config import Qwen3Config

GIB = 1 << 30


@pytest.mark.parametrize("tied", [True, False])
def test_parameter_count_is_what_the_checkpoint_holds(tmp_path_factory, tied):
    path = checkpoint(tmp_path_factory.mktemp("params"), num_hidden_layers=2, tie_word_embeddings=tied, seed=3)
    with safe_open(path / "model.safetensors", "pt") as f:
        stored = sum(_numel(f.get_slice(name).get_shape()) for name in f.keys())
    assert kv_memory.parameter_count(Qwen3Config.from_file(path)) == stored


@pytest.mark.parametrize("method", ["fp8", "gptq"])
def test_weight_bytes_of_an_8_bit_checkpoint_are_what_the_model_holds(tmp_path_factory, method):
    """One byte per projection weight and an F32 scale per row and group, counted from the converted tensors."""
    from harness.fixtures.quantized import quantized_checkpoint
    from infini_qwen3.weights import iter_tensors

    dense = checkpoint(tmp_path_factory.mktemp("dense8"), num_hidden_layers=2, hidden_size=160, seed=3)
    quantized, _ = quantized_checkpoint(dense, tmp_path_factory.mktemp(method), method)
    config = Qwen3Config.from_file(quantized)
    held = 0
    for ref in iter_tensors(quantized, config.tie_word_embeddings, config.quantization):
        item = 4 if ref.name.endswith("_scale") else 1 if ref.name.endswith("proj.weight") else 2
        held += _numel(ref.shape) * item
    assert kv_memory.weight_bytes(config, 2) == held < kv_memory.parameter_count(config) * 2


def _numel(shape) -> int:
    total = 1
    for size in shape:
        total *= size
    return total


def test_gpu_budget_subtracts_memory_in_use_weights_and_reserve():
    # 80 GiB card, 1 GiB already in use, 4 GiB of weights, 90 %: 72 - 1 - 4 - 2 (reserve) = 65 GiB
    assert kv_memory.gpu_kv_budget(79 * GIB, 80 * GIB, 4 * GIB, 0.9) == 65 * GIB


def test_gpu_budget_refuses_when_nothing_is_left():
    with pytest.raises(ValueError, match="no device memory left for the KV cache"):
        kv_memory.gpu_kv_budget(5 * GIB, 24 * GIB, 16 * GIB, 0.9)


def test_default_on_the_cpu_is_fixed_and_on_a_gpu_follows_its_memory(monkeypatch, tmp_path_factory):
    config = Qwen3Config.from_file(checkpoint(tmp_path_factory.mktemp("cfg"), num_hidden_layers=2, seed=3))
    assert kv_memory.default_kv_cache_memory("cpu", [0], config, 2) == kv_memory.DEFAULT_KV_CACHE_MEMORY
    monkeypatch.setattr(kv_memory, "cuda_memory", lambda device_id: (79 * GIB, 80 * GIB))
    weights = kv_memory.parameter_count(config) * 2
    expected = kv_memory.gpu_kv_budget(79 * GIB, 80 * GIB, weights, 0.5)
    assert kv_memory.default_kv_cache_memory("nvidia", [0], config, 2, 0.5) == expected
    monkeypatch.setattr(kv_memory, "cuda_memory", lambda device_id: None)  # no CUDA runtime to ask
    assert kv_memory.default_kv_cache_memory("nvidia", [0], config, 2) == kv_memory.DEFAULT_KV_CACHE_MEMORY


def test_ranks_share_the_kv_cache_and_the_tightest_device_decides(monkeypatch, tmp_path_factory):
    config = Qwen3Config.from_file(checkpoint(tmp_path_factory.mktemp("cfg"), num_hidden_layers=2, seed=3))
    free = {0: 79 * GIB, 1: 60 * GIB}
    monkeypatch.setattr(kv_memory, "cuda_memory", lambda device_id: (free[device_id], 80 * GIB))
    half_weights = kv_memory.parameter_count(config) * 2 // 2
    tightest = kv_memory.gpu_kv_budget(60 * GIB, 80 * GIB, half_weights, 0.9)
    assert kv_memory.default_kv_cache_memory("nvidia", [0, 1], config, 2) == 2 * tightest
