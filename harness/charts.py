"""python -m harness.report charts [--write] [--check]

SVG charts of the same-run comparisons, embedded in the README next to their tables: CPU throughput per shape,
engine and instruction tier; 8-bit weights against bf16, transformers and llama.cpp; the serving comparison with
llama-server (TTFT, inter-token latency, output tokens/s per load).

--write copies each chart's results file from build/results/ (what the bench wrote) to docs/results/ and draws
docs/charts/NAME.svg from that copy (matplotlib, in the bench extra). Each SVG carries the numbers it plots, as
JSON in its <metadata> description. --check (CI; no matplotlib needed) recomputes those numbers from the committed
docs/results/ file and fails when a chart's numbers differ from its results, when a chart or its results file is
missing, or when the README does not embed it."""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from harness.results import REPO

DOCS = REPO / "docs"
CHARTS_DIR, RESULTS_DIR = DOCS / "charts", DOCS / "results"
SIGNIFICANT = 4  # digits kept of every plotted number (what the chart shows and the check compares)


def rounded(value: float | None) -> float | None:
    return None if value is None else float(f"{value:.{SIGNIFICANT}g}")


def panel(title: str, unit: str, groups: list[str], bars: dict[str, list[float | None]]) -> dict:
    """One grouped bar chart: for each group (x position) one bar per key of `bars` (None: not measured)."""
    return {"title": title, "unit": unit, "groups": groups,
            "bars": {name: [rounded(v) for v in values] for name, values in bars.items()}}


# -- what each chart plots, from its results file ----------------------------------------------------------
def cpu_tiers(result: dict) -> dict:
    """harness.bench throughput --cpu-isa all --peer llama.cpp: tokens/s per shape, a group per tier."""
    tiers = [t["tier"] for t in result["tiers"]]
    shapes = [("prefill", 1, 128), ("prefill", 1, 512), ("decode", 1, 16), ("decode", 8, 16)]
    panels = []
    for kind, batch, tokens in shapes:
        def rate(tier: dict, engine: str):
            row = next((r for r in tier[kind] if (r["batch"], r["tokens"]) == (batch, tokens)), None)
            if engine == "llama.cpp":
                return tier.get("peers", {}).get("llama.cpp", {}).get(kind, {}).get(f"{batch},{tokens}")
            return row.get(engine) if row else None

        bars = {engine: [rate(t, engine) for t in result["tiers"]] for engine in ("ours", "transformers", "llama.cpp")}
        bars["infini-qwen3"] = bars.pop("ours")
        bars = {name: bars[name] for name in ("infini-qwen3", "transformers", "llama.cpp")}
        panels.append(panel(f"{kind} {batch}x{tokens}", "tokens/s", tiers, bars))
    return {"title": f"Qwen3-1.7B shapes, bf16, CPU tiers ({result['tiers'][0].get('device_name', 'CPU')})",
            "panels": panels}


def quant(result: dict) -> dict:
    """harness.bench quant --transformers --peer llama.cpp: tokens/s per weight format and engine."""
    names = {"bf16": "bf16", "fp8": "FP8", "gptq": "GPTQ-Int8"}
    bars: dict[str, dict[str, float | None]] = {}
    for name, entry in result["formats"].items():
        bars[f"infini-qwen3 {names.get(name, name)}"] = entry
    for name, entry in result.get("transformers", {}).items():
        bars[f"transformers bf16, {names.get(name, name)} dequantized"] = entry
    for name, entry in result.get("llama.cpp", {}).items():
        bars[f"llama.cpp {name.upper() if name == 'q8_0' else name}"] = entry
    metrics = [("decode_b1", "decode batch 1"), ("decode_b8", "decode batch 8"), ("prefill_1x512", "prefill 1x512")]
    panels = [panel(title, "tokens/s", [""], {label: [entry.get(key)] for label, entry in bars.items()})
              for key, title in metrics]
    where = f"CPU: {result['cpu_model']}, tier {result['cpu_isa']}" if "cpu_isa" in result else "CPU"
    return {"title": f"8-bit weights against bf16, Qwen3-1.7B shapes, {where}, one run", "panels": panels}


def serving(result: dict) -> dict:
    """harness.llama_server serving: latency and throughput per concurrent-stream count, a bar per server."""
    servers = result["servers"]
    streams = [str(row["streams"]) for row in next(iter(servers.values()))]

    def series(key: str, scale: float = 1.0) -> dict[str, list[float | None]]:
        return {name: [None if row[key] is None else row[key] * scale for row in rows]
                for name, rows in servers.items()}

    groups = [f"{n} stream{'s' if n != '1' else ''}" for n in streams]
    return {"title": "Serving the same checkpoint, same client load (CPU)",
            "panels": [panel("time to first token p50", "s", groups, series("ttft_p50")),
                       panel("inter-token latency p50", "ms", groups, series("itl_p50", 1e3)),
                       panel("inter-token latency p95", "ms", groups, series("itl_p95", 1e3)),
                       panel("output tokens/s", "tokens/s", groups, series("output_tokens_per_s"))]}


