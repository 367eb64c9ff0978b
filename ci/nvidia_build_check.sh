#!/usr/bin/env bash
# Compile check of the NVIDIA backend on a machine without a GPU: InfiniCore 0.1.0 + the project's patches
# (their CUDA kernels included) and native/, for sm_90, into build/nvidia-check/ (the CPU build in build/ is
# left alone). Nothing is loaded or run: a GPU run must never begin with a compile error.
# Needs nvcc (CUDA_HOME, default /usr/local/cuda); cuBLAS and NCCL (InfiniCCL's NVIDIA backend, for --ndev > 1)
# come from pip (nvidia-cublas, nvidia-nccl-cu13), and libcuda, which only a driver provides, is replaced by an
# empty link-only stub.
#   usage: bash ci/nvidia_build_check.sh    (after ci/setup.sh; PY defaults to .venv/bin/python)
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PY:-.venv/bin/python}"
export CUDA_HOME="${CUDA_HOME:-/usr/local/cuda}"
if [ ! -x "$CUDA_HOME/bin/nvcc" ]; then
    echo "error: no nvcc under CUDA_HOME=$CUDA_HOME; the NVIDIA compile check needs the CUDA toolkit" >&2
    exit 1
fi
"$PY" -m pip install -q -c ci/constraints.txt nvidia-cublas nvidia-nccl-cu13
OUT=build/nvidia-check
mkdir -p "$OUT/stub"
[ -f "$OUT/stub/libcuda.so" ] || gcc -shared -o "$OUT/stub/libcuda.so" -x c /dev/null
export LIBRARY_PATH="$PWD/$OUT/stub${LIBRARY_PATH:+:$LIBRARY_PATH}"
start=$SECONDS
"$PY" -m infini_qwen3.build --device nvidia --cuda-arch "${INFINI_CUDA_ARCH:-sm_90}" --jobs "$(nproc)" \
    --prefix "$OUT/infini" --native-out "$OUT/native"
# InfiniCCL's NVIDIA backend (NCCL) must be in it, not silently left out.
nm -D --defined-only "$OUT/infini/lib/libinfiniccl.so" | grep -q "infiniccl4cuda9allReduce" || {
    echo "error: libinfiniccl.so has no NVIDIA (NCCL) backend" >&2; exit 1; }
echo "NVIDIA compile check passed in $((SECONDS - start)) s: $OUT/native/libinfini_qwen3.so"
