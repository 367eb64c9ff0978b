"""python -m harness.report [--results DIR] [--readme README.md] [--write] [--check] [--summary]

Merges the latest harness results (build/results/<device>/: parity.json, JUnit XML of the parity and
conformance runs, bench.json) into the marked block of the README's issue log. One section per device: a
device with new results replaces its own section, the others stay as they were. The hand-written log around
the block is never touched. --check verifies that the README's block parses (CI); --summary prints the short
CI report."""

from __future__ import annotations

import argparse
import json
import re
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from harness.bench.tables import markdown as bench_markdown
from harness.results import REPO

BEGIN = "<!-- harness-report:begin (written by `python -m harness.report`; edits inside are overwritten) -->"
END = "<!-- harness-report:end -->"
SECTION = re.compile(r"<!-- device:(?P<device>[\w.-]+) -->\n(?P<body>.*?)<!-- /device -->\n", re.DOTALL)
DTYPES = ("f32", "bf16", "f16")


@dataclass
class TestCounts:
    passed: int = 0
    failed: int = 0
    skipped: int = 0

    def add(self, other: "TestCounts") -> None:
        self.passed, self.failed, self.skipped = (self.passed + other.passed, self.failed + other.failed,
                                                  self.skipped + other.skipped)

    def __str__(self) -> str:
        return f"{self.passed} passed, {self.failed} failed" + (f", {self.skipped} skipped" if self.skipped else "")


@dataclass
class DeviceResults:
    device: str
    parity: dict | None = None
    bench: dict | None = None
    tests: dict[str, TestCounts] = field(default_factory=dict)  # suite -> counts
    stages: str | None = None


def junit_counts(path: Path) -> dict[str, TestCounts]:
    """Counts per suite (conformance, parity, unit) from the test cases' class names."""
    counts: dict[str, TestCounts] = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        name = case.get("classname", "")
        suite = "conformance" if name.startswith("conformance") else "parity" if "parity" in name else "unit"
        result = TestCounts()
        if case.find("failure") is not None or case.find("error") is not None:
            result.failed = 1
        elif case.find("skipped") is not None:
            result.skipped = 1
        else:
            result.passed = 1
        counts.setdefault(suite, TestCounts()).add(result)
    return counts


def load_device(directory: Path, device: str) -> DeviceResults | None:
    result = DeviceResults(device)
    if (directory / "parity.json").is_file():
        result.parity = json.loads((directory / "parity.json").read_text())
    if (directory / "bench.json").is_file():
        result.bench = json.loads((directory / "bench.json").read_text())
    for xml in sorted(directory.glob("*.xml")):
        for suite, counts in junit_counts(xml).items():
            result.tests.setdefault(suite, TestCounts()).add(counts)
    if (directory / "stages.txt").is_file():
        result.stages = (directory / "stages.txt").read_text().strip()
    return result if (result.parity or result.bench or result.tests) else None


def load(results: Path) -> list[DeviceResults]:
    """results is build/results (one folder per device) or one device's folder (e.g. the platform run's)."""
    if not results.is_dir():
        return []
    direct = load_device(results, results.name)
    if direct is not None:
        meta = direct.parity or direct.bench or {}
        direct.device = meta.get("device", results.name)
        return [direct]
    found = [load_device(d, d.name) for d in sorted(results.iterdir()) if d.is_dir()]
    return [r for r in found if r is not None]


# -- rendering ------------------------------------------------------------------------------------------------
def parity_table(parity: dict) -> list[str]:
    dtypes = [d for d in DTYPES if d in parity["worst"]]
    operators = list(dict.fromkeys(op for d in dtypes for op in parity["worst"][d]))
    lines = ["| operator | " + " | ".join(f"{d} worst rel. L2 (limit)" for d in dtypes) + " |",
             "|---|" + "---|" * len(dtypes)]
    for op in operators:
        cells = []
        for d in dtypes:
            error, limit = parity["worst"][d].get(op), parity["limits"][d].get(op)
            if error is None:
                cells.append("–")
            else:
                mark = "" if error <= limit else " **over**"
                cells.append(f"{error:.2g} ({limit:.2g}){mark}")
        lines.append(f"| {op} | " + " | ".join(cells) + " |")
    return lines


def render_section(result: DeviceResults) -> str:
    meta = result.parity or result.bench or {}
    title = f"#### {meta.get('device_name', result.device)}"
    if meta.get("cpu_model") and result.device == "cpu":
        title += f", {meta['cpu_model']}"
    if meta.get("date"):
        versions = meta.get("versions") or {}
        commit = meta.get("commit", "unknown")
        commit = commit[:10] if re.fullmatch(r"[0-9a-f]{40}", commit) else commit
        title += (f" — {meta['date']}, commit `{commit}`, torch {versions.get('torch')}, "
                  f"transformers {versions.get('transformers')}, InfiniCore {versions.get('infinicore')}")
    lines = [title, ""]
    if result.tests:
        lines.append("Tests: " + "; ".join(f"{suite} {counts}" for suite, counts in sorted(result.tests.items())) + ".")
        lines.append("")
    if result.stages:
        lines += ["Stages (`ci/platform.sh`): " + "; ".join(result.stages.replace("== ", "").splitlines()) + ".", ""]
    if result.parity:
        lines += ["Parity against transformers-f32, worst relative L2 error per operator over all layers and tests:",
                  ""] + parity_table(result.parity) + [""]
    if result.bench:
        lines += [bench_markdown(result.bench)]
    return "\n".join(lines).rstrip() + "\n"


def existing_sections(block: str) -> dict[str, str]:
    return {m.group("device"): m.group("body") for m in SECTION.finditer(block)}


def render_block(sections: dict[str, str]) -> str:
    body = "".join(f"<!-- device:{device} -->\n{text}<!-- /device -->\n" for device, text in sorted(sections.items()))
    return f"{BEGIN}\n{body}{END}"


def find_block(readme: str) -> tuple[int, int]:
    if readme.count(BEGIN) != 1 or readme.count(END) != 1:
        raise ValueError("the README must hold exactly one harness-report block (begin and end markers)")
    start, end = readme.index(BEGIN), readme.index(END) + len(END)
    if end < start:
        raise ValueError("the harness-report end marker comes before its begin marker")
    return start, end


def check(readme: str) -> dict[str, str]:
    """Parses the block: its sections and their tables (every row with its header's number of cells)."""
    start, end = find_block(readme)
    block = readme[start:end]
    sections = existing_sections(block)
    if block.count("<!-- device:") != len(sections):
        raise ValueError("a device section of the harness-report block is not closed")
    for device, text in sections.items():
        columns = None
        for line in text.splitlines():
            if not line.startswith("|"):
                columns = None
                continue
            cells = line.count("|")
            if columns is None:
                columns = cells
            elif cells != columns:
                raise ValueError(f"section {device}: table row has {cells - 1} cells, header {columns - 1}: {line}")
    return sections


def merge(readme: str, results: list[DeviceResults]) -> str:
    start, end = find_block(readme)
    sections = existing_sections(readme[start:end])
    for result in results:
        sections[result.device] = render_section(result)
    return readme[:start] + render_block(sections) + readme[end:]


def summary(results: list[DeviceResults]) -> str:
    lines = ["== CI report"]
    for result in results:
        lines.append(f"-- {result.device}")
        for suite, counts in sorted(result.tests.items()):
            lines.append(f"   {suite}: {counts}")
        if result.parity:
            for dtype in DTYPES:
                worst = result.parity["worst"].get(dtype)
                if worst:
                    op = max(worst, key=lambda o: worst[o] / max(result.parity["limits"][dtype][o], 1e-30))
                    lines.append(f"   parity {dtype}: closest to its limit is {op} "
                                 f"{worst[op]:.2g} (limit {result.parity['limits'][dtype][op]:.2g})")
        if result.bench:
            for kind in ("prefill", "decode"):
                for row in result.bench.get(kind, []):
                    ratio = f"{row['ratio']:.2f}x transformers" if row.get("ratio") else "no transformers run"
                    lines.append(f"   {kind} {row['batch']}x{row['tokens']}: {row['ours']:.1f} tokens/s ({ratio})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["conformance"]:  # the feature x server matrix (harness/conformance_matrix.py)
        from . import conformance_matrix

        return conformance_matrix.main(argv[1:])
    if argv[:1] == ["charts"]:  # SVG charts of the same-run comparisons (harness/charts.py)
        from . import charts

        return charts.main(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m harness.report", description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=REPO / "build" / "results")
    parser.add_argument("--readme", type=Path, default=REPO / "README.md")
    parser.add_argument("--write", action="store_true", help="merge the results into the README block")
    parser.add_argument("--check", action="store_true", help="check that the README block parses")
    parser.add_argument("--summary", action="store_true", help="print the short CI report")
    args = parser.parse_args(argv)
    results = load(args.results)
    readme = args.readme.read_text()
    if args.check:
        try:
            sections = check(readme)
        except ValueError as exc:
            print(f"README harness-report block: {exc}", file=sys.stderr)
            return 1
        print(f"README harness-report block parses: sections {sorted(sections) or 'none'}")
    if args.summary:
        print(summary(results))
    if args.write or not (args.check or args.summary):
        if not results:
            print(f"no results under {args.results}", file=sys.stderr)
            return 1
        args.readme.write_text(merge(readme, results))
        print(f"wrote {', '.join(r.device for r in results)} into {args.readme}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
