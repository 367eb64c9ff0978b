#!/usr/bin/env bash
# The README's service command: set up (ci/setup.sh), then `infini-qwen3 serve` on 127.0.0.1:8000 with the
# embedded demo checkpoint; extra arguments go to serve (e.g. --model DIR --port 9000).
source "$(dirname "$0")/setup.sh"
exec "$VENV/bin/infini-qwen3" serve "$@"
