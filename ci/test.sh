#!/usr/bin/env bash
# The README's test command runs this: set up a virtual environment, build InfiniCore + native, run the suite.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${INFINI_QWEN3_VENV:-.venv}"
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
PY="$VENV/bin/python"
"$PY" -m pip install -q --upgrade pip
"$PY" -m pip install -q -c ci/constraints.txt -e ".[test]"
"$PY" -m infini_qwen3.build --jobs "$(nproc)"
"$PY" -m pytest "$@"
