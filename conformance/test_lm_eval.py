"""lm-evaluation-harness against the live server, as a user evaluates a checkpoint on the platform: its
`local-completions` model (loglikelihood through echo + logprobs, the remote tokenizer through /tokenizer_info,
/tokenize and /detokenize) on a multiple-choice task and a generate_until task, its `local-chat-completions`
model on the generate_until task; every document's loglikelihood equals that of lm-eval's `hf` model (transformers)
on the same checkpoint, f32. The tasks are local JSON (conformance/lm_eval_tasks), nothing is downloaded."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest

from .conftest import MODEL

TASKS = Path(__file__).parent / "lm_eval_tasks"
TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def task_manager(tmp_path_factory):
    """The repo's task YAMLs with their data files made absolute (the json builder reads paths from the cwd)."""
    pytest.importorskip("lm_eval")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from lm_eval.tasks import TaskManager

    folder = tmp_path_factory.mktemp("lm_eval_tasks")
    for yaml in TASKS.glob("*.yaml"):
        text = yaml.read_text()
        for data in TASKS.glob("*.jsonl"):
            text = text.replace(f" {data.name}", f" {data}")
        (folder / yaml.name).write_text(text)
    return TaskManager(include_path=str(folder), include_defaults=False)


def evaluate(task_manager, model: str, model_args: str, task: str, **kwargs) -> list[dict]:
    from lm_eval import simple_evaluate

    result = simple_evaluate(model=model, model_args=model_args, tasks=[task], task_manager=task_manager,
                             log_samples=True, batch_size=1, **kwargs)
    return sorted(result["samples"][task], key=lambda s: s["doc_id"])


def served(server, path: str) -> str:
    return (f"model={MODEL},base_url={server.base_url}/v1/{path},tokenizer_backend=remote,num_concurrent=1,"
            "max_retries=1,timeout=120")


@pytest.fixture(scope="module")
def transformers_samples(task_manager):
    from infini_qwen3.demo_checkpoint import ensure_demo_checkpoint

    from .server_process import CACHE

    root = ensure_demo_checkpoint(CACHE)
    return {task: evaluate(task_manager, "hf", f"pretrained={root},dtype=float32,device=cpu", task)
            for task in ("iq3_choice", "iq3_until")}


def test_local_completions_loglikelihoods_equal_transformers(server, task_manager, transformers_samples):
    ours = evaluate(task_manager, "local-completions", served(server, "completions"), "iq3_choice")
    theirs = transformers_samples["iq3_choice"]
    assert len(ours) == len(theirs) == 4
    for mine, reference in zip(ours, theirs):
        mine_ll = [float(r[0][0]) for r in mine["resps"]]
        reference_ll = [float(r[0][0]) for r in reference["resps"]]
        assert len(mine_ll) == len(mine["doc"]["choices"]) and all(math.isfinite(x) for x in mine_ll)
        assert max(abs(a - b) for a, b in zip(mine_ll, reference_ll)) < TOLERANCE, (mine_ll, reference_ll)
        assert [bool(r[0][1]) for r in mine["resps"]] == [bool(r[0][1]) for r in reference["resps"]]


@pytest.mark.parametrize("model,path", [("local-completions", "completions"),
                                        ("local-chat-completions", "chat/completions")])
def test_generate_until_runs_through_both_api_models(server, task_manager, transformers_samples, model, path):
    chat = model == "local-chat-completions"
    samples = evaluate(task_manager, model, served(server, path), "iq3_until", apply_chat_template=chat)
    assert len(samples) == 2
    for sample in samples:
        text = sample["resps"][0][0]
        assert isinstance(text, str) and "\n" not in text
    if not chat:  # the same prompt, greedy, f32: the text transformers generates
        assert [s["resps"][0][0] for s in samples] == [s["resps"][0][0] for s in transformers_samples["iq3_until"]]
