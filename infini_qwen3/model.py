"""A Qwen3 checkpoint loaded into the native model: one batched step at a time (infer samples, forward
returns logits), plus the tokenizer and generation defaults of the checkpoint."""

from __future__ import annotations

import ctypes
import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import _native
from .block_manager import BlockManager
from .config import Qwen3Config
from .devices import rank_devices
from .kv_memory import GPU_MEMORY_UTILIZATION, default_kv_cache_memory
from .tokenizer import Tokenizer
from .weights import checkpoint_bytes, iter_tensors

DTYPES = {"f32": _native.DTYPE_F32, "f16": _native.DTYPE_F16, "bf16": _native.DTYPE_BF16}
DTYPE_BYTES = {"f32": 4, "f16": 2, "bf16": 2}
KV_BLOCK_SIZE = 16  # tokens per KV block, as vLLM
GREEDY_TEMPERATURE = 1e-5
FLOAT32_TINY = float(np.finfo(np.float32).tiny)
ROPE_LAYOUTS = {"auto": _native.ROPE_AUTO, "gpt_j": _native.ROPE_GPT_J, "neox": _native.ROPE_GPT_NEOX}
# iq3Meta.cuda_graphs: "always" attempts captures where the backend cannot (the CPU), to test the eager fallback.
CUDA_GRAPH_MODES = {False: 0, True: 1, "off": 0, "on": 1, "always": 2}


# Tokens one step may take (prefill chunks + decode rows): library callers prefill in big chunks; the server
# chooses smaller steps (serve --max-step-tokens, 512) so that a long prompt delays running streams less.
DEFAULT_MAX_STEP_TOKENS = 2048


@dataclass
class SamplingParams:
    temperature: float = 1.0
    top_k: int = 0  # 0: no limit
    top_p: float = 1.0

    @property
    def greedy(self) -> bool:
        """Temperatures below GREEDY_TEMPERATURE are greedy (as vLLM): dividing logits by them overflows."""
        return self.temperature < GREEDY_TEMPERATURE or self.top_k == 1


@dataclass
class StepRequest:
    """One request's part of a step: its new tokens, how many it already has in the KV cache, and its KV blocks
    in position order (enough for past + new tokens)."""

    tokens: list[int]
    past: int
    blocks: list[int]
    sampling: SamplingParams | None = None
    random: float = 0.0


@dataclass(frozen=True)
class GenerationDefaults:
    eos_token_ids: tuple[int, ...]
    sampling: SamplingParams

    @classmethod
    def from_dir(cls, model_dir: Path, config: Qwen3Config) -> "GenerationDefaults":
        path = model_dir / "generation_config.json"
        raw = json.loads(path.read_text()) if path.is_file() else {}
        eos = raw.get("eos_token_id", list(config.eos_token_ids))
        eos_ids = (eos,) if isinstance(eos, int) else tuple(eos or ())
        do_sample = raw.get("do_sample", False)
        sampling = SamplingParams(
            temperature=float(raw.get("temperature", 1.0)) if do_sample else 0.0,
            top_k=int(raw.get("top_k", 0) or 0),
            top_p=float(raw.get("top_p", 1.0) or 1.0),
        )
        return cls(eos_ids, sampling)


