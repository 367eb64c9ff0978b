"""Reading safetensors checkpoints (one file, or sharded with model.safetensors.index.json) tensor by tensor.

The files are memory-mapped and each tensor is handed to the native loader as a host pointer, which converts
and uploads it; host memory therefore peaks at about one converted tensor, whatever the checkpoint size.
The format is small and fixed (8-byte little-endian header length, a JSON header, raw row-major data), so it
is read here directly rather than through torch.
"""

from __future__ import annotations

import ctypes
import json
import math
import mmap
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import _native

SAFETENSORS_DTYPES = {"F32": (_native.DTYPE_F32, 4), "F16": (_native.DTYPE_F16, 2), "BF16": (_native.DTYPE_BF16, 2),
                      # the parts of 8-bit checkpoints (quantization.py converts them)
                      "F8_E4M3": (_native.DTYPE_U8, 1), "I8": (_native.DTYPE_I8, 1), "U8": (_native.DTYPE_U8, 1),
                      "I32": (5, 4)}
NUMPY_DTYPES = {"F32": np.float32, "F16": np.float16, "F8_E4M3": np.uint8, "I8": np.int8, "U8": np.uint8,
                "I32": np.int32}
INDEX_NAME = "model.safetensors.index.json"
SINGLE_NAME = "model.safetensors"
# Tensors some checkpoints carry that are not weights of the model.
IGNORED_SUFFIXES = (".rotary_emb.inv_freq",)


class WeightsError(ValueError):
    pass


@dataclass(frozen=True)
class TensorRef:
    """One tensor inside a mapped file: where it is and what it is."""

    name: str
    dtype: int
    shape: tuple[int, ...]
    address: int
    nbytes: int
    stored: str = ""  # its safetensors dtype

    def raw(self) -> np.ndarray:
        """Its bytes, a view valid while the file is mapped (through its address, so that the mapping can close
        whatever views are still referenced)."""
        return np.ctypeslib.as_array((ctypes.c_uint8 * self.nbytes).from_address(self.address))

    def array(self) -> np.ndarray:
        """Its values (a view), for the dtypes numpy has (bf16 is not one)."""
        return self.raw().view(NUMPY_DTYPES[self.stored]).reshape(self.shape)


def checkpoint_files(model_dir: str | Path) -> list[Path]:
    model_dir = Path(model_dir)
    index = model_dir / INDEX_NAME
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text())["weight_map"]
        except (json.JSONDecodeError, KeyError) as exc:
            raise WeightsError(f"{index} is not a valid safetensors index: {exc}") from exc
        files = sorted({model_dir / f for f in weight_map.values()})
        missing = [f.name for f in files if not f.is_file()]
        if missing:
            raise WeightsError(f"{index} names shards that do not exist: {missing}")
        return files
    if (model_dir / SINGLE_NAME).is_file():
        return [model_dir / SINGLE_NAME]
    files = sorted(model_dir.glob("*.safetensors"))
    if not files:
        raise WeightsError(f"no safetensors weights in {model_dir}")
    return files


def read_header(data: mmap.mmap | bytes, path: Path) -> tuple[dict, int]:
    (header_len,) = struct.unpack("<Q", data[:8])
    if 8 + header_len > len(data):
        raise WeightsError(f"{path}: header length {header_len} runs past the end of the file")
    try:
        header = json.loads(bytes(data[8 : 8 + header_len]))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise WeightsError(f"{path}: invalid safetensors header: {exc}") from exc
    header.pop("__metadata__", None)
    return header, 8 + header_len


@contextmanager
def mapped_tensors(path: Path) -> Iterator[list[TensorRef]]:
    """Maps one safetensors file and yields references to its tensors (addresses valid inside the block)."""
    size = path.stat().st_size
    with path.open("rb") as f:
        if size < 8:
            raise WeightsError(f"{path} is too short to be a safetensors file")
        data = mmap.mmap(f.fileno(), size, access=mmap.ACCESS_READ)
        view = np.frombuffer(data, dtype=np.uint8)  # read-only view: its address without a copy
        try:
            header, base = read_header(data, path)
            address = view.ctypes.data
            refs = []
            for name, info in header.items():
                dtype = SAFETENSORS_DTYPES.get(info.get("dtype"))
                if dtype is None:
                    raise WeightsError(f"{path.name}: tensor {name!r} has unsupported dtype {info.get('dtype')!r}")
                begin, end = info["data_offsets"]
                shape = tuple(int(s) for s in info["shape"])
                if end - begin != math.prod(shape) * dtype[1] or base + end > size:
                    raise WeightsError(f"{path.name}: tensor {name!r} has inconsistent offsets for shape {shape}")
                refs.append(TensorRef(name, dtype[0], shape, address + base + begin, end - begin, info["dtype"]))
            yield refs
        finally:
            del view
            data.close()


def iter_tensors(model_dir: str | Path, tie_word_embeddings: bool, quantization=None) -> Iterator:
    """Every model tensor of the checkpoint, file by file; drops what the model does not use. With an 8-bit
    checkpoint (quantization.Quantization), its projections' parts come out converted (quantization.Converter)."""
    from .quantization import Converter

    converter = Converter(quantization) if quantization is not None else None
    for path in checkpoint_files(model_dir):
        with mapped_tensors(path) as refs:
            for ref in refs:
                if ref.name.endswith(IGNORED_SUFFIXES):
                    continue
                if tie_word_embeddings and ref.name == "lm_head.weight":
                    continue  # tied: the embedding matrix serves as lm_head
                converted = None
                if converter is not None and converter.takes(ref.name):
                    # bf16 (FP8 scales) widened here: numpy has no bf16
                    values = _bf16_as_f32(ref) if ref.stored == "BF16" else ref.array()
                    converted = converter.feed(ref.name, values, ref.stored)
                if converted is None:
                    yield ref
                else:
                    yield from converted
    if converter is not None and converter.leftover():
        raise WeightsError(f"incomplete quantized projections: {'; '.join(converter.leftover())}")


def _bf16_as_f32(ref: TensorRef) -> np.ndarray:
    return (ref.raw().view(np.uint16).astype(np.uint32) << 16).view(np.float32).reshape(ref.shape)


def checkpoint_bytes(model_dir: str | Path) -> int:
    return sum(p.stat().st_size for p in checkpoint_files(model_dir))
