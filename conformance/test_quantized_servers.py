"""The core conformance cases again (chat, completions, structured outputs), against `serve` on 8-bit versions of
the demo checkpoint: FP8 fine-grained and GPTQ-Int8, made from it at test time (harness/fixtures/quantized.py)
and served under the demo's name, with the main server's options otherwise. The test functions are those of the
modules imported below; this module's `server` fixture overrides the shared one for them."""

from __future__ import annotations

import pytest

from .conftest import MAIN_SERVER_ARGS, MODEL
from .server_process import CACHE, ServerProcess
from .test_chat import *  # noqa: F401,F403
from .test_completions import *  # noqa: F401,F403
from .test_structured_outputs import *  # noqa: F401,F403


@pytest.fixture(scope="module", params=["fp8", "gptq"])
def server(request, tmp_path_factory):
    from harness.fixtures.quantized import quantized_checkpoint
    from infini_qwen3.demo_checkpoint import ensure_demo_checkpoint

    demo = ensure_demo_checkpoint(CACHE)
    quantized, _ = quantized_checkpoint(demo, tmp_path_factory.mktemp(f"demo-{request.param}"), request.param)
    with ServerProcess(*MAIN_SERVER_ARGS, "--model", str(quantized), "--served-model-name", MODEL,
                       log_path=tmp_path_factory.mktemp("server") / f"{request.param}.log") as process:
        yield process


def test_the_server_loaded_the_8_bit_checkpoint(server):
    assert "8-bit weights" in server.log()
