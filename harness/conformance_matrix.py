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

# The feature each conformance module covers (modules not listed are shown by their own name).
FEATURES = {
    "test_chat": "chat completions: shape, streaming, usage, n, stop, seed",
    "test_completions": "completions: shape, streaming, echo, token-id prompts",
    "test_errors": "errors in OpenAI's shape",
    "test_fuzz": "hostile bodies never 5xx",
    "test_endpoints": "models list and retrieve, other routes",
    "test_logprobs_penalties": "logprobs, logit_bias, penalties",
    "test_prompt_logprobs": "prompt logprobs, /tokenizer_info",
    "test_structured_outputs": "structured outputs (json_schema, regex, choice, grammar)",
    "test_qwen3_api": "reasoning_content and tool calls",
    "test_text_integrity": "UTF-8 integrity of streamed text",
    "test_responses_api": "Responses API and Agents SDK",
    "test_instructor": "instructor",
    "test_lm_eval": "lm-evaluation-harness",
    "test_prefix_cache": "prefix cache (cached_tokens, cache_salt, metrics)",
    "test_control_tokens": "control tokens from chat text",
    "test_lifecycle": "health, metrics, auth, queue limits, disconnects",
    "test_connections": "slow and broken connections",
    "test_shutdown": "graceful shutdown",
    "test_paged_kv": "long contexts, large bodies",
    "test_tensor_parallel": "tensor parallelism (--ndev 2)",
    "test_quantized_servers": "8-bit checkpoints",
    "test_special_delimiters": "delimiters marked special",
}


@dataclass
class Case:
    test_id: str
    module: str
    outcome: str  # "passed", "failed" or "skipped"
    detail: str = ""  # the first line of the failure, or the skip reason


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
            cases.append(Case(test_id, module, "failed", first_line(problem.get("message") or problem.text)))
        elif skipped is not None:
            reason = (skipped.get("message") or "").removeprefix("Skipped: ")
            cases.append(Case(test_id, module, "skipped", first_line(reason)))
        else:
            cases.append(Case(test_id, module, "passed"))
    return cases


def matrix(runs: dict[str, list[Case]]) -> str:
    """The Markdown table (features in FEATURES' order, then others) and the traced failures and skips."""
    modules = sorted({c.module for cases in runs.values() for c in cases},
                     key=lambda m: (list(FEATURES).index(m) if m in FEATURES else len(FEATURES), m))
    servers = list(runs)
    lines = ["| feature | " + " | ".join(servers) + " |", "|---" * (len(servers) + 1) + "|"]
    for module in modules:
        cells = [Cell([c for c in runs[s] if c.module == module]).render() for s in servers]
        lines.append(f"| {FEATURES.get(module, module)} (`{module}`) | " + " | ".join(cells) + " |")
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
