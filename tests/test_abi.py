"""The Python mirror of the C API refuses a library built from another version of infini_qwen3.h."""

from __future__ import annotations

from pathlib import Path

import pytest

from infini_qwen3 import _native


class FakeLibrary:
    def __init__(self, version, sizes):
        self.version, self.sizes = version, sizes

    def iq3AbiVersion(self):  # noqa: N802 (the C name)
        return self.version

    def iq3StructSizes(self, *pointers):  # noqa: N802
        for pointer, size in zip(pointers, self.sizes):
            pointer._obj.value = size


def expected_sizes():
    return [_native.ctypes.sizeof(t) for t in (_native.Meta, _native.Batch, _native.Sampling)]


def test_the_built_library_matches_this_package():
    _native.load()  # raises AbiMismatch otherwise
    _native._check_abi(_native.load(), Path("built"))


def test_another_abi_version_is_refused():
    with pytest.raises(_native.AbiMismatch, match="C API version 3 .* expects version 4"):
        _native._check_abi(FakeLibrary(3, expected_sizes()), Path("old.so"))


def test_a_struct_of_another_size_is_refused():
    sizes = expected_sizes()
    sizes[0] -= 4  # iq3Meta without its last field
    with pytest.raises(_native.AbiMismatch, match="struct sizes"):
        _native._check_abi(FakeLibrary(_native.ABI_VERSION, sizes), Path("stale.so"))
