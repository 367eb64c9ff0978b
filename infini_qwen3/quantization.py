"""8-bit checkpoints: what a `quantization_config` says, and the conversion of their tensors into the form the native
model keeps (infini_qwen3.h, IQ3_WEIGHTS_*): for each decoder projection an 8-bit `<name>.weight` [out, in] and
F32 scales `<name>.weight_scale` [out, ceil(in / block_k)], one scale per row and input group.

- Fine-grained FP8 (`quant_method: "fp8"`, Qwen's `Qwen3-*-FP8`): `weight` holds E4M3 values [out, in], passed on
  as their bytes; `weight_scale_inv` [ceil(out / bn), ceil(in / bk)] (bf16 or f32) multiplies each bn x bk block;
  it is widened to F32 and repeated over each block's rows.
- GPTQ 8-bit (`quant_method: "gptq"`, `bits: 8`, symmetric, `desc_act: false`): `qweight` int32 [in / 4, out] holds
  four 8-bit values along the input, `qzeros` int32 [groups, out / 4] four zero points along the output (AutoGPTQ's
  `checkpoint_format: "gptq"` stores each minus one, GPTQModel's `"gptq_v2"` as is), `scales` f16 [groups, out],
  `g_idx` the group of each input (must be in order). The int8 weight is value - zero point; scales transposed.

Anything else refuses to load, naming what is not supported."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from . import _native
from .config import ConfigError

# The decoder projections that 8-bit checkpoints quantize (the embedding, norms and lm_head stay dense).
PROJECTION = re.compile(r"^(model\.layers\.\d+\.(?:self_attn\.[qkvo]_proj|mlp\.(?:gate|up|down)_proj))\.")
FP8_E4M3 = "F8_E4M3"


@dataclass(frozen=True)
class Quantization:
    method: str  # "fp8" or "gptq"
    weight_format: int  # IQ3_WEIGHTS_*
    block_n: int  # rows per scale in the checkpoint (FP8 blocks); GPTQ: 1
    block_k: int  # inputs per scale
    zero_offset: int = 0  # GPTQ: what to add to a stored zero point (1 for AutoGPTQ's format)

    @property
    def label(self) -> str:
        return {"fp8": f"fp8 e4m3, {self.block_n}x{self.block_k} blocks",
                "gptq": f"gptq int8, groups of {self.block_k}"}[self.method]


def from_config(raw: dict) -> Quantization | None:
    """The checkpoint's quantization_config (None: a dense checkpoint)."""
    q = raw.get("quantization_config")
    if q is None:
        return None
    if not isinstance(q, dict):
        raise ConfigError("quantization_config must be an object")
    method = q.get("quant_method")
    if method == "fp8":
        return _fp8(q)
    if method == "gptq":
        return _gptq(q)
    raise ConfigError(f"quantization method {method!r} is not supported (supported: fp8 with e4m3 blocks, "
                      "gptq with 8 bits)")


def _fp8(q: dict) -> Quantization:
    if q.get("fmt", "e4m3") != "e4m3":
        raise ConfigError(f"fp8 format {q.get('fmt')!r} is not supported (only e4m3)")
    if q.get("activation_scheme", "dynamic") != "dynamic":
        raise ConfigError(f"fp8 activation_scheme {q.get('activation_scheme')!r} is not supported: activations stay "
                          "in the compute dtype (dynamic)")
    block = q.get("weight_block_size")
    if not (isinstance(block, list) and len(block) == 2 and all(isinstance(b, int) and b > 0 for b in block)):
        raise ConfigError(f"fp8 weight_block_size must be [rows, columns], got {block!r} (per-tensor FP8 is not "
                          "supported)")
    return Quantization("fp8", _native.WEIGHTS_FP8_E4M3, block[0], block[1])


def _gptq(q: dict) -> Quantization:
    if q.get("bits") != 8:
        raise ConfigError(f"gptq with {q.get('bits')} bits is not supported (only 8)")
    if q.get("desc_act"):
        raise ConfigError("gptq with desc_act=true (activation order) is not supported")
    if q.get("sym") is False:
        raise ConfigError("asymmetric gptq (sym=false) is not supported")
    group = q.get("group_size")
    if not isinstance(group, int) or group <= 0:
        raise ConfigError(f"gptq group_size {group!r} is not supported (a positive group size)")
    fmt = q.get("checkpoint_format", "gptq")
    if fmt not in ("gptq", "gptq_v2"):
        raise ConfigError(f"gptq checkpoint_format {fmt!r} is not supported")
    return Quantization("gptq", _native.WEIGHTS_INT8, 1, group, zero_offset=1 if fmt == "gptq" else 0)


@dataclass
class Converted:
    """A tensor made here (host memory the native loader copies from)."""

    name: str
    array: np.ndarray

    @property
    def dtype(self) -> int:
        return {np.dtype(np.int8): _native.DTYPE_I8, np.dtype(np.uint8): _native.DTYPE_U8,
                np.dtype(np.float32): _native.DTYPE_F32}[self.array.dtype]

    @property
    def shape(self) -> tuple[int, ...]:
        return self.array.shape

    @property
    def address(self) -> int:
        return self.array.ctypes.data

    @property
    def nbytes(self) -> int:
        return self.array.nbytes


