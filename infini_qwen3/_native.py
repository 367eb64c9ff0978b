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


def _declare(lib: ctypes.CDLL) -> None:
    status = ctypes.c_int
    p = ctypes.c_void_p
    u32p, u64p, f32p = ctypes.POINTER(ctypes.c_uint32), ctypes.POINTER(ctypes.c_uint64), ctypes.POINTER(ctypes.c_float)
    signatures = {
        "iq3LastError": (ctypes.c_char_p, []),
        "iq3Version": (ctypes.c_char_p, []),
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
