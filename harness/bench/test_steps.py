"""pytest-benchmark timings of one decode step and one prefill step (CPU by default; INFINI_QWEN3_TEST_DEVICE
picks another). Run with `tox -e bench` or `pytest harness/bench --benchmark-only`; not part of the test suite."""

from __future__ import annotations

import pytest

from harness.fixtures.blocks import slot_blocks
from harness.fixtures.device import TEST_DEVICE
from infini_qwen3.build import BUILD_ROOT
from infini_qwen3.model import Qwen3Model, StepRequest

from . import configs
from .measure import GREEDY, prompts

PREFILL_TOKENS = 128
DECODE_BATCH = 8


@pytest.fixture(scope="module", params=["tiny", "small"])
def model(request):
    path = configs.build(request.param, BUILD_ROOT / "bench", "bf16")
    with Qwen3Model(path, device=TEST_DEVICE, dtype="bf16", max_model_len=256, kv_cache_tokens=DECODE_BATCH * 256,
                    max_step_tokens=PREFILL_TOKENS) as m:
        yield m


def test_prefill_step(benchmark, model):
    (prompt,) = prompts(1, PREFILL_TOKENS, model.vocab_size)
    benchmark(model.infer, [StepRequest(prompt, 0, slot_blocks(model, 0), GREEDY)])


def test_decode_step(benchmark, model):
    batch = prompts(DECODE_BATCH, 16, model.vocab_size)
    model.infer([StepRequest(p, 0, slot_blocks(model, slot), GREEDY) for slot, p in enumerate(batch)])
    step = [StepRequest([p[-1]], 16, slot_blocks(model, slot), GREEDY) for slot, p in enumerate(batch)]
    benchmark(model.infer, step)
