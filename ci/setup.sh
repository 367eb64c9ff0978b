# Sourced by ci/test.sh and ci/serve.sh: a virtual environment with the project (editable) and its test
# dependencies (torch pinned by ci/constraints.txt), then InfiniCore + native built into build/.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
VENV="${INFINI_QWEN3_VENV:-.venv}"
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
PY="$VENV/bin/python"
"$PY" -m pip install -q --upgrade pip
"$PY" -m pip install -q -c ci/constraints.txt -e ".[test]"
"$PY" -m infini_qwen3.build --jobs "$(nproc)"
