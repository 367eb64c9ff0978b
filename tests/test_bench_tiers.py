"""The benchmark's CPU tiers and peers: which tiers a CPU runs and how both sides are capped to one, the per-tier
re-invocation's arguments, llama.cpp's outputs read into rates, and the peer columns of the table."""

from __future__ import annotations

import json

import pytest

from harness.bench import __main__ as bench
from harness.bench import llama_cpp, measure, tables, tiers

ICE_LAKE = {"avx2", "fma", "avx512f", "avx512bw", "avx512vl"}
ZEN4 = ICE_LAKE | {"avx512_bf16"}
SAPPHIRE_RAPIDS = ZEN4 | {"amx_bf16", "amx_tile"}


@pytest.fixture
def flags(monkeypatch):
    def use(cpu_flags: set[str]) -> None:
        monkeypatch.setattr(tiers, "cpu_flags", lambda: set(cpu_flags))
    return use


def test_tiers_a_cpu_supports_best_first(flags):
    flags(ICE_LAKE)
    assert tiers.supported_tiers() == ["avx512", "avx2", "baseline"]
    flags(ZEN4)
    assert tiers.supported_tiers() == ["avx512bf16", "avx512", "avx2", "baseline"]
    flags(SAPPHIRE_RAPIDS)
    assert tiers.supported_tiers() == ["amx", "avx512bf16", "avx512", "avx2", "baseline"]
    flags({"sse4_2"})
    assert tiers.supported_tiers() == ["baseline"]


def test_all_means_every_tier_but_the_baseline_loops(flags):
    flags(ZEN4)
    assert tiers.requested("all") == ["avx512bf16", "avx512", "avx2"]
    assert tiers.requested("avx2") == ["avx2"]
    with pytest.raises(SystemExit, match="amx"):
        tiers.requested("amx")


def test_our_tier_is_the_best_under_the_cap(flags, monkeypatch):
    flags(SAPPHIRE_RAPIDS)
    monkeypatch.delenv("INFINICORE_CPU_ISA", raising=False)
    assert tiers.our_tier() == "amx"
    monkeypatch.setenv("INFINICORE_CPU_ISA", "avx2")
    assert tiers.our_tier() == "avx2"
    flags(ZEN4)
    monkeypatch.setenv("INFINICORE_CPU_ISA", "amx")  # a cap above what the CPU has
    assert tiers.our_tier() == "avx512bf16"


@pytest.mark.parametrize("tier, onednn, aten", [("avx512bf16", "AVX512_CORE_BF16", None), ("avx2", "AVX2", "avx2")])
def test_a_tier_caps_both_sides(tier, onednn, aten):
    env = tiers.tier_environment(tier, threads=2)
    assert env["INFINICORE_CPU_ISA"] == tier and env["ONEDNN_MAX_CPU_ISA"] == onednn
    assert env.get("ATEN_CPU_CAPABILITY") == aten and env["OMP_NUM_THREADS"] == "2" and env[tiers.CHILD] == tier


def test_options_are_removed_in_both_spellings():
    argv = ["throughput", "--cpu-isa", "all", "--out=x.json", "--peer", "llama.cpp", "--repeats", "1"]
    assert tiers._without(tiers._without(tiers._without(argv, "--cpu-isa"), "--out"), "--peer") == \
        ["throughput", "--repeats", "1"]


LLAMA_BENCH_JSON = json.dumps([
    {"n_prompt": 128, "n_gen": 0, "avg_ts": 103.9},
    {"n_prompt": 512, "n_gen": 0, "avg_ts": 91.9},
    {"n_prompt": 0, "n_gen": 16, "avg_ts": 11.8},
])

BATCHED_OUTPUT = """main: n_kv_max = 1168, n_batch = 2048
{"n_kv_max": 1168, "pp": 128, "tg": 16, "pl": 1, "n_kv": 144, "t_pp": 1.2, "speed_pp": 106.1, "t_tg": 1.4, \
"speed_tg": 11.2, "t": 2.6, "speed": 55.1}
llama_perf_context_print: load time = 1.0 ms
{"n_kv_max": 1168, "pp": 128, "tg": 16, "pl": 8, "n_kv": 1152, "t_pp": 9.9, "speed_pp": 103.4, "t_tg": 3.7, \
"speed_tg": 34.3, "t": 13.6, "speed": 84.6}
"""


def test_llama_cpp_outputs_read_into_rates():
    assert llama_cpp.parse_bench(LLAMA_BENCH_JSON) == {"prefill": {128: 103.9, 512: 91.9}, "decode_batch1": 11.8}
    assert llama_cpp.parse_batched(BATCHED_OUTPUT) == {1: 11.2, 8: 34.3}


def test_a_peer_gets_its_columns_beside_transformers():
    result = {"config": "qwen3-1.7b", "device_name": "CPU", "dtype": "bf16", "date": "today", "commit": "abc",
              "prefill": [{"batch": 1, "tokens": 128, "ours": 120.0, "transformers": 100.0, "ratio": 1.2}],
              "decode": [{"batch": 8, "tokens": 16, "ours": 42.0, "transformers": 26.0, "ratio": 42 / 26}],
              "peers": {"llama.cpp": {"prefill": {"1,128": 100.0}, "decode": {"8,16": 35.0}}}}
    table = tables.markdown(result)
    assert "| llama.cpp tokens/s | ratio to llama.cpp |" in table
    assert "| prefill | 1 × 128 | 120 | 100 | 1.20 | 100 | 1.20 |" in table
    assert "| decode | 8 × 16 | 42.0 | 26.0 | 1.62 | 35.0 | 1.20 |" in table


def test_batch1_decode_of_both_engines_is_the_median_of_their_alternating_runs():
    result = {"decode": [{"batch": 1, "tokens": 16, "ours": 7.0, "transformers": 4.0, "ratio": 1.75}],
              "peers": {"llama.cpp": {"decode": {"1,16": 9.0}}}}
    runs = [(33e9, 9.0, 8.5), (58e9, 12.0, 11.0), (34e9, 10.0, 12.0)]
    bench.alternate_batch1(result, runs, measure.Shape(1, 16))
    assert result["decode"][0]["ours"] == 10.0 and result["decode"][0]["ratio"] == 2.5
    assert result["peers"]["llama.cpp"]["decode"]["1,16"] == 11.0
    assert len(result["decode_batch1_alternating"]) == 3
