"""Worst relative error per operator and dtype over a parity run, written for `python -m harness.report`.
Layers are folded together (layers.3.q_norm counts as q_norm): the report shows one row per operator."""

from __future__ import annotations

import json
import re
from pathlib import Path

from harness.results import results_dir, run_metadata

_LAYER = re.compile(r"^layers\.\d+\.")


class ParityRecord:
    def __init__(self):
        self.worst: dict[str, dict[str, float]] = {}  # dtype -> operator -> worst rel. L2 error
        self.limits: dict[str, dict[str, float]] = {}  # dtype -> operator -> the limit it was held to

    def add(self, dtype: str, errors: dict[str, float], limit) -> None:
        worst, limits = self.worst.setdefault(dtype, {}), self.limits.setdefault(dtype, {})
        for name, error in errors.items():
            operator = _LAYER.sub("", name)
            if error >= worst.get(operator, -1.0):
                worst[operator] = float(error)
                limits[operator] = float(limit(name))

    def write(self, device: str) -> Path | None:
        if not self.worst:
            return None
        out = results_dir(device) / "parity.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({**run_metadata(device), "worst": self.worst, "limits": self.limits}, indent=1))
        return out
