"""Build InfiniCore 0.1.0 from its PyPI sdist (with this project's patches) and the native Qwen3 library.

    python -m infini_qwen3.build [--device cpu|nvidia] [--prefix DIR] [--jobs N] [--infini-root DIR] [--native-out DIR]

Steps: download the sdist with pip (no binary), verify its sha256 against native/infinicore/infinicore.toml,
unpack, apply native/infinicore/patches/*.patch in order, build InfiniCore's C API with xmake (offline) and
install it into the prefix, then build native/ into build/native/libinfini_qwen3.so. A stamp file makes the
InfiniCore part idempotent: nothing is rebuilt unless the sdist, a patch or an option changed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
NATIVE_DIR = PROJECT_ROOT / "native"
PIN_FILE = NATIVE_DIR / "infinicore" / "infinicore.toml"
PATCH_DIR = NATIVE_DIR / "infinicore" / "patches"
BUILD_ROOT = PROJECT_ROOT / "build"
NATIVE_OUT = BUILD_ROOT / "native"
NATIVE_MANIFEST = NATIVE_OUT / "build.json"
STAMP_NAME = ".infini-qwen3-stamp.json"
INFINICORE_LIBS = ("libinfiniop.so", "libinfinirt.so", "libinfiniccl.so")
DEVICES = ("cpu", "nvidia")


class BuildError(RuntimeError):
    """A build step failed; the message says which and why."""


@dataclass(frozen=True)
class Pin:
    version: str
    sdist: str
    sha256: str


@dataclass
class BuildOptions:
    device: str = "cpu"
    prefix: Path | None = None
    infini_root: Path | None = None
    jobs: int = os.cpu_count() or 2
    cuda_arch: str | None = None
    native_out: Path = NATIVE_OUT
    verbose: bool = False
    extra_env: dict[str, str] = field(default_factory=dict)


def log(message: str) -> None:
    print(f"[infini-qwen3 build] {message}", flush=True)


def read_pin(path: Path = PIN_FILE) -> Pin:
    try:
        data = tomllib.loads(path.read_text())
        pin = Pin(version=data["version"], sdist=data["sdist"], sha256=data["sha256"].lower())
    except (OSError, KeyError, tomllib.TOMLDecodeError) as exc:
        raise BuildError(f"cannot read the InfiniCore pin {path}: {exc}") from exc
    if len(pin.sha256) != 64 or any(c not in "0123456789abcdef" for c in pin.sha256):
        raise BuildError(f"{path}: sha256 must be 64 hex digits, got {pin.sha256!r}")
    return pin


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_sdist(path: Path, expected_sha256: str) -> None:
    """Refuse an sdist whose hash is not the pinned one."""
    if not path.is_file():
        raise BuildError(f"sdist {path} does not exist")
    actual = sha256_of(path)
    if actual != expected_sha256:
        raise BuildError(
            f"sha256 mismatch for {path.name}: expected {expected_sha256}, got {actual}; "
            "refusing to build from an unverified InfiniCore source"
        )


def fetch_sdist(pin: Pin, download_dir: Path) -> Path:
    """Download the pinned sdist through pip (never a binary), reusing a verified copy."""
    download_dir.mkdir(parents=True, exist_ok=True)
    target = download_dir / pin.sdist
    if target.is_file():
        try:
            verify_sdist(target, pin.sha256)
            return target
        except BuildError:
            log(f"cached {target.name} fails verification; downloading it again")
            target.unlink()
    log(f"downloading infinicore=={pin.version} (sdist) with pip")
    run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
         f"infinicore=={pin.version}", "-d", str(download_dir)],
        what="pip download of the InfiniCore sdist",
    )
    verify_sdist(target, pin.sha256)
    return target


def patch_files(patch_dir: Path = PATCH_DIR) -> list[Path]:
    return sorted(patch_dir.glob("*.patch"))


def unpack_sdist(sdist: Path, dest: Path, version: str) -> Path:
    """Unpack into dest (emptied first); returns the source root."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    with tarfile.open(sdist) as tar:
        tar.extractall(dest, filter="data")
    source = dest / f"infinicore-{version}"
    if not (source / "xmake.lua").is_file():
        raise BuildError(f"{sdist.name} does not contain infinicore-{version}/xmake.lua")
    return source


