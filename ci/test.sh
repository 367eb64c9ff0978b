#!/usr/bin/env bash
# The README's test command: set up (ci/setup.sh), then the whole suite: unit tests, InfiniCore operator
# tests, the HF parity suite and the OpenAI conformance suite. Extra arguments go to pytest.
source "$(dirname "$0")/setup.sh"
"$PY" -m pytest "$@"
