"""The charts of the same-run comparisons (harness/charts.py): what each plots from its results, and the CI check
that every committed chart carries the numbers of the results file it was drawn from."""

from __future__ import annotations

import html
import json

import pytest

from harness import charts

SERVING = {"servers": {"infini-qwen3": [{"streams": 1, "ttft_p50": 0.51234, "ttft_p95": 0.6, "itl_p50": 0.1,
                                         "itl_p95": 0.2, "output_tokens_per_s": 9.5}],
                       "llama-server": [{"streams": 1, "ttft_p50": 1.5, "ttft_p95": 1.6, "itl_p50": 0.09,
                                         "itl_p95": None, "output_tokens_per_s": 11.0}]}}


def fake_svg(data: dict) -> str:
    """What draw() leaves in an SVG's metadata (matplotlib writes the description escaped)."""
    return f"<svg><metadata><dc:description>{html.escape(json.dumps(data, sort_keys=True))}</dc:description>" \
           "</metadata></svg>"


def test_the_serving_chart_plots_each_servers_latency_per_load():
    data = charts.serving(SERVING)
    ttft, itl50, itl95, rate = data["panels"]
    assert ttft["groups"] == ["1 stream"] and ttft["bars"] == {"infini-qwen3": [0.5123], "llama-server": [1.5]}
    assert itl50["unit"] == "ms" and itl50["bars"]["llama-server"] == [90.0]
    assert itl95["bars"]["llama-server"] == [None]  # not measured: shown as n/a, not as 0
    assert rate["bars"]["infini-qwen3"] == [9.5]


def test_the_quant_chart_has_every_engine_of_the_run():
    result = {"formats": {"bf16": {"decode_b1": 8.5, "decode_b8": 50.0, "prefill_1x512": 131.0},
                          "gptq": {"decode_b1": 14.8, "decode_b8": 45.0, "prefill_1x512": 124.0}},
              "transformers": {"gptq": {"decode_b1": 3.0, "decode_b8": 24.0, "prefill_1x512": 100.0}},
              "llama.cpp": {"q8_0": {"decode_b1": 12.1, "decode_b8": 30.0, "prefill_1x512": 80.0}}}
    b1 = charts.quant(result)["panels"][0]
    assert b1["bars"] == {"infini-qwen3 bf16": [8.5], "infini-qwen3 GPTQ-Int8": [14.8],
                          "transformers bf16, GPTQ-Int8 dequantized": [3.0], "llama.cpp Q8_0": [12.1]}


def committed(tmp_path, data_for_svg=None):
    charts_dir, results_dir = tmp_path / "charts", tmp_path / "results"
    charts_dir.mkdir()
    results_dir.mkdir()
    readme = ""
    for chart in charts.CHARTS:
        source = SERVING if chart.name == "serving-llama-server" else None
        if source is None:
            continue
        (results_dir / f"{chart.name}.json").write_text(json.dumps(source))
        (charts_dir / f"{chart.name}.svg").write_text(fake_svg(data_for_svg or chart.data(source)))
        readme += f"![x](docs/charts/{chart.name}.svg)\n"
    return readme, charts_dir, results_dir


def serving_problems(problems):
    return [p for p in problems if p.startswith("serving-llama-server")]


def test_a_chart_drawn_from_its_results_passes_the_check(tmp_path):
    readme, charts_dir, results_dir = committed(tmp_path)
    assert serving_problems(charts.check(readme, charts_dir, results_dir)) == []


def test_a_chart_whose_numbers_differ_from_its_results_fails_the_check(tmp_path):
    stale = charts.serving(json.loads(json.dumps(SERVING).replace("9.5", "19.5")))
    readme, charts_dir, results_dir = committed(tmp_path, stale)
    assert "differ" in serving_problems(charts.check(readme, charts_dir, results_dir))[0]


def test_a_missing_chart_or_an_unembedded_one_fails_the_check(tmp_path):
    readme, charts_dir, results_dir = committed(tmp_path)
    assert "does not embed" in serving_problems(charts.check("", charts_dir, results_dir))[0]
    (charts_dir / "serving-llama-server.svg").unlink()
    assert "missing" in serving_problems(charts.check(readme, charts_dir, results_dir))[0]


def test_a_drawn_svg_carries_its_numbers(tmp_path):
    pytest.importorskip("matplotlib")
    data = charts.serving(SERVING)
    charts.draw(data, tmp_path / "c.svg")
    svg = (tmp_path / "c.svg").read_text()
    assert charts.embedded(svg) == json.loads(json.dumps(data, sort_keys=True))
    assert "<svg" in svg and "1.5" in svg  # the bar labels