def apply_patches(source: Path, patches: list[Path], check_only: bool = False) -> None:
    """Apply each patch in order with `git apply`; stop at the first that does not apply."""
    # Keep git from discovering an enclosing repository (ours), which would make paths relative to it.
    env = dict(os.environ, GIT_CEILING_DIRECTORIES=str(source.parent))
    for patch in patches:
        cmd = ["git", "apply", "--whitespace=nowarn"] + (["--check"] if check_only else []) + [str(patch)]
        result = subprocess.run(cmd, cwd=source, env=env, capture_output=True, text=True)
        if result.returncode != 0:
            raise BuildError(f"patch {patch.name} does not apply to {source.name}:\n{result.stderr.strip()}")
        if not check_only:
            log(f"applied {patch.name}")


def run(cmd: list[str], what: str, cwd: Path | None = None, env: dict[str, str] | None = None,
        verbose: bool = False) -> str:
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if verbose or result.returncode != 0:
        sys.stdout.write(result.stdout)
        sys.stderr.write(result.stderr)
    if result.returncode != 0:
        tail = (result.stdout + result.stderr).strip().splitlines()[-30:]
        raise BuildError(f"{what} failed (exit {result.returncode}): {' '.join(cmd)}\n" + "\n".join(tail))
    return result.stdout


def find_xmake() -> str:
    candidates = [shutil.which("xmake"), str(Path(sys.executable).parent / "xmake")]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return candidate
    raise BuildError("xmake not found: pip install xmake-wheel==3.0.0")


