from __future__ import annotations

import subprocess
import sys

from harness.fixtures.checkpoints import checkpoint


def test_generate_streams_text_and_is_reproducible_with_a_seed(tmp_path_factory):
    path = checkpoint(tmp_path_factory.mktemp("cli"), num_hidden_layers=1, seed=51)
    cmd = [sys.executable, "-m", "infini_qwen3", "generate", "--model", str(path), "--prompt", "你好", "--chat",
           "--max-tokens", "12", "--seed", "3", "--dtype", "f32"]
    first = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    second = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() and first.stdout == second.stdout


def test_generate_reports_a_missing_checkpoint(tmp_path):
    result = subprocess.run([sys.executable, "-m", "infini_qwen3", "generate", "--model", str(tmp_path),
                             "--prompt", "x"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and "config.json not found" in result.stderr