@dataclass(frozen=True)
class Chart:
    name: str  # docs/charts/NAME.svg, docs/results/NAME.json
    source: str  # the bench's output under build/results/
    data: Callable[[dict], dict]


CHARTS = [Chart("cpu-tiers", "cpu-tiers/bench.json", cpu_tiers), Chart("quant", "quant/cpu.json", quant),
          Chart("serving-llama-server", "llama-server/serving.json", serving)]


# -- drawing -------------------------------------------------------------------------------------------------
def draw(data: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("svg")
    import matplotlib.pyplot as plt

    matplotlib.rcParams["svg.hashsalt"] = "infini-qwen3"  # the same numbers draw the same file
    panels = data["panels"]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 4.2), squeeze=False)
    for ax, p in zip(axes[0], panels):
        names, groups = list(p["bars"]), p["groups"]
        width = 0.8 / len(names)
        for i, name in enumerate(names):
            xs = [g + (i - (len(names) - 1) / 2) * width for g in range(len(groups))]
            values = [v if v is not None else 0.0 for v in p["bars"][name]]
            bars = ax.bar(xs, values, width, label=name, color=f"C{i}")
            ax.bar_label(bars, labels=[f"{v:.3g}" if v is not None else "n/a" for v in p["bars"][name]],
                         fontsize=7, padding=1)
        ax.set_xticks(range(len(groups)), groups)
        ax.set_title(p["title"], fontsize=10)
        ax.set_ylabel(p["unit"])
        ax.margins(y=0.15)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 4), fontsize=8, frameon=False)
    fig.suptitle(data["title"], fontsize=11)
    fig.tight_layout(rect=(0, 0.1 + 0.04 * (len(labels) // 5), 1, 1))
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="svg", metadata={"Date": None, "Title": data["title"],
                                              "Description": json.dumps(data, sort_keys=True)})
    plt.close(fig)


# -- the check -----------------------------------------------------------------------------------------------
DESCRIPTION = re.compile(r"<dc:description>(.*?)</dc:description>", re.DOTALL)


def embedded(svg: str) -> dict | None:
    """The numbers an SVG drawn by draw() plots (its metadata description), or None."""
    import html

    found = DESCRIPTION.search(svg)
    return json.loads(html.unescape(found.group(1))) if found else None


def check(readme: str, charts_dir: Path = CHARTS_DIR, results_dir: Path = RESULTS_DIR) -> list[str]:
    """What is wrong with the committed charts (nothing: an empty list)."""
    problems = []
    for chart in CHARTS:
        svg, results = charts_dir / f"{chart.name}.svg", results_dir / f"{chart.name}.json"
        if not svg.is_file() or not results.is_file():
            problems.append(f"{chart.name}: {svg.name} or {results.name} is missing")
            continue
        expected = json.loads(json.dumps(chart.data(json.loads(results.read_text())), sort_keys=True))
        if embedded(svg.read_text()) != expected:
            problems.append(f"{chart.name}: the chart's numbers differ from {results.parent.name}/{results.name}: "
                            f"redraw it with python -m harness.report charts --write")
        if f"docs/charts/{chart.name}.svg" not in readme:
            problems.append(f"{chart.name}: the README does not embed docs/charts/{chart.name}.svg")
    return problems


def write(results_root: Path) -> list[str]:
    """Copies each chart's results that the bench has written and draws it; returns the charts drawn."""
    drawn = []
    for chart in CHARTS:
        source = results_root / chart.source
        if source.is_file():
            RESULTS_DIR.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, RESULTS_DIR / f"{chart.name}.json")
        committed = RESULTS_DIR / f"{chart.name}.json"
        if committed.is_file():
            draw(chart.data(json.loads(committed.read_text())), CHARTS_DIR / f"{chart.name}.svg")
            drawn.append(chart.name)
    return drawn


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.report charts", description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=REPO / "build" / "results")
    parser.add_argument("--write", action="store_true", help="copy the results and draw the charts")
    parser.add_argument("--check", action="store_true", help="check every chart against its committed results")
    args = parser.parse_args(argv)
    if args.write or not args.check:
        print(f"drew {', '.join(write(args.results)) or 'nothing'} into {CHARTS_DIR.relative_to(REPO)}")
    if args.check:
        problems = check((REPO / "README.md").read_text())
        for problem in problems:
            print(problem, file=sys.stderr)
        if problems:
            return 1
        print(f"charts match their results: {', '.join(c.name for c in CHARTS)}")
    return 0