def xmake_env(opts: BuildOptions, global_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["XMAKE_ROOT"] = "y"  # xmake refuses to run as root otherwise (CI and containers run as root)
    env["XMAKE_GLOBALDIR"] = str(global_dir)  # keep `xmake g` settings out of the user's ~/.xmake
    env.pop("INFINI_ROOT", None)  # InfiniCore's xmake.lua reads it as its own install dir
    if opts.device == "nvidia":
        cuda = cuda_home()
        env["PATH"] = f"{cuda}/bin:{env.get('PATH', '')}"
        includes, lib_dirs = cublas_dirs(cuda)
        for var, dirs in (("CPATH", includes), ("LIBRARY_PATH", lib_dirs), ("LD_LIBRARY_PATH", lib_dirs)):
            if dirs:
                env[var] = ":".join(dirs + ([env[var]] if env.get(var) else []))
        if opts.cuda_arch:
            env["INFINI_CUDA_ARCH"] = opts.cuda_arch
    env.update(opts.extra_env)
    return env


def cuda_home() -> str:
    for var in ("CUDA_HOME", "CUDA_PATH"):
        if os.environ.get(var):
            return os.environ[var]
    nvcc = shutil.which("nvcc")
    if nvcc:
        return str(Path(nvcc).resolve().parent.parent)
    raise BuildError("--device nvidia needs CUDA: set CUDA_HOME or put nvcc on PATH")


def cublas_dirs(cuda: str) -> tuple[list[str], list[str]]:
    """(include dirs, library dirs) for cuBLAS beyond the toolkit's own: none when CUDA_HOME has it, else the
    pip package nvidia-cublas of this Python (whose libcublas.so.N gets a plain-named link for the linker)."""
    if list(Path(cuda).glob("lib64/libcublas.so*")) or list(Path(cuda).glob("targets/*/lib/libcublas.so*")):
        return [], []
    site = Path(sysconfig.get_paths()["purelib"]) / "nvidia"
    libs = sorted(site.glob("cu*/lib/libcublas.so*")) + sorted(site.glob("cublas/lib/libcublas.so*"))
    if not libs:
        raise BuildError("cuBLAS not found in CUDA_HOME nor in the nvidia-cublas pip package")
    libdir = libs[0].parent
    include, lib_dirs = [str(libdir.parent / "include")], [str(libdir)]
    if not (libdir / "libcublas.so").exists():
        link_dir = BUILD_ROOT / "cublas-link"
        link_dir.mkdir(parents=True, exist_ok=True)
        link = link_dir / "libcublas.so"
        if link.exists() or link.is_symlink():
            link.unlink()
        link.symlink_to(sorted(libdir.glob("libcublas.so.*"))[0])
        lib_dirs.append(str(link_dir))
    return include, lib_dirs


def nccl_root() -> Path | None:
    """NCCL for InfiniCCL's NVIDIA backend (tensor parallelism over GPUs): NCCL_ROOT, else the pip package
    nvidia-nccl-cu13 of this Python, laid out as InfiniCore's xmake expects (include/, lib/libnccl.so) with links
    under build/; None when neither is there (the build then has no NVIDIA InfiniCCL and ndev > 1 is refused on
    NVIDIA with a message that says so)."""
    if os.environ.get("NCCL_ROOT"):
        return Path(os.environ["NCCL_ROOT"])
    package = Path(sysconfig.get_paths()["purelib"]) / "nvidia" / "nccl"
    libs = sorted((package / "lib").glob("libnccl.so*"))
    if not (package / "include" / "nccl.h").is_file() or not libs:
        return None
    root = BUILD_ROOT / "nccl-root"
    (root / "lib").mkdir(parents=True, exist_ok=True)
    for link, target in ((root / "include", package / "include"), (root / "lib" / "libnccl.so", libs[-1])):
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(target)
    return root


def nccl_flags(root: Path | None) -> list[str]:
    """xmake options for InfiniCCL's NVIDIA backend; libinfiniccl finds libnccl where it was linked (RPATH)."""
    if root is None:
        return []
    libdir = (root / "lib" / "libnccl.so").resolve().parent
    return ["--ccl=y", f"--shflags=-Wl,-rpath,{libdir}"]


def infinicore_config(opts: BuildOptions, pin: Pin, patches: list[Path], nccl: Path | None = None) -> dict:
    """Everything that decides the InfiniCore build; a change of any of it rebuilds. nccl: nccl_root() of an
    NVIDIA build."""
    return {
        "version": pin.version,
        "sha256": pin.sha256,
        "patches": {p.name: sha256_of(p) for p in patches},
        "device": opts.device,
        "cuda_arch": opts.cuda_arch,
        "nccl": str(nccl) if nccl is not None else None,
    }


def has_libs(prefix: Path) -> bool:
    return all((prefix / "lib" / lib).is_file() for lib in INFINICORE_LIBS)


def read_stamp(prefix: Path) -> dict | None:
    try:
        return json.loads((prefix / STAMP_NAME).read_text())
    except (OSError, json.JSONDecodeError):
        return None


def build_infinicore(opts: BuildOptions, prefix: Path) -> bool:
    """Build and install InfiniCore into prefix unless the stamp says it is current. Returns True if built."""
    pin = read_pin()
    patches = patch_files()
    nccl = nccl_root() if opts.device == "nvidia" else None
    config = infinicore_config(opts, pin, patches, nccl)
    if read_stamp(prefix) == config and has_libs(prefix):
        log(f"InfiniCore {pin.version} ({opts.device}) in {prefix} is up to date")
        return False
    sdist = fetch_sdist(pin, BUILD_ROOT / "downloads")
    work = BUILD_ROOT / f"infinicore-{opts.device}"
    source = unpack_sdist(sdist, work, pin.version)
    apply_patches(source, patches)
    xmake = find_xmake()
    env = xmake_env(opts, BUILD_ROOT / "xmake-global")
    run([xmake, "g", "--network=private"], "xmake global config", cwd=source, env=env)
    flags = ["--cpu=y", "--omp=y"]
    if opts.device == "nvidia":
        flags += ["--nv-gpu=y", "--cudnn=n", f"--cuda={cuda_home()}"]
        flags += nccl_flags(nccl)
        if nccl is None:
            log("no NCCL (NCCL_ROOT or pip nvidia-nccl-cu13): InfiniCCL gets no NVIDIA backend; --ndev > 1 needs it")
        else:
            env["NCCL_ROOT"] = str(nccl)
    log(f"configuring InfiniCore: xmake f {' '.join(flags)}")
    run([xmake, "f", "-c", "-y", "-m", "release", *flags], "xmake configure", cwd=source, env=env, verbose=opts.verbose)
    log(f"building InfiniCore's C API with {opts.jobs} jobs")
    run([xmake, "build", "-j", str(opts.jobs), "infinicore_c_api"], "xmake build", cwd=source, env=env,
        verbose=opts.verbose)
    if prefix.exists():
        shutil.rmtree(prefix)
    for target in ("infiniop", "infinirt", "infiniccl"):
        run([xmake, "install", "-o", str(prefix), target], f"xmake install {target}", cwd=source, env=env)
    if not has_libs(prefix):
        raise BuildError(f"InfiniCore install into {prefix} is missing one of {INFINICORE_LIBS}")
    (prefix / STAMP_NAME).write_text(json.dumps(config, indent=2, sort_keys=True))
    log(f"InfiniCore installed into {prefix}")
    return True


def build_native(opts: BuildOptions, infini_root: Path) -> Path:
    """Build native/ against infini_root into NATIVE_OUT/libinfini_qwen3.so (xmake is incremental)."""
    xmake = find_xmake()
    env = xmake_env(opts, BUILD_ROOT / "xmake-global")
    env["INFINI_QWEN3_INFINI_ROOT"] = str(infini_root)
    builddir = BUILD_ROOT / f"native-build-{opts.device}"  # one per device: switching does not reconfigure
    project_cache = builddir / "xmake-project"
    env["XMAKE_CONFIGDIR"] = str(project_cache)  # keep xmake's project cache out of native/
    common = ["-P", str(NATIVE_DIR)]
    run([xmake, "g", "--network=private"], "xmake global config", cwd=NATIVE_DIR, env=env)
    config = {"infini_root": str(infini_root), "device": opts.device}
    stamp = project_cache / "infini-qwen3-config.json"  # lives and dies with xmake's own configuration
    if not stamp.is_file() or json.loads(stamp.read_text()) != config:
        run([xmake, "f", *common, "-c", "-y", "-m", "release", f"--builddir={builddir}"],
            "xmake configure (native)", cwd=NATIVE_DIR, env=env, verbose=opts.verbose)
        stamp.parent.mkdir(parents=True, exist_ok=True)
        stamp.write_text(json.dumps(config))
    out = run([xmake, "build", *common, "-j", str(opts.jobs), "infini_qwen3"], "xmake build (native)",
              cwd=NATIVE_DIR, env=env, verbose=opts.verbose)
    built = sorted(builddir.glob("**/release/libinfini_qwen3.so"))
    if not built:
        raise BuildError(f"xmake reported success but no libinfini_qwen3.so under {builddir}:\n{out}")
    opts.native_out.mkdir(parents=True, exist_ok=True)
    lib = opts.native_out / "libinfini_qwen3.so"
    if not lib.exists() or sha256_of(lib) != sha256_of(built[0]):
        # A new file renamed over the old one: processes that have the library loaded keep their mapping
        # (copying over it in place crashed a running server).
        staged = lib.with_name(lib.name + ".new")
        shutil.copy2(built[0], staged)
        os.replace(staged, lib)
    (opts.native_out / NATIVE_MANIFEST.name).write_text(json.dumps({**config, "library": str(lib)}, indent=2))
    log(f"native library: {lib}")
    return lib


def resolve_roots(opts: BuildOptions) -> tuple[Path, bool]:
    """(InfiniCore root, whether this build owns it). An existing install that we did not build is used as is."""
    if opts.infini_root:
        root = opts.infini_root.resolve()
        if not has_libs(root):
            raise BuildError(f"--infini-root {root} has no {', '.join(INFINICORE_LIBS)} under lib/")
        return root, False
    env_root = os.environ.get("INFINI_ROOT")
    if opts.prefix is None and env_root:
        root = Path(env_root).resolve()
        if has_libs(root) and read_stamp(root) is None:
            return root, False
        return root, True
    return (opts.prefix or BUILD_ROOT / f"infini-{opts.device}").resolve(), True


def build(opts: BuildOptions) -> Path:
    if opts.device not in DEVICES:
        raise BuildError(f"--device must be one of {DEVICES}, got {opts.device!r}")
    root, owned = resolve_roots(opts)
    if owned:
        build_infinicore(opts, root)
    else:
        log(f"using the existing InfiniCore install at {root}")
    return build_native(opts, root)


def parse_args(argv: list[str] | None = None) -> BuildOptions:
    parser = argparse.ArgumentParser(prog="python -m infini_qwen3.build", description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=DEVICES, default="cpu")
    parser.add_argument("--prefix", type=Path,
                        help="install InfiniCore here (default: $INFINI_ROOT or build/infini-DEVICE)")
    parser.add_argument("--infini-root", type=Path, help="use this existing InfiniCore install; do not build it")
    parser.add_argument("--jobs", "-j", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--cuda-arch", help="GPU architecture for --device nvidia when no GPU is visible, e.g. sm_90")
    parser.add_argument("--native-out", type=Path, default=NATIVE_OUT,
                        help=f"where libinfini_qwen3.so goes (default {NATIVE_OUT.relative_to(PROJECT_ROOT)}; "
                             "the runtime loads it from there or from $INFINI_QWEN3_LIB)")
    parser.add_argument("--verbose", "-v", action="store_true")
    args = parser.parse_args(argv)
    return BuildOptions(device=args.device, prefix=args.prefix, infini_root=args.infini_root, jobs=args.jobs,
                        cuda_arch=args.cuda_arch, native_out=args.native_out.resolve(), verbose=args.verbose)


def main(argv: list[str] | None = None) -> int:
    try:
        build(parse_args(argv))
    except BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
