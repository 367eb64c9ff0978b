"""How much memory the paged KV cache takes when the user does not say: on the CPU a fixed size; on a GPU, as
vLLM's gpu_memory_utilization, a fraction of the device's memory less what is already in use, the weights and a
reserve for activations and library workspaces."""

from __future__ import annotations

import ctypes
import logging

from .config import Qwen3Config

log = logging.getLogger(__name__)

DEFAULT_KV_CACHE_MEMORY = 1 << 30  # bytes, on the CPU or when the GPU cannot be asked
GPU_MEMORY_UTILIZATION = 0.9
ACTIVATION_RESERVE = 2 << 30  # step scratch, logits, cuBLAS workspaces, CUDA graphs
CUDART_NAMES = ("libcudart.so.13", "libcudart.so.12", "libcudart.so")


def parameter_count(config: Qwen3Config) -> int:
    """Parameters of a Qwen3 dense checkpoint as the native model holds them (lm_head shared when tied)."""
    c = config
    qkv = c.hidden_size * (c.num_heads + 2 * c.num_kv_heads) * c.head_dim
    attention = qkv + c.num_heads * c.head_dim * c.hidden_size
    mlp = 3 * c.hidden_size * c.intermediate_size
    norms = 2 * c.hidden_size + 2 * c.head_dim
    embeddings = c.vocab_size * c.hidden_size * (1 if c.tie_word_embeddings else 2)
    return embeddings + c.num_layers * (attention + mlp + norms) + c.hidden_size


def weight_bytes(config: Qwen3Config, dtype_bytes: int) -> int:
    """Bytes of the weights as the native model holds them: everything in the compute dtype, except the decoder
    projections of an 8-bit checkpoint (one byte each, and an F32 scale per row and input group)."""
    c, q = config, config.quantization
    if q is None:
        return parameter_count(c) * dtype_bytes
    groups = lambda n: -(-n // q.block_k)  # noqa: E731
    rows_in = [((c.num_heads + 2 * c.num_kv_heads) * c.head_dim, c.hidden_size),  # q, k, v
               (c.hidden_size, c.num_heads * c.head_dim), (2 * c.intermediate_size, c.hidden_size),  # o, gate+up
               (c.hidden_size, c.intermediate_size)]  # down
    projections = sum(rows * cols for rows, cols in rows_in)
    scales = sum(rows * groups(cols) for rows, cols in rows_in) * 4
    dense = parameter_count(c) - c.num_layers * projections
    return dense * dtype_bytes + c.num_layers * (projections + scales)


def cuda_memory(device_id: int) -> tuple[int, int] | None:
    """(free, total) bytes of a CUDA device, from the CUDA runtime InfiniCore's NVIDIA build links; None if absent."""
    for name in CUDART_NAMES:
        try:
            cudart = ctypes.CDLL(name)
        except OSError:
            continue
        free, total = ctypes.c_size_t(), ctypes.c_size_t()
        if cudart.cudaSetDevice(device_id) != 0 or cudart.cudaMemGetInfo(ctypes.byref(free), ctypes.byref(total)):
            return None
        return free.value, total.value
    return None


def gpu_kv_budget(free: int, total: int, weight_bytes: int, utilization: float = GPU_MEMORY_UTILIZATION) -> int:
    """What is left for KV of utilization * total once memory in use, the weights and the reserve are counted."""
    budget = int(total * utilization) - (total - free) - weight_bytes - ACTIVATION_RESERVE
    if budget <= 0:
        raise ValueError(f"no device memory left for the KV cache: {utilization:.0%} of {total / 2**30:.1f} GiB, "
                         f"{(total - free) / 2**30:.1f} GiB already in use, {weight_bytes / 2**30:.1f} GiB of weights; "
                         "give --kv-cache-memory explicitly or raise --gpu-memory-utilization")
    return budget


def default_kv_cache_memory(device: str, device_ids: list[int], config: Qwen3Config, dtype_bytes: int,
                            utilization: float = GPU_MEMORY_UTILIZATION) -> int:
    """KV bytes of the whole model: on a GPU, each rank's device gives its budget less its share of the weights,
    and the ranks hold equal shares of every block, so the tightest device decides."""
    if device == "cpu":
        return DEFAULT_KV_CACHE_MEMORY
    ranks = len(device_ids)
    budgets = []
    for device_id in device_ids:
        memory = cuda_memory(device_id)
        if memory is None:
            log.warning("cannot ask the CUDA runtime for free memory; the KV cache gets %d MiB",
                        DEFAULT_KV_CACHE_MEMORY >> 20)
            return DEFAULT_KV_CACHE_MEMORY
        budgets.append(gpu_kv_budget(*memory, weight_bytes(config, dtype_bytes) // ranks, utilization))
    return min(budgets) * ranks