class Converter:
    """Turns a quantized checkpoint's tensors, in any order and across files, into the model's. feed() takes one
    tensor (name, its array, and its safetensors dtype) and returns what is ready: passed-through tensors at
    once, a projection's pair once all its parts were seen."""

    def __init__(self, quantization: Quantization):
        self.q = quantization
        self.parts: dict[str, dict[str, np.ndarray]] = {}

    @staticmethod
    def takes(name: str) -> bool:
        """A part of a decoder projection (the rest passes through unchanged)."""
        return PROJECTION.match(name) is not None

    def feed(self, name: str, array: np.ndarray, safetensors_dtype: str) -> list[Converted] | None:
        """None: not a quantized projection's part (the caller passes the tensor on as it is)."""
        found = PROJECTION.match(name)
        if found is None:
            return None
        module, part = found.group(1), name[len(found.group(1)) + 1:]
        wanted = ("weight", "weight_scale_inv") if self.q.method == "fp8" else ("qweight", "qzeros", "scales",
                                                                                 "g_idx")
        if part == "bias":
            raise ConfigError(f"{name}: Qwen3 projections have no bias")
        if part not in wanted:
            raise ConfigError(f"{name}: a {self.q.label} checkpoint should not have {part!r} here (expected "
                              f"{', '.join(wanted)})")
        if part == "weight" and safetensors_dtype != FP8_E4M3:
            raise ConfigError(f"{name} is {safetensors_dtype}; this {self.q.label} checkpoint needs every decoder "
                              "projection quantized (F8_E4M3)")
        pieces = self.parts.setdefault(module, {})
        pieces[part] = np.array(array, copy=True)  # the mapped file may close before the other parts arrive
        if set(pieces) != set(wanted):
            return []
        del self.parts[module]
        weight, scales = self._fp8(module, pieces) if self.q.method == "fp8" else self._gptq(module, pieces)
        return [Converted(module + ".weight", weight), Converted(module + ".weight_scale", scales)]

    def leftover(self) -> list[str]:
        return [f"{module} (has {sorted(parts)})" for module, parts in self.parts.items()]

    def _fp8(self, module: str, pieces: dict) -> tuple[np.ndarray, np.ndarray]:
        weight = pieces["weight"].view(np.uint8)
        out, cols = weight.shape
        scales = pieces["weight_scale_inv"].astype(np.float32)
        groups = (-(-out // self.q.block_n), -(-cols // self.q.block_k))
        if scales.shape != groups:
            raise ConfigError(f"{module}.weight_scale_inv has shape {scales.shape}, expected {groups}")
        if np.any((weight & 0x7F) == 0x7F):
            # E4M3's NaN: the 8-bit GEMMs would read it as +-480 (they decode every byte as a number), torch as NaN
            raise ConfigError(f"{module}.weight holds NaN (E4M3 byte 0x7F or 0xFF): the checkpoint is damaged")
        rows = np.repeat(scales, self.q.block_n, axis=0)[:out]
        return np.ascontiguousarray(weight), np.ascontiguousarray(rows)

    def _gptq(self, module: str, pieces: dict) -> tuple[np.ndarray, np.ndarray]:
        qweight = np.ascontiguousarray(pieces["qweight"]).view(np.uint8)  # [in / 4, out * 4]: bytes low first
        packed_rows, out4 = qweight.shape
        out = out4 // 4
        values = qweight.reshape(packed_rows, out, 4).transpose(0, 2, 1).reshape(packed_rows * 4, out)  # [in, out]
        cols = values.shape[0]
        group = self.q.block_k
        g_idx = pieces["g_idx"].astype(np.int64)
        if g_idx.shape != (cols,) or not np.array_equal(g_idx, np.arange(cols) // group):
            raise ConfigError(f"{module}.g_idx is not the in-order grouping of group_size {group} (act-order "
                              "checkpoints are not supported)")
        groups = -(-cols // group)
        zeros = np.ascontiguousarray(pieces["qzeros"]).view(np.uint8).reshape(groups, -1)[:, :out].astype(np.int16)
        zeros = zeros + self.q.zero_offset
        per_input = np.repeat(zeros, group, axis=0)[:cols]  # [in, out]
        weight = values.astype(np.int16) - per_input
        if weight.min() < -128 or weight.max() > 127:
            raise ConfigError(f"{module}: zero points other than 128 (an asymmetric gptq checkpoint)")
        scales = pieces["scales"].astype(np.float32)
        if scales.shape != (groups, out):
            raise ConfigError(f"{module}.scales has shape {scales.shape}, expected {(groups, out)}")
        return np.ascontiguousarray(weight.T.astype(np.int8)), np.ascontiguousarray(scales.T)
