"""harness.report: merging results into the README block keeps the hand-written log and the other devices'
sections; the block check catches a broken block; the CI summary names what it read."""

from __future__ import annotations

import json

import pytest

from harness import report

README = f"""# title

## 问题记录

hand-written before

{report.BEGIN}
<!-- device:nvidia -->
#### NVIDIA H200 — an older run

| a | b |
|---|---|
| 1 | 2 |
<!-- /device -->
{report.END}

hand-written after
"""

PARITY = {"device": "cpu", "device_name": "CPU (2 cores)", "date": "2026-11-26 06:00 UTC", "commit": "a" * 40,
          "versions": {"torch": "2.13.0", "transformers": "5.24.0", "infinicore": "0.1.0"},
          "worst": {"f32": {"q": 1e-6, "logits": 2e-6}, "bf16": {"q": 0.05}},
          "limits": {"f32": {"q": 1e-5, "logits": 1e-4}, "bf16": {"q": 0.03}}}

JUNIT = """<?xml version="1.0"?><testsuites><testsuite>
<testcase classname="conformance.test_chat" name="a"/>
<testcase classname="conformance.test_chat" name="b"><failure message="x"/></testcase>
<testcase classname="harness.parity.test_operator_parity" name="c"/>
<testcase classname="tests.test_config" name="d"><skipped/></testcase>
</testsuite></testsuites>"""


@pytest.fixture
def results(tmp_path):
    cpu = tmp_path / "results" / "cpu"
    cpu.mkdir(parents=True)
    (cpu / "parity.json").write_text(json.dumps(PARITY))
    (cpu / "junit.xml").write_text(JUNIT)
    return tmp_path / "results"


def test_merge_adds_a_section_and_keeps_everything_else(results):
    merged = report.merge(README, report.load(results))
    assert "hand-written before" in merged and "hand-written after" in merged
    assert "#### NVIDIA H200 — an older run" in merged  # the other device's section is untouched
    assert "#### CPU (2 cores) — 2026-11-26 06:00 UTC, commit `aaaaaaaaaa`" in merged
    assert "| q | 1e-06 (1e-05) | 0.05 (0.03) **over** |" in merged
    assert "conformance 1 passed, 1 failed" in merged and "parity 1 passed, 0 failed" in merged
    assert set(report.check(merged)) == {"cpu", "nvidia"}
    # Merging again replaces the section instead of adding a second one.
    assert report.merge(merged, report.load(results)).count("<!-- device:cpu -->") == 1


def test_one_device_folder_is_read_directly(results):
    (loaded,) = report.load(results / "cpu")
    assert loaded.device == "cpu" and loaded.parity["worst"]["f32"]["q"] == 1e-6


def test_check_rejects_broken_blocks():
    with pytest.raises(ValueError, match="exactly one"):
        report.check("no block here")
    with pytest.raises(ValueError, match="cells"):
        report.check(README.replace("| 1 | 2 |", "| 1 | 2 | 3 |"))
    with pytest.raises(ValueError, match="not closed"):
        report.check(README.replace("<!-- /device -->\n", ""))


def test_summary_names_the_operator_closest_to_its_limit(results):
    text = report.summary(report.load(results))
    assert "parity bf16: closest to its limit is q 0.05 (limit 0.03)" in text
    assert "conformance: 1 passed, 1 failed" in text


def test_the_repository_readme_block_parses():
    assert report.main(["--check"]) == 0


def test_a_cpu_section_names_the_cpu_model(results):
    """CPU numbers differ by CPU class (AMX or not): the section says which CPU made them."""
    (results / "cpu" / "parity.json").write_text(json.dumps({**PARITY, "cpu_model": "Example CPU 9000"}))
    merged = report.merge(README, report.load(results))
    assert "#### CPU (2 cores), Example CPU 9000 — 2026-11-26 06:00 UTC" in merged
