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
