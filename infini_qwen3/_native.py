"""ctypes binding of libinfini_qwen3.so (native/include/infini_qwen3.h).

The library is looked up at $INFINI_QWEN3_LIB, else build/native/libinfini_qwen3.so of this checkout.
Its RPATH points at the InfiniCore install it was built against, so libinfiniop/libinfinirt load with it.
"""

from __future__ import annotations

import ctypes
import os
import threading
from pathlib import Path

from .build import NATIVE_OUT

DTYPE_F16, DTYPE_F32, DTYPE_BF16 = 12, 13, 19
DTYPE_I8, DTYPE_U8 = 3, 7  # 8-bit weights (int8; FP8 E4M3 bytes)
WEIGHTS_DENSE, WEIGHTS_INT8, WEIGHTS_FP8_E4M3 = 0, 1, 2  # IQ3_WEIGHTS_*
DEVICE_CPU, DEVICE_NVIDIA = 0, 1
DEVICES = {"cpu": DEVICE_CPU, "nvidia": DEVICE_NVIDIA}
ROPE_AUTO, ROPE_GPT_J, ROPE_GPT_NEOX = -1, 0, 1

STATUS_NAMES = {
    0: "OK", 1: "INVALID_ARGUMENT", 2: "INFINICORE", 3: "OUT_OF_MEMORY", 4: "CAPACITY", 5: "WEIGHT",
    6: "NOT_IMPLEMENTED", 7: "INTERNAL",
}


class NativeLibraryMissing(RuntimeError):
    pass


class NativeError(RuntimeError):
    """A failed native call: status is the iq3Status_t name, the message the library's last error."""

    def __init__(self, status: int, message: str):
        self.status = STATUS_NAMES.get(status, str(status))
        super().__init__(f"{self.status}: {message}")


class Meta(ctypes.Structure):
    _fields_ = [
        ("num_layers", ctypes.c_uint32),
        ("hidden_size", ctypes.c_uint32),
        ("intermediate_size", ctypes.c_uint32),
        ("num_heads", ctypes.c_uint32),
        ("num_kv_heads", ctypes.c_uint32),
        ("head_dim", ctypes.c_uint32),
        ("vocab_size", ctypes.c_uint32),
        ("max_position_embeddings", ctypes.c_uint32),
        ("rms_norm_eps", ctypes.c_float),
        ("rope_theta", ctypes.c_float),
        ("tie_word_embeddings", ctypes.c_int32),
        ("dtype", ctypes.c_int32),
        ("rope_layout", ctypes.c_int32),
        ("kv_blocks", ctypes.c_uint32),
        ("kv_block_size", ctypes.c_uint32),
        ("max_seq_tokens", ctypes.c_uint32),
        ("max_step_tokens", ctypes.c_uint32),
        ("cuda_graphs", ctypes.c_int32),
        ("weight_format", ctypes.c_int32),
        ("weight_block_k", ctypes.c_uint32),
    ]


class Batch(ctypes.Structure):
    _fields_ = [
        ("tokens", ctypes.POINTER(ctypes.c_uint32)),
        ("ntok", ctypes.c_uint32),
        ("req_lens", ctypes.POINTER(ctypes.c_uint32)),
        ("req_pos", ctypes.POINTER(ctypes.c_uint32)),
        ("nreq", ctypes.c_uint32),
        ("block_tables", ctypes.POINTER(ctypes.c_uint32)),
        ("block_table_width", ctypes.c_uint32),
    ]


class Sampling(ctypes.Structure):
    _fields_ = [
        ("temperature", ctypes.POINTER(ctypes.c_float)),
        ("topk", ctypes.POINTER(ctypes.c_uint32)),
        ("topp", ctypes.POINTER(ctypes.c_float)),
        ("random", ctypes.POINTER(ctypes.c_float)),
    ]


_lib: ctypes.CDLL | None = None
_lock = threading.Lock()


def library_path() -> Path:
    return Path(os.environ.get("INFINI_QWEN3_LIB") or NATIVE_OUT / "libinfini_qwen3.so")


class GraphStats(ctypes.Structure):
    """iq3GraphStats: decode steps captured and replayed as graphs since the model was created."""
    _fields_ = [(name, ctypes.c_uint64) for name in ("captures", "replays", "failed_captures", "evictions",
                                                     "live_graphs", "max_live_graphs")]


ABI_VERSION = 4  # IQ3_ABI_VERSION of native/include/infini_qwen3.h that the structures above mirror


