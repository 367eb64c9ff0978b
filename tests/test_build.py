"""The InfiniCore build: pinned sdist verification, patches, idempotency."""

from __future__ import annotations

import subprocess
import sys

import pytest

from infini_qwen3 import build


def test_pin_is_a_sha256():
    pin = build.read_pin()
    assert pin.version == "0.1.0" and len(pin.sha256) == 64


def test_sdist_with_wrong_hash_is_refused(tmp_path):
    fake = tmp_path / "infinicore-0.1.0.tar.gz"
    fake.write_bytes(b"not the release")
    with pytest.raises(build.BuildError, match="sha256 mismatch"):
        build.verify_sdist(fake, build.read_pin().sha256)


def test_missing_sdist_is_refused(tmp_path):
    with pytest.raises(build.BuildError, match="does not exist"):
        build.verify_sdist(tmp_path / "absent.tar.gz", build.read_pin().sha256)


def test_invalid_pin_is_refused(tmp_path):
    pin = tmp_path / "infinicore.toml"
    pin.write_text('version = "0.1.0"\nsdist = "x.tar.gz"\nsha256 = "abc"\n')
    with pytest.raises(build.BuildError, match="64 hex digits"):
        build.read_pin(pin)


@pytest.fixture(scope="module")
def sdist():
    pin = build.read_pin()
    return build.fetch_sdist(pin, build.BUILD_ROOT / "downloads")


def test_every_patch_applies_cleanly_in_order(sdist, tmp_path):
    patches = build.patch_files()
    assert [p.name[:4] for p in patches] == [f"{i:04d}" for i in range(1, len(patches) + 1)]
    source = build.unpack_sdist(sdist, tmp_path / "src", build.read_pin().version)
    for i, patch in enumerate(patches):
        build.apply_patches(source, [patch], check_only=True)  # applies on top of the previous ones
        build.apply_patches(source, [patch])
    # Applying again must fail: the build would notice a patch that is already in the source.
    with pytest.raises(build.BuildError, match="does not apply"):
        build.apply_patches(source, patches[:1], check_only=True)


def test_every_patch_says_why():
    for patch in build.patch_files():
        text = patch.read_text()
        assert "\nWhy: " in text and "\nUpstream: " in text, f"{patch.name} lacks its Why/Upstream header"


def test_second_build_does_no_compiling():
    """The session's build (made by .ci/run) is current: running the build again compiles nothing."""
    result = subprocess.run([sys.executable, "-m", "infini_qwen3.build", "--verbose"], capture_output=True,
                            text=True, check=True)
    output = result.stdout + result.stderr
    assert "is up to date" in output
    assert "compiling" not in output and "linking" not in output


def test_changed_option_changes_the_build_key():
    pin, patches = build.read_pin(), build.patch_files()
    cpu = build.infinicore_config(build.BuildOptions(device="cpu"), pin, patches)
    nvidia = build.infinicore_config(build.BuildOptions(device="nvidia", cuda_arch="sm_90"), pin, patches)
    fewer_patches = build.infinicore_config(build.BuildOptions(device="cpu"), pin, patches[:-1])
    assert cpu != nvidia and cpu != fewer_patches


def test_native_library_loads_and_probes_the_cpu():
    from infini_qwen3 import _native

    assert _native.probe_device("cpu", 0) == "device 0:0 handle ok"
    assert "InfiniCore 0.1.0" in _native.version()


def test_missing_library_says_how_to_build(monkeypatch, tmp_path):
    from infini_qwen3 import _native

    monkeypatch.setattr(_native, "_lib", None)
    monkeypatch.setenv("INFINI_QWEN3_LIB", str(tmp_path / "nope.so"))
    with pytest.raises(_native.NativeLibraryMissing, match="python -m infini_qwen3.build"):
        _native.load()
