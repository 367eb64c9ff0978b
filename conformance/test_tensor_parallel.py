"""The core conformance cases again, against `serve --ndev 2`: the demo model split over two ranks (on the CPU,
two threads joined by InfiniCCL's CPU backend), with the main server's options otherwise. The test functions
are those of the modules imported below; this module's `server` and `rank_args` fixtures override the shared
ones for them (so the servers those modules start themselves run on two ranks too).
One case more: greedy answers equal those of the single-rank server token for token (f32)."""

from __future__ import annotations

import openai
import pytest

from .conftest import MAIN_SERVER_ARGS, MODEL
from .server_process import ServerProcess
from .test_chat import *  # noqa: F401,F403
from .test_completions import *  # noqa: F401,F403
from .test_logprobs_penalties import *  # noqa: F401,F403
from .test_structured_outputs import *  # noqa: F401,F403

RANKS = 2


@pytest.fixture(scope="module")
def rank_args() -> tuple[str, ...]:
    return ("--ndev", str(RANKS))


@pytest.fixture(scope="module")
def server(tmp_path_factory, rank_args):
    with ServerProcess(*MAIN_SERVER_ARGS, *rank_args,
                       log_path=tmp_path_factory.mktemp("server") / "tensor-parallel.log") as process:
        yield process


@pytest.fixture(scope="module")
def single_rank_server(tmp_path_factory):
    with ServerProcess(*MAIN_SERVER_ARGS, log_path=tmp_path_factory.mktemp("server") / "single-rank.log") as process:
        yield process


def greedy_answers(base_url: str) -> list[tuple[str, list[float]]]:
    client = openai.OpenAI(base_url=f"{base_url}/v1", api_key="unused", max_retries=0, timeout=120)
    answers = []
    for prompt in ("Tell me about InfiniCore.", "一二三四五", "x" * 300):
        done = client.completions.create(model=MODEL, prompt=prompt, max_tokens=12, temperature=0, logprobs=1)
        answers.append((done.choices[0].text, done.choices[0].logprobs.token_logprobs))
    return answers


def test_two_ranks_answer_as_one_does(server, single_rank_server):
    split, whole = greedy_answers(server.base_url), greedy_answers(single_rank_server.base_url)
    for (split_text, split_logprobs), (whole_text, whole_logprobs) in zip(split, whole):
        assert split_text == whole_text
        assert split_logprobs == pytest.approx(whole_logprobs, abs=1e-4)