class AbiMismatch(NativeLibraryMissing):
    """The library was built from another version of infini_qwen3.h than this module mirrors."""


def _check_abi(lib: ctypes.CDLL, path: Path) -> None:
    """The structures here must be the library's, byte for byte: a stale build would read them wrongly."""
    version = lib.iq3AbiVersion() if hasattr(lib, "iq3AbiVersion") else None
    sizes = [ctypes.c_uint32() for _ in range(3)]
    if version == ABI_VERSION:
        lib.iq3StructSizes(*[ctypes.byref(size) for size in sizes])
    found = [size.value for size in sizes]
    expected = [ctypes.sizeof(Meta), ctypes.sizeof(Batch), ctypes.sizeof(Sampling)]
    if version != ABI_VERSION or found != expected:
        raise AbiMismatch(f"{path} has C API version {version} with struct sizes {found}; this package expects "
                          f"version {ABI_VERSION} with {expected}: rebuild with `python -m infini_qwen3.build`")


def _declare(lib: ctypes.CDLL) -> None:
    status = ctypes.c_int
    p = ctypes.c_void_p
    u32p, u64p, f32p = ctypes.POINTER(ctypes.c_uint32), ctypes.POINTER(ctypes.c_uint64), ctypes.POINTER(ctypes.c_float)
    signatures = {
        "iq3LastError": (ctypes.c_char_p, []),
        "iq3Version": (ctypes.c_char_p, []),
        "iq3AbiVersion": (ctypes.c_uint32, []),
        "iq3StructSizes": (None, [u32p, u32p, u32p]),
        "iq3ProbeDevice": (status, [ctypes.c_int32, ctypes.c_int32, ctypes.c_char_p, ctypes.c_size_t]),
        "iq3CreateModel": (status, [ctypes.POINTER(Meta), ctypes.c_int32, ctypes.c_uint32,
                                    ctypes.POINTER(ctypes.c_int32), ctypes.POINTER(p)]),
        "iq3DestroyModel": (None, [p]),
        "iq3LoadWeight": (status, [p, ctypes.c_char_p, ctypes.c_int32, ctypes.c_uint32, u64p, p]),
        "iq3FinishLoading": (status, [p]),
        "iq3Infer": (status, [p, ctypes.POINTER(Batch), ctypes.POINTER(Sampling), u32p]),
        "iq3InferWithLogits": (status, [p, ctypes.POINTER(Batch), ctypes.POINTER(Sampling), u32p, f32p]),
        "iq3Forward": (status, [p, ctypes.POINTER(Batch), ctypes.c_int32, f32p]),
        "iq3SetTrace": (status, [p, ctypes.c_int32]),
        "iq3TraceCount": (status, [p, u32p]),
        "iq3TraceInfo": (status, [p, ctypes.c_uint32, ctypes.POINTER(ctypes.c_char_p), u32p, u64p]),
        "iq3TraceCopy": (status, [p, ctypes.c_uint32, f32p]),
        "iq3GetGraphStats": (status, [p, ctypes.POINTER(GraphStats)]),
    }
    for name, (restype, argtypes) in signatures.items():
        fn = getattr(lib, name)
        fn.restype = restype
        fn.argtypes = argtypes


def load() -> ctypes.CDLL:
    """Load the native library once; a clear error says how to build it when it is missing."""
    global _lib
    with _lock:
        if _lib is None:
            path = library_path()
            if not path.is_file():
                raise NativeLibraryMissing(
                    f"{path} not found: build it with `python -m infini_qwen3.build` "
                    "(or point INFINI_QWEN3_LIB at a built libinfini_qwen3.so)"
                )
            try:
                lib = ctypes.CDLL(str(path))
            except OSError as exc:
                raise NativeLibraryMissing(
                    f"cannot load {path} ({exc}); rebuild with `python -m infini_qwen3.build`"
                ) from exc
            if hasattr(lib, "iq3AbiVersion"):
                lib.iq3AbiVersion.restype = ctypes.c_uint32
            _check_abi(lib, path)
            _declare(lib)
            _lib = lib
        return _lib


def check(status: int) -> None:
    if status != 0:
        message = load().iq3LastError().decode("utf-8", "replace")
        raise NativeError(status, message)


def probe_device(device: str = "cpu", device_id: int = 0) -> str:
    lib = load()
    info = ctypes.create_string_buffer(256)
    check(lib.iq3ProbeDevice(DEVICES[device], device_id, info, len(info)))
    return info.value.decode()


def version() -> str:
    return load().iq3Version().decode()