class Qwen3Model:
    def __init__(self, model_dir: str | Path, *, device: str = "cpu", device_id: int = 0, ndev: int = 1,
                 device_ids: Sequence[int] | None = None, dtype: str = "bf16", max_model_len: int | None = None,
                 kv_cache_tokens: int | None = None,
                 kv_cache_memory: int | None = None, block_size: int = KV_BLOCK_SIZE,
                 max_step_tokens: int = DEFAULT_MAX_STEP_TOKENS, rope_layout: str = "auto",
                 cuda_graphs: bool | str = True,
                 gpu_memory_utilization: float = GPU_MEMORY_UTILIZATION, progress: bool = False):
        """The KV pool holds kv_cache_tokens tokens, else as many blocks as fit kv_cache_memory bytes (default:
        kv_memory.default_kv_cache_memory: 1 GiB on the CPU, gpu_memory_utilization of a GPU). max_model_len
        (default: the checkpoint's, capped to what the pool holds) is the context of one request; asking for more
        than the pool holds is an error. cuda_graphs: decode steps are captured and replayed as graphs where the
        device supports it (NVIDIA); the CPU runs them eagerly ("always": attempt captures on any device, falling
        back to eager steps where it cannot: graph_stats() counts both). ndev > 1 (or device_ids) splits the model over
        ranks (devices.rank_devices); the KV pool and kv_cache_memory are the whole model's, all ranks together."""
        self.model_dir = Path(model_dir)
        self.config = Qwen3Config.from_file(self.model_dir)
        if dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
        if device not in _native.DEVICES:
            raise ValueError(f"device must be one of {sorted(_native.DEVICES)}, got {device!r}")
        self.device, self.dtype = device, dtype
        self.device_ids = rank_devices(device, device_id, ndev, device_ids)
        self.block_size = block_size
        c = self.config
        self.kv_block_bytes = 2 * c.num_layers * c.num_kv_heads * c.head_dim * DTYPE_BYTES[dtype] * block_size
        if kv_cache_tokens is None and kv_cache_memory is None:
            kv_cache_memory = default_kv_cache_memory(device, self.device_ids, c, DTYPE_BYTES[dtype],
                                                      gpu_memory_utilization)
        self.kv_blocks = self._pool_blocks(kv_cache_tokens, kv_cache_memory)
        self.max_model_len = self._context_length(max_model_len)
        self.block_manager = BlockManager(self.kv_blocks, block_size)  # the one owner of the pool's blocks
        self.max_step_tokens = max_step_tokens
        if cuda_graphs not in CUDA_GRAPH_MODES:
            raise ValueError(f"cuda_graphs must be a bool, 'on', 'off' or 'always', got {cuda_graphs!r}")
        self.cuda_graphs = cuda_graphs
        self.vocab_size = self.config.vocab_size
        self._lib = _native.load()
        self._handle = ctypes.c_void_p()
        self._lock = threading.Lock()
        meta = self._meta(dtype, rope_layout)
        ids = (ctypes.c_int32 * len(self.device_ids))(*self.device_ids)
        _native.check(self._lib.iq3CreateModel(ctypes.byref(meta), _native.DEVICES[device], len(ids), ids,
                                               ctypes.byref(self._handle)))
        try:
            self._load_weights(progress)
        except BaseException:
            self.close()
            raise
        self.tokenizer = Tokenizer.from_dir(self.model_dir)
        self.defaults = GenerationDefaults.from_dir(self.model_dir, self.config)

    @property
    def weight_format(self) -> str:
        """What the projections' weights are, for logs and /v1/models: the compute dtype, or their 8-bit format."""
        q = self.config.quantization
        return f"{self.dtype} (dense)" if q is None else f"8-bit weights: {q.label}; compute {self.dtype}"

    def _pool_blocks(self, tokens: int | None, memory: int | None) -> int:
        if tokens is not None:
            blocks = -(-tokens // self.block_size)
        else:
            blocks = memory // self.kv_block_bytes
        if blocks < 1:
            raise ValueError(f"the KV cache must hold at least one block of {self.block_size} tokens "
                             f"({self.kv_block_bytes} bytes for this model)")
        return blocks

    def _context_length(self, requested: int | None) -> int:
        limit = self.config.max_position_embeddings
        pool_tokens = self.kv_blocks * self.block_size
        if requested is None:
            return min(limit, pool_tokens)
        requested = min(requested, limit)
        if requested > pool_tokens:
            need = -(-requested // self.block_size) * self.kv_block_bytes
            raise ValueError(f"a context of {requested} tokens needs {need / 2**20:.1f} MiB of KV cache; the pool "
                             f"holds {pool_tokens} tokens ({self.kv_blocks * self.kv_block_bytes / 2**20:.1f} MiB): "
                             "give the KV cache more memory or lower the context length")
        return requested

    def _meta(self, dtype: str, rope_layout: str) -> _native.Meta:
        c = self.config
        return _native.Meta(
            num_layers=c.num_layers, hidden_size=c.hidden_size, intermediate_size=c.intermediate_size,
            num_heads=c.num_heads, num_kv_heads=c.num_kv_heads, head_dim=c.head_dim, vocab_size=c.vocab_size,
            max_position_embeddings=c.max_position_embeddings, rms_norm_eps=c.rms_norm_eps,
            rope_theta=c.rope_theta, tie_word_embeddings=int(c.tie_word_embeddings), dtype=DTYPES[dtype],
            rope_layout=ROPE_LAYOUTS[rope_layout], kv_blocks=self.kv_blocks, kv_block_size=self.block_size,
            max_seq_tokens=self.max_model_len, max_step_tokens=self.max_step_tokens,
            cuda_graphs=CUDA_GRAPH_MODES[self.cuda_graphs],
            weight_format=c.quantization.weight_format if c.quantization else _native.WEIGHTS_DENSE,
            weight_block_k=c.quantization.block_k if c.quantization else 0,
        )

    def _load_weights(self, progress: bool) -> None:
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=checkpoint_bytes(self.model_dir), unit="B", unit_scale=True, desc="loading weights")
        try:
            for ref in iter_tensors(self.model_dir, self.config.tie_word_embeddings, self.config.quantization):
                shape = (ctypes.c_uint64 * len(ref.shape))(*ref.shape)
                _native.check(self._lib.iq3LoadWeight(self._handle, ref.name.encode(), ref.dtype, len(ref.shape),
                                                      shape, ctypes.c_void_p(ref.address)))
                if bar is not None:
                    bar.update(ref.nbytes)
        finally:
            if bar is not None:
                bar.close()
        _native.check(self._lib.iq3FinishLoading(self._handle))

    # -- steps -----------------------------------------------------------------------------------------------
    @staticmethod
    def _batch(requests: list[StepRequest]) -> tuple[_native.Batch, list]:
        tokens = [t for r in requests for t in r.tokens]
        width = max(1, max(len(r.blocks) for r in requests))
        tables = [b for r in requests for b in r.blocks + [0] * (width - len(r.blocks))]
        arrays = [
            (ctypes.c_uint32 * len(tokens))(*tokens),
            (ctypes.c_uint32 * len(requests))(*[len(r.tokens) for r in requests]),
            (ctypes.c_uint32 * len(requests))(*[r.past for r in requests]),
            (ctypes.c_uint32 * len(tables))(*tables),
        ]
        batch = _native.Batch(arrays[0], len(tokens), arrays[1], arrays[2], len(requests), arrays[3], width)
        return batch, arrays  # the arrays must outlive the call

    def infer(self, requests: list[StepRequest]) -> list[int]:
        """Runs one step and samples one token per request (InfiniCore random_sample on the device)."""
        return self._infer(requests, None)

    def infer_with_logits(self, requests: list[StepRequest]) -> tuple[list[int], np.ndarray]:
        """infer() that also returns each request's raw float32 logits [requests, vocab] (before temperature)."""
        logits = np.empty((len(requests), self.vocab_size), dtype=np.float32)
        return self._infer(requests, logits), logits

    def _infer(self, requests: list[StepRequest], logits: np.ndarray | None) -> list[int]:
        batch, keep = self._batch(requests)
        n = len(requests)
        params = [r.sampling or SamplingParams(temperature=0.0) for r in requests]
        temperature = (ctypes.c_float * n)(*[p.temperature for p in params])
        top_k = (ctypes.c_uint32 * n)(*[max(0, p.top_k) for p in params])
        # A positive top_p below float32's smallest normal would become 0, which the native sampler refuses.
        top_p = (ctypes.c_float * n)(*[max(p.top_p, FLOAT32_TINY) if p.top_p > 0 else p.top_p for p in params])
        random = (ctypes.c_float * n)(*[0.0 if p.greedy else r.random for p, r in zip(params, requests)])
        sampling = _native.Sampling(temperature, top_k, top_p, random)
        out = (ctypes.c_uint32 * n)()
        with self._lock:
            if logits is None:
                _native.check(self._lib.iq3Infer(self._handle, ctypes.byref(batch), ctypes.byref(sampling), out))
            else:
                _native.check(self._lib.iq3InferWithLogits(self._handle, ctypes.byref(batch), ctypes.byref(sampling),
                                                           out, logits.ctypes.data_as(ctypes.POINTER(ctypes.c_float))))
        del keep
        return list(out)

    def forward(self, requests: list[StepRequest], all_positions: bool = False) -> np.ndarray:
        """Runs one step and returns float32 logits: [total tokens, vocab] or [requests, vocab] (last tokens)."""
        batch, keep = self._batch(requests)
        rows = batch.ntok if all_positions else len(requests)
        logits = np.empty((rows, self.vocab_size), dtype=np.float32)
        with self._lock:
            _native.check(self._lib.iq3Forward(self._handle, ctypes.byref(batch), int(all_positions),
                                               logits.ctypes.data_as(ctypes.POINTER(ctypes.c_float))))
        del keep
        return logits

    # -- tracing ---------------------------------------------------------------------------------------------
    def set_trace(self, enabled: bool) -> None:
        _native.check(self._lib.iq3SetTrace(self._handle, int(enabled)))

    def trace(self) -> dict[str, np.ndarray]:
        """The intermediates recorded by the last step, by name (float32 host copies)."""
        count = ctypes.c_uint32()
        _native.check(self._lib.iq3TraceCount(self._handle, ctypes.byref(count)))
        result = {}
        for i in range(count.value):
            name = ctypes.c_char_p()
            ndim = ctypes.c_uint32()
            shape = (ctypes.c_uint64 * 4)()
            _native.check(self._lib.iq3TraceInfo(self._handle, i, ctypes.byref(name), ctypes.byref(ndim), shape))
            array = np.empty(tuple(shape[: ndim.value]), dtype=np.float32)
            _native.check(self._lib.iq3TraceCopy(self._handle, i, array.ctypes.data_as(ctypes.POINTER(ctypes.c_float))))
            result[name.value.decode()] = array
        return result

    def graph_stats(self) -> dict[str, int]:
        """Decode steps captured, replayed and failed to capture as graphs since the model was created."""
        stats = _native.GraphStats()
        with self._lock:
            _native.check(self._lib.iq3GetGraphStats(self._handle, ctypes.byref(stats)))
        return {name: getattr(stats, name) for name, _ in _native.GraphStats._fields_}

    def close(self) -> None:
        """Frees the native model, after any step that is running (the step holds the lock)."""
        lock = getattr(self, "_lock", None)
        if lock is None:
            return
        with lock:
            if getattr(self, "_handle", None):
                self._lib.iq3DestroyModel(self._handle)
                self._handle = ctypes.c_void_p()

    def __enter__(self) -> "Qwen3Model":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass
