"""python -m harness.report conformance --results RUN.xml[=SERVER] ... [--out MATRIX.md]

The conformance matrix: the JUnit XML of one or more runs of `pytest conformance` (this project's own, or
`--base-url` against another server) as a feature x server table. A cell says how many of the feature's cases
passed, and names the first failing case (its test id and first assertion line) or why the cases were skipped;
below the table every failure and skip is listed by test id, so each cell can be traced to the cases behind it."""

from __future__ import annotations

import argparse
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from conformance.features import MODULES, RULES, feature_of


@dataclass
class Case:
    test_id: str
    module: str
    outcome: str  # "passed", "failed" or "skipped"
    detail: str = ""  # the first line of the failure, or the skip reason
    feature: str = ""  # the JUnit property the suite gives each case (conformance/features.py)


@dataclass
class Cell:
    cases: list[Case] = field(default_factory=list)

    def count(self, outcome: str) -> int:
        return sum(1 for c in self.cases if c.outcome == outcome)

    def render(self) -> str:
        total, passed, failed = len(self.cases), self.count("passed"), self.count("failed")
        skipped = self.count("skipped")
        if total == 0:
            return "—"
        if skipped == total:
            return f"skipped ({self.cases[0].detail})"
        if failed:
            first = next(c for c in self.cases if c.outcome == "failed")
            return f"FAIL {passed}/{total - skipped}: `{first.test_id}`: {first.detail}"
        return f"pass {passed}/{total - skipped}" + (f" ({skipped} skipped)" if skipped else "")


def first_line(text: str | None) -> str:
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return (lines[0] if lines else "")[:160].replace("|", "\\|")


def read_cases(path: Path) -> list[Case]:
    cases = []
    for case in ET.parse(path).getroot().iter("testcase"):
        classname = case.get("classname", "")
        if not classname.startswith("conformance."):
            continue
        module = classname.split(".")[1]
        test_id = f"{classname.replace('.', '/')}.py::{case.get('name')}" if classname.count(".") == 1 \
            else f"{classname}::{case.get('name')}"
        problem = case.find("failure") if case.find("failure") is not None else case.find("error")
        skipped = case.find("skipped")
        if problem is not None:
            found = Case(test_id, module, "failed", first_line(problem.get("message") or problem.text))
        elif skipped is not None:
            reason = (skipped.get("message") or "").removeprefix("Skipped: ")
            found = Case(test_id, module, "skipped", first_line(reason))
        else:
            found = Case(test_id, module, "passed")
        tagged = [p.get("value") for p in case.iter("property") if p.get("name") == "feature"]
        # runs from before the tags existed: the same rules, from the test's name
        found.feature = tagged[0] if tagged else feature_of(module, case.get("name", "").split("[")[0])
        cases.append(found)
    return cases


def feature_order(feature: str) -> tuple[int, str]:
    """The rules' features first (the protocol any server can be held to), then the modules', in their order."""
    order = [f for f, _ in RULES] + [f for f in MODULES.values() if f not in {r for r, _ in RULES}]
    return (order.index(feature) if feature in order else len(order), feature)


def matrix(runs: dict[str, list[Case]]) -> str:
    """The Markdown table (a row per feature, see feature_order) and the traced failures and skips."""
    features = sorted({c.feature for cases in runs.values() for c in cases}, key=feature_order)
    servers = list(runs)
    lines = ["| feature | " + " | ".join(servers) + " |", "|---" * (len(servers) + 1) + "|"]
    for feature in features:
        cells = [Cell([c for c in runs[s] if c.feature == feature]).render() for s in servers]
        lines.append(f"| {feature} | " + " | ".join(cells) + " |")
    for server in servers:
        notes = [c for c in runs[server] if c.outcome != "passed"]
        if notes:
            lines += ["", f"{server}:", *(f"- {c.outcome} `{c.test_id}`: {c.detail}" for c in notes)]
    return "\n".join(lines) + "\n"


def parse_run(value: str) -> tuple[str, Path]:
    path, _, name = value.partition("=")
    return (name or Path(path).stem), Path(path)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.report conformance", description=__doc__.splitlines()[0])
    parser.add_argument("--results", nargs="+", required=True, help="JUnit XML of a run, optionally =SERVER NAME")
    parser.add_argument("--out", type=Path, help="write the Markdown here (else print it)")
    args = parser.parse_args(argv)
    runs = {}
    for value in args.results:
        name, path = parse_run(value)
        if not path.is_file():
            print(f"no JUnit XML at {path}", file=sys.stderr)
            return 1
        runs[name] = read_cases(path)
    table = matrix(runs)
    if args.out:
        args.out.write_text(table)
        print(f"wrote {args.out}")
    else:
        print(table)
    return 0
