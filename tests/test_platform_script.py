"""ci/platform.sh on the CPU, cut down to one test per suite and a quick benchmark: every stage runs, results
land where harness.report reads them, and the summary is printed. (The full run is `tox -e platform`.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from harness.results import REPO


def test_platform_script_runs_every_stage_on_the_cpu(tmp_path):
    results = tmp_path / "results"
    env = dict(os.environ, PYTHON=sys.executable, INFINI_QWEN3_RESULTS=str(results),
               INFINI_QWEN3_CONFORMANCE_ARGS="-k test_non_stream_shape_and_usage",
               INFINI_QWEN3_BENCH_ARGS="--config tiny --quick --skip-transformers --skip-server")
    run = subprocess.run(["bash", "ci/platform.sh", "cpu", "-k", "gptj"], cwd=REPO, env=env, capture_output=True,
                         text=True, timeout=900)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    stages = (results / "stages.txt").read_text()
    for stage in ("build", "smoke", "parity", "conformance", "bench"):
        assert f"== {stage}: exit 0" in stages
    assert json.loads((results / "parity.json").read_text())["worst"]["f32"]["logits"] < 1e-4
    assert json.loads((results / "bench.json").read_text())["decode"][0]["ours"] > 0
    assert "== CI report" in run.stdout and "conformance: 1 passed, 0 failed" in run.stdout


def picked_python(env_python: str | None, cwd) -> str:
    """What platform.sh's pick_python chooses in `cwd` (its function, sourced alone)."""
    script = (REPO / "ci" / "platform.sh").read_text()
    function = script[script.index("pick_python() {"):script.index("\n}\n", script.index("pick_python() {")) + 3]
    env = {k: v for k, v in os.environ.items() if k != "PYTHON"}
    if env_python is not None:
        env["PYTHON"] = env_python
    run = subprocess.run(["bash", "-c", function + "pick_python"], cwd=cwd, env=env, capture_output=True, text=True)
    return run.stdout.strip()


def test_platform_script_uses_the_project_venv_after_ci_test(tmp_path):
    """Run right after ci/test.sh, it takes the .venv that script built (its xmake and packages), not the system
    python3; an explicit PYTHON wins; without a venv (the GPU machine, offline wheels) it is python3."""
    assert picked_python(None, tmp_path) == "python3"
    (tmp_path / ".venv" / "bin").mkdir(parents=True)
    (tmp_path / ".venv" / "bin" / "python").symlink_to(sys.executable)
    assert picked_python(None, tmp_path) == f"{tmp_path}/.venv/bin/python"
    assert picked_python("/opt/python", tmp_path) == "/opt/python"
