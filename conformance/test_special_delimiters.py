"""Qwen3's API surface again (the cases of test_qwen3_api.py), on the scripted checkpoint with a tokenizer.json that
marks <think>, </think>, <tool_call> and </tool_call> special, as several converted checkpoints do: reasoning,
tool calls (plain, required, named, strict) and the constrained answers come out the same, since the output
parsers and the detokenizer know the delimiters by token id, not by the tokenizer's flags."""

from __future__ import annotations

import openai
import pytest

from .server_process import ServerProcess
from .test_qwen3_api import *  # noqa: F401,F403


@pytest.fixture(scope="module")
def scripted_server(tmp_path_factory):
    from harness.fixtures.scripted import scripted_checkpoint

    with ServerProcess("--model", str(scripted_checkpoint(special_delimiters=True)), "--served-model-name", "scripted",
                       "--max-batch", "4", "--max-model-len", "512",
                       log_path=tmp_path_factory.mktemp("server") / "scripted-special.log") as process:
        yield process


@pytest.fixture
def scripted(scripted_server):
    return openai.OpenAI(base_url=f"{scripted_server.base_url}/v1", api_key="unused", max_retries=0, timeout=120)


def test_the_tokenizer_marks_the_delimiters_special(scripted_server):
    import json
    from pathlib import Path

    from harness.fixtures.scripted import DELIMITER_IDS, scripted_checkpoint

    added = json.loads((Path(scripted_checkpoint(special_delimiters=True)) / "tokenizer.json").read_text())
    assert {t["id"] for t in added["added_tokens"] if t["special"]} >= set(DELIMITER_IDS)
