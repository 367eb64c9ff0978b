"""Where harness results go (build/results/<device>/, or $INFINI_QWEN3_RESULTS) and the metadata every result
carries, so that `python -m harness.report` can say where and when a number was measured."""

from __future__ import annotations

import json
import os
from pathlib import Path

from infini_qwen3.build import BUILD_ROOT

REPO = Path(__file__).resolve().parents[1]


def results_dir(device: str) -> Path:
    return Path(os.environ.get("INFINI_QWEN3_RESULTS") or BUILD_ROOT / "results" / device)


def cpu_model() -> str:
    """The CPU's model name as /proc/cpuinfo gives it (numbers from different CPUs must not be mixed up)."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def run_metadata(device: str) -> dict:
    """Where and when results were made: device name, CPU model, UTC date, commit, torch/transformers versions."""
    import datetime
    import os
    import subprocess

    import torch
    import transformers

    name = f"CPU ({os.cpu_count()} cores)"
    if device == "nvidia" and torch.cuda.is_available():
        name = torch.cuda.get_device_name(0)
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO,
                            capture_output=True, text=True).stdout.strip()
    return {"device": device, "device_name": name, "cpu_model": cpu_model(),
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "commit": commit or "unknown",
            "versions": {"torch": torch.__version__, "transformers": transformers.__version__, "infinicore": "0.1.0"}}


def write_result(out: Path, result: dict, table: str) -> None:
    """A benchmark's result as JSON at `out` and its Markdown table beside it (same name, .md)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    out.with_suffix(".md").write_text(table)
