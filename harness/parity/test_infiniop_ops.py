"""The InfiniCore operators the Qwen3 model depends on, run through ctypes on the CPU build and compared with
torch. A failure here means the InfiniCore build itself is broken, before any model runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from harness.bench.tiers import CPU_TIER_FLAGS, cpu_flags
from harness.results import REPO

from .infiniop import ROPE_GPT_J, ROPE_GPT_NEOX, Infiniop
from .sampling_reference import reference_sample

DTYPES = [torch.float32, torch.bfloat16, torch.float16]
# Tolerance on relative L2 error against a float64 torch reference computed from the same (rounded) inputs.
TOL = {torch.float32: 1e-5, torch.bfloat16: 1e-2, torch.float16: 2e-3}


@pytest.fixture(scope="module")
def ops() -> Infiniop:
    return Infiniop()


def rel_err(actual: torch.Tensor, expected: torch.Tensor) -> float:
    a, e = actual.double(), expected.double()
    return float((a - e).norm() / e.norm().clamp_min(1e-30))


@pytest.mark.parametrize("dtype", DTYPES)
def test_gemm_with_transposed_weight_and_residual(ops, dtype):
    g = torch.Generator().manual_seed(0)
    a = torch.randn(5, 64, generator=g).to(dtype)
    weight = torch.randn(48, 64, generator=g).to(dtype)  # [out, in] as checkpoints store it
    residual = torch.randn(5, 48, generator=g).to(dtype)
    c = residual.clone()
    ops.gemm(c, a, weight.t(), alpha=1.0, beta=1.0)
    expected = a.double() @ weight.double().t() + residual.double()
    assert rel_err(c, expected) < TOL[dtype]


@pytest.mark.parametrize("dtype", DTYPES)
def test_gemm_batched_strided_scaled(ops, dtype):
    g = torch.Generator().manual_seed(1)
    a = torch.randn(4, 6, 32, generator=g).to(dtype)
    keys = torch.randn(10, 4, 32, generator=g).to(dtype)  # [total, heads, dh] as in the KV cache
    b = keys.permute(1, 2, 0)  # [heads, dh, total], strided
    c = torch.full((4, 6, 10), float("nan"), dtype=dtype)  # beta = 0 must ignore what C held
    ops.gemm(c, a, b, alpha=0.125, beta=0.0)
    expected = 0.125 * (a.double() @ b.double())
    assert not torch.isnan(c).any()
    assert rel_err(c, expected) < TOL[dtype]


def cpu_has_amx_bf16() -> bool:
    return "amx_bf16" in cpu_flags()


def gemm_operands(m: int, n: int, k: int, layout: str, g: torch.Generator):
    """(c, a, b) in bf16 for the layouts the model runs: "linear" (x * W^T, both operands contiguous along k),
    "pv" (attention's P x V: b contiguous along n), "c_columns" (c stored column-major)."""
    a = torch.randn(m, k, generator=g).to(torch.bfloat16)
    b = (torch.randn(n, k, generator=g).to(torch.bfloat16).t() if layout != "pv"
         else torch.randn(k, n, generator=g).to(torch.bfloat16))
    c = torch.randn(n, m, generator=g).to(torch.bfloat16).t() if layout == "c_columns" else \
        torch.randn(m, n, generator=g).to(torch.bfloat16)
    return c, a, b


@pytest.mark.parametrize("layout", ["linear", "pv", "c_columns"])
# (64, 130, 96) and (37, 45, 70): the AMX kernel copies its direct tiles into tile order (more than two packed
# blocks); (48, 40, 65): an odd row stride (no 32-bit transposes); (400, 420, 2048): more than one chunk;
# (48, 48, 128): operands of one size, as attention's Q x K^T over a whole prompt (b is packed).
# (1, 70, 2049), (8, 9, 37), (5, 64, 31): decode shapes with k tails (patch 0022's dot products); (13, 33, 17):
# one row and one column past the 12 x 32 register block, odd k (its panels); (8, 40, 96), (6, 24, 2048): 6-8 rows
# of x with k a multiple of 32 (passes of two weight rows; 2048 in chunks of k; the avx512 tier's F32 FMA dot products).
@pytest.mark.parametrize("m, n, k", [(37, 45, 70), (2, 48, 64), (64, 130, 96), (1, 33, 40), (20, 3, 2048),
                                     (48, 40, 65), (400, 420, 2048), (48, 48, 128), (1, 70, 2049), (8, 9, 37),
                                     (5, 64, 31), (13, 33, 17), (8, 40, 96), (6, 24, 2048)])
def test_gemm_bf16_shapes_with_tails(ops, m, n, k, layout):
    """Row and k counts that are not multiples of the 16 x 32 tiles of the CPU's AMX path (patch 0014), with the
    residual (beta = 1); on CPUs without AMX the same shapes check the dot-product loop."""
    c, a, b = gemm_operands(m, n, k, layout, torch.Generator().manual_seed(m * 1000 + n + k))
    expected = a.double() @ b.double() + c.double()
    ops.gemm(c, a, b, alpha=1.0, beta=1.0)
    assert rel_err(c, expected) < TOL[torch.bfloat16]


@pytest.mark.skipif(not cpu_has_amx_bf16(), reason="the AMX kernel's packing; this CPU has no AMX-BF16")
@pytest.mark.parametrize("m, n, k", [(64, 128, 512), (40, 100, 96), (33, 16, 64)])
def test_pv_layout_packs_the_same_tiles_as_the_contiguous_layout(ops, m, n, k):
    """P x V with V contiguous along n (attention) and the same product with V's transpose contiguous along k: the
    AMX kernel packs both into the same tiles (16 columns interleaved in pairs of k, or 16 rows transposed), so the
    results are the same bits; n and k with partial tiles take the element loop for those."""
    g = torch.Generator().manual_seed(m + n + k)
    a = torch.randn(m, k, generator=g).bfloat16()
    v = torch.randn(k, n, generator=g).bfloat16()
    along_n, along_k = torch.zeros(m, n).bfloat16(), torch.zeros(m, n).bfloat16()
    ops.gemm(along_n, a, v)
    ops.gemm(along_k, a, v.t().contiguous().t())
    assert torch.equal(along_n.view(torch.int16), along_k.view(torch.int16))


def run_in_process_with(environment: dict[str, str], *tests: str) -> None:
    """Runs tests of this file in a new process with `environment` added (InfiniCore reads its CPU switches once
    per process) and fails with its output if any fails. A test of another file is named by its full id."""
    env = {**os.environ, **environment}
    ids = [name if "::" in name else f"{Path(__file__).relative_to(REPO)}::{name}" for name in tests]
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *ids], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:]


# The CPU GEMM tiers below AMX (patch 0022) and the /proc/cpuinfo flags each needs.
CPU_TIERS = {tier: CPU_TIER_FLAGS[tier] for tier in ("avx512bf16", "avx512", "avx2", "baseline")}
# The environment of a process on each of them; the AVX512-BF16 panels multiply with vdpbf16ps or, where the CPU's
# F32 FMAs are faster, with those (patch 0030): both are run wherever the tier is. avx512 (no BF16) has only FMAs.
TIER_RUNS = {"avx512bf16-dot": ("avx512bf16", {"INFINICORE_CPU_BF16_KERNEL": "dot"}),
             "avx512bf16-fma": ("avx512bf16", {"INFINICORE_CPU_BF16_KERNEL": "fma"}),
             "avx512": ("avx512", {}), "avx2": ("avx2", {}), "baseline": ("baseline", {})}


def tier_environment(run: str) -> dict[str, str]:
    """The variables that cap a process to TIER_RUNS[run], or a skip where this CPU lacks the tier."""
    tier, extra = TIER_RUNS[run]
    if not CPU_TIERS[tier] <= cpu_flags():
        pytest.skip(f"this CPU lacks {sorted(CPU_TIERS[tier] - cpu_flags())}")
    return {"INFINICORE_CPU_ISA": tier, **extra}


@pytest.mark.parametrize("run", sorted(TIER_RUNS))
def test_gemm_bf16_shapes_on_each_cpu_tier(ops, run):
    """The same shapes in a process capped to each tier this CPU supports (INFINICORE_CPU_ISA): the AVX512-BF16
    kernels (decode dot products, packed panels with vdpbf16ps or F32 FMAs), AVX-512 without BF16 (F32 FMA panels and
    dot products, AVX2 dot products for one or two rows), the AVX2 ones, then the plain loop."""
    if ops.device != "cpu":
        pytest.skip("these are the CPU backend's paths")
    run_in_process_with(tier_environment(run), "test_gemm_bf16_shapes_with_tails",
                        "test_gemm_batched_strided_scaled", "test_gemm_with_transposed_weight_and_residual")


def test_the_old_switches_still_cap_the_tier(ops):
    """INFINICORE_CPU_AMX=0 and INFINICORE_CPU_BF16DOT=0 keep working (as caps below amx and below avx512bf16)."""
    if ops.device != "cpu":
        pytest.skip("these are the CPU backend's paths")
    run_in_process_with({"INFINICORE_CPU_AMX": "0", "INFINICORE_CPU_BF16DOT": "0"}, "test_gemm_bf16_shapes_with_tails")


def test_bf16_gemm_takes_the_tile_path_where_the_cpu_has_amx(ops):
    """The AMX path packs an operand into the workspace: a bf16 linear-layer GEMM (batch 8 or 1) asks for one
    exactly where the CPU has AMX-BF16 (so the shapes above ran on tiles there), and never in f32."""
    if ops.device != "cpu":
        pytest.skip("the tile path is the CPU backend's")
    for rows in (8, 1):
        c, a, b = gemm_operands(rows, 64, 64, "linear", torch.Generator().manual_seed(0))
        assert (ops.workspace_size("Gemm", [c, a, b]) > 0) == cpu_has_amx_bf16()
    assert ops.workspace_size("Gemm", [c.float(), a.float(), b.float()]) == 0


def hf_rms_norm(x: torch.Tensor, w: torch.Tensor, eps: float) -> torch.Tensor:
    """transformers' Qwen3RMSNorm: fp32 statistics, cast back, times the weight."""
    xf = x.float()
    normed = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)
    return w * normed.to(x.dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_rms_norm_2d(ops, dtype):
    g = torch.Generator().manual_seed(2)
    x = torch.randn(7, 96, generator=g).to(dtype)
    w = (1 + 0.1 * torch.randn(96, generator=g)).to(dtype)
    y = torch.empty_like(x)
    ops.rms_norm(y, x, w, 1e-6)
    assert rel_err(y, hf_rms_norm(x, w, 1e-6)) < TOL[dtype]


@pytest.mark.parametrize("dtype", DTYPES)
def test_rms_norm_3d_strided_in_place(ops, dtype):
    """The QK-norm case: heads of the fused QKV output normalised over head_dim, in place."""
    g = torch.Generator().manual_seed(3)
    qkv = torch.randn(5, (4 + 2 * 2) * 32, generator=g).to(dtype)
    q = qkv[:, : 4 * 32].view(5, 4, 32)  # strided view: row stride is the fused width
    w = (1 + 0.1 * torch.randn(32, generator=g)).to(dtype)
    expected = hf_rms_norm(q.clone(), w, 1e-6)
    untouched = qkv[:, 4 * 32:].clone()
    ops.rms_norm(q, q, w, 1e-6)
    assert rel_err(q, expected) < TOL[dtype]
    assert torch.equal(qkv[:, 4 * 32:], untouched)


def rope_tables(positions: int, dh: int, theta: float, dtype):
    inv_freq = 1.0 / (theta ** (torch.arange(0, dh, 2, dtype=torch.int64).float() / dh))
    angles = torch.arange(positions).float()[:, None] * inv_freq[None, :]
    return angles.sin().to(dtype), angles.cos().to(dtype)


def rope_neox(x, pos, sin, cos):
    s, c = sin[pos].double()[:, None, :], cos[pos].double()[:, None, :]
    half = x.shape[-1] // 2
    x0, x1 = x.double()[..., :half], x.double()[..., half:]
    return torch.cat([x0 * c - x1 * s, x0 * s + x1 * c], dim=-1)


def rope_gptj(x, pos, sin, cos):
    s, c = sin[pos].double()[:, None, :], cos[pos].double()[:, None, :]
    x0, x1 = x.double()[..., 0::2], x.double()[..., 1::2]
    out = torch.empty_like(x, dtype=torch.float64)
    out[..., 0::2] = x0 * c - x1 * s
    out[..., 1::2] = x0 * s + x1 * c
    return out


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("algo", [ROPE_GPT_NEOX, ROPE_GPT_J])
def test_rope_strided_in_place(ops, dtype, algo):
    g = torch.Generator().manual_seed(4)
    qkv = torch.randn(6, 3 * 64, generator=g).to(dtype)
    x = qkv[:, :128].view(6, 2, 64)
    pos = torch.tensor([0, 1, 2, 7, 8, 30], dtype=torch.int32)
    sin, cos = rope_tables(32, 64, 1e6, dtype)
    reference = (rope_neox if algo == ROPE_GPT_NEOX else rope_gptj)(x.clone(), pos.long(), sin, cos)
    ops.rope(x, x, pos, sin, cos, algo)
    assert rel_err(x, reference) < TOL[dtype]


@pytest.mark.parametrize("dtype", DTYPES)
def test_causal_softmax_with_past(ops, dtype):
    g = torch.Generator().manual_seed(5)
    x = torch.randn(3, 4, 9, generator=g).to(dtype)  # 4 new rows over 9 positions (5 in the past)
    y = torch.empty_like(x)
    ops.causal_softmax(y, x)
    mask = torch.ones(4, 9, dtype=torch.bool).tril(diagonal=9 - 4)
    expected = x.double().masked_fill(~mask, float("-inf")).softmax(-1)
    assert rel_err(y, expected) < TOL[dtype]


@pytest.mark.parametrize("dtype", DTYPES)
def test_swiglu_on_fused_gate_up(ops, dtype):
    g = torch.Generator().manual_seed(6)
    gate_up = torch.randn(5, 2 * 40, generator=g).to(dtype)
    gate, up = gate_up[:, :40], gate_up[:, 40:]
    out = torch.empty(5, 40, dtype=dtype)
    ops.swiglu(out, up, gate)
    expected = up.double() * torch.nn.functional.silu(gate.double())
    assert rel_err(out, expected) < TOL[dtype]


@pytest.mark.parametrize("dtype", DTYPES)
def test_rearrange_permuted(ops, dtype):
    src = torch.randn(3, 4, 5).to(dtype)
    dst = torch.empty(5, 3, 4, dtype=dtype)
    ops.rearrange(dst, src.permute(2, 0, 1))
    assert torch.equal(dst, src.permute(2, 0, 1).contiguous())


@pytest.mark.parametrize("dtype", DTYPES)
def test_random_sample_greedy(ops, dtype):
    g = torch.Generator().manual_seed(7)
    for _ in range(5):
        logits = torch.randn(1000, generator=g).to(dtype)
        expected = int(torch.argmax(logits.float()))
        assert ops.random_sample(logits, 0.0, 1.0, 1000, 1.0) == expected  # random 0
        assert ops.random_sample(logits, 0.5, 1.0, 1, 1.0) == expected  # top_k 1
        assert ops.random_sample(logits, 0.5, 0.9, 50, 0.0) == expected  # temperature 0


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("top_k,top_p,temperature", [(1000, 1.0, 1.0), (20, 1.0, 0.7), (1000, 0.8, 1.0),
                                                     (20, 0.95, 0.6)])
def test_random_sample_matches_reference(ops, dtype, top_k, top_p, temperature):
    g = torch.Generator().manual_seed(8)
    logits = (3 * torch.randn(1000, generator=g)).to(dtype)
    for u in torch.rand(40, generator=g).tolist():
        u = max(u, 1e-6)
        chosen = ops.random_sample(logits, u, top_p, top_k, temperature)
        expected = reference_sample(logits, u, top_p, top_k, temperature)
        # InfiniCore sorts with std::sort (not stable): among equal logits (frequent in bf16) any may come first.
        assert chosen == expected or logits[chosen] == logits[expected]


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_results_round_to_nearest_even(ops, dtype):
    """Each half-precision result is the correctly rounded float32 one, as torch computes it (patch 0005)."""
    g = torch.Generator().manual_seed(9)
    a = torch.randn(4096, generator=g).to(dtype)
    b = (torch.randn(4096, generator=g) * 1e-3).to(dtype)
    c = torch.empty_like(a)
    ops.add(c, a, b)
    assert torch.equal(c, (a.float() + b.float()).to(dtype))


# -- paged KV cache (patch 0009) -------------------------------------------------------------------------------
BLOCK_SIZE = 4


def paged_reference(q_row: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, scale: float) -> torch.Tensor:
    """softmax(scale * q K^T) V in float64 for one query row [heads, dh] over keys/values [n, kv_heads, dh]."""
    group = q_row.shape[0] // keys.shape[1]
    k = keys.double().repeat_interleave(group, dim=1)  # [n, heads, dh]
    v = values.double().repeat_interleave(group, dim=1)
    scores = torch.einsum("hd,nhd->hn", q_row.double(), k) * scale
    return torch.einsum("hn,nhd->hd", scores.softmax(-1), v)


def fill_paged_cache(lengths: list[int], kv_heads: int, head_dim: int, dtype, g: torch.Generator):
    """Random K/V per sequence, stored in shuffled blocks; returns (caches, tables, per-sequence K/V)."""
    need = [-(-n // BLOCK_SIZE) for n in lengths]
    num_blocks = sum(need) + 3  # a few blocks nobody uses
    order = torch.randperm(num_blocks, generator=g).tolist()
    tables = torch.zeros(len(lengths), max(need), dtype=torch.int64)
    k_cache = torch.randn(num_blocks, kv_heads, BLOCK_SIZE, head_dim, generator=g).to(dtype)
    v_cache = torch.randn(num_blocks, kv_heads, BLOCK_SIZE, head_dim, generator=g).to(dtype)
    seq_kv = []
    for s, n in enumerate(lengths):
        blocks = [order.pop() for _ in range(need[s])]
        tables[s, : need[s]] = torch.tensor(blocks)
        keys = torch.randn(n, kv_heads, head_dim, generator=g).to(dtype)
        values = torch.randn(n, kv_heads, head_dim, generator=g).to(dtype)
        for pos in range(n):
            k_cache[blocks[pos // BLOCK_SIZE], :, pos % BLOCK_SIZE] = keys[pos]
            v_cache[blocks[pos // BLOCK_SIZE], :, pos % BLOCK_SIZE] = values[pos]
        seq_kv.append((keys, values))
    return k_cache, v_cache, tables, seq_kv


@pytest.mark.parametrize("dtype", DTYPES)
def test_paged_caching_writes_rows_at_their_slots(ops, dtype):
    g = torch.Generator().manual_seed(10)
    kv_heads, head_dim, ntok = 2, 32, 6
    k_cache = torch.randn(5, kv_heads, BLOCK_SIZE, head_dim, generator=g).to(dtype)
    v_cache = torch.randn(5, kv_heads, BLOCK_SIZE, head_dim, generator=g).to(dtype)
    qkv = torch.randn(ntok, (4 + 2 * kv_heads) * head_dim, generator=g).to(dtype)  # strided k/v views
    k = qkv[:, 4 * head_dim: (4 + kv_heads) * head_dim].view(ntok, kv_heads, head_dim)
    v = qkv[:, (4 + kv_heads) * head_dim:].view(ntok, kv_heads, head_dim)
    slots = torch.tensor([13, 2, -1, 19, 0, 7], dtype=torch.int64)  # -1: a padding row, written nowhere
    expected_k, expected_v = k_cache.clone(), v_cache.clone()
    for t, slot in enumerate(slots.tolist()):
        if slot >= 0:
            expected_k[slot // BLOCK_SIZE, :, slot % BLOCK_SIZE] = k[t]
            expected_v[slot // BLOCK_SIZE, :, slot % BLOCK_SIZE] = v[t]
    ops.paged_caching(k_cache, v_cache, k, v, slots)
    assert torch.equal(k_cache, expected_k)
    assert torch.equal(v_cache, expected_v)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("heads,kv_heads,head_dim", [(8, 2, 64), (4, 4, 128)])
def test_paged_attention_decode(ops, dtype, heads, kv_heads, head_dim):
    g = torch.Generator().manual_seed(11)
    lengths = [5, 17, 1, 9]
    k_cache, v_cache, tables, seq_kv = fill_paged_cache(lengths, kv_heads, head_dim, dtype, g)
    fused = torch.randn(len(lengths), heads + 1, head_dim, generator=g).to(dtype)
    q = fused[:, :heads]  # strided rows, as q is a view of the fused QKV output
    out = torch.full((len(lengths), heads, head_dim), float("nan"), dtype=dtype)
    scale = head_dim ** -0.5
    ops.paged_attention(out, q, k_cache, v_cache, tables, torch.tensor(lengths, dtype=torch.int64), scale)
    expected = torch.stack([paged_reference(q[s], *seq_kv[s], scale) for s in range(len(lengths))])
    assert rel_err(out, expected) < TOL[dtype]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("heads,kv_heads,head_dim", [(8, 2, 64), (4, 4, 128)])
def test_paged_attention_prefill_is_causal_over_past_and_new(ops, dtype, heads, kv_heads, head_dim):
    g = torch.Generator().manual_seed(12)
    past, new = [0, 7, 4], [3, 1, 6]
    totals = [p + n for p, n in zip(past, new)]
    k_cache, v_cache, tables, seq_kv = fill_paged_cache(totals, kv_heads, head_dim, dtype, g)
    q = torch.randn(sum(new), heads, head_dim, generator=g).to(dtype)
    out = torch.full_like(q, float("nan"))
    scale = head_dim ** -0.5
    ops.paged_attention_prefill(out, q, k_cache, v_cache, tables, torch.tensor(totals, dtype=torch.int64),
                                torch.tensor(new, dtype=torch.int64), scale)
    rows, t = [], 0
    for s in range(len(new)):
        keys, values = seq_kv[s]
        for i in range(new[s]):
            visible = past[s] + i + 1
            rows.append(paged_reference(q[t], keys[:visible], values[:visible], scale))
            t += 1
    assert rel_err(out, torch.stack(rows)) < TOL[dtype]


# -- embedding and batched sampling (patches 0010, 0011) ---------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("id_dtype", [torch.int32, torch.int64])
def test_embedding_gathers_rows_by_device_ids(ops, dtype, id_dtype):
    g = torch.Generator().manual_seed(13)
    weight = torch.randn(50, 24, generator=g).to(dtype)
    ids = torch.tensor([3, 49, 0, 3, 17], dtype=id_dtype)
    out = torch.full((5, 24), float("nan"), dtype=dtype)
    ops.embedding(out, ids, weight)
    assert torch.equal(out, weight[ids.long()])


@pytest.mark.parametrize("dtype", DTYPES)
def test_random_sample_batch_is_each_rows_reference_draw(ops, dtype):
    """One launch, per-row parameters: every row draws what reference_sample draws for it (greedy rows too)."""
    g = torch.Generator().manual_seed(14)
    cases = [(1000, 1.0, 1.0), (20, 1.0, 0.7), (1000, 0.8, 1.0), (20, 0.95, 0.6), (0, 0.9, 1.0), (1, 1.0, 1.0),
             (50, 1.0, 0.0)]  # top_k 0: no limit; top_k 1 and temperature 0: greedy
    for _ in range(6):
        logits = (3 * torch.randn(len(cases), 1000, generator=g)).to(dtype)
        randoms = [max(u, 1e-6) for u in torch.rand(len(cases), generator=g).tolist()]
        chosen = ops.random_sample_batch(logits, randoms, [c[1] for c in cases], [c[0] for c in cases],
                                         [c[2] for c in cases])
        for row, (top_k, top_p, temperature) in enumerate(cases):
            expected = reference_sample(logits[row], randoms[row], top_p, top_k or 1000, temperature)
            assert chosen[row] == expected or logits[row, chosen[row]] == logits[row, expected]


def test_random_sample_batch_in_half_precision_keeps_the_f32_distribution(ops):
    """bf16 logits with many near-equal values: an F32 softmax and scan (not bf16 ones) decide the draw."""
    g = torch.Generator().manual_seed(15)
    logits = (0.01 * torch.randn(4, 4096, generator=g)).to(torch.bfloat16)
    randoms = torch.rand(4, generator=g).tolist()
    chosen = ops.random_sample_batch(logits, randoms, [1.0] * 4, [0] * 4, [1.0] * 4)
    for row in range(4):
        expected = reference_sample(logits[row], randoms[row], 1.0, 4096, 1.0)
        assert chosen[row] == expected or logits[row, chosen[row]] == logits[row, expected]


def mid_slot_draws(logits: torch.Tensor, top_p: float, top_k: int, temperature: float, slots: list[int]):
    """(random value, id) pairs whose draw lands in the middle of each chosen slot of the reference order
    (descending logit, ascending id), far from any boundary that float32 summation order could move."""
    values, order = torch.sort(logits.double(), descending=True, stable=True)
    weights = torch.exp((values - values[0]) / temperature)
    cumulative = torch.cumsum(weights, 0)
    k = min(top_k, logits.numel())
    kept = min(cumulative[k - 1].item(), cumulative[-1].item() * top_p)
    draws = []
    for slot in slots:
        below = cumulative[slot - 1].item() if slot > 0 else 0.0
        middle = below + 0.5 * weights[slot].item()
        assert middle < kept, "slot outside the kept mass"
        draws.append((middle / kept, int(order[slot])))
    return draws


# One row of many ties: (logits, top_p, top_k, temperature, slots of the reference order to draw).
TIED_ROWS = [
    (torch.zeros(1000), 1.0, 0, 1.0, [0, 1, 499, 500, 998, 999]),  # all tied: u = 0.5 draws id 499
    (torch.tensor([1.0, 0.0, -1.0]).repeat(333), 1.0, 0, 0.7, [0, 100, 332, 333, 500, 700, 998]),
    (torch.tensor([1.0, 0.0, -1.0]).repeat(333), 1.0, 500, 1.0, [0, 200, 333, 420, 499]),  # top-k inside a tie
    (torch.tensor([0.5, 0.5, 0.25, 0.0]).repeat(256), 0.8, 0, 1.0, [0, 255, 256, 511, 600]),  # top_p inside one
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_random_sample_batch_draws_each_tied_token_in_its_own_slot(ops, dtype):
    """Tied logits are ordered by id, each with its own share of the mass (the CPU's sort order): the exact id,
    not any id with the same logit. 1000 equal logits with u = 0.5 draw id 499."""
    rows, expected = [], []
    for logits, top_p, top_k, temperature, slots in TIED_ROWS:
        for u, token in mid_slot_draws(logits.to(dtype).float(), top_p, top_k or logits.numel(), temperature, slots):
            rows.append((logits, u, top_p, top_k, temperature))
            expected.append(token)
    width = max(r[0].numel() for r in rows)
    # Rows of one launch share a width: pad with logits far below every row's (weight exp(-1e4) = 0).
    batch = torch.full((len(rows), width), -1e4)
    for i, row in enumerate(rows):
        batch[i, :row[0].numel()] = row[0]
    chosen = ops.random_sample_batch(batch.to(dtype), [r[1] for r in rows], [r[2] for r in rows],
                                     [r[3] for r in rows], [r[4] for r in rows])
    assert chosen == expected
    assert expected[2] == 499  # the first row's third slot


@pytest.mark.parametrize("dtype", DTYPES)
def test_silu_and_mul_of_a_fused_gate_up_row(ops, dtype):
    """Patch 0013: silu(gate) * up from one [rows, 2d] input, as transformers' Qwen3MLP computes it."""
    g = torch.Generator().manual_seed(16)
    fused = torch.randn(6, 2 * 40, generator=g).to(dtype)
    out = torch.full((6, 40), float("nan"), dtype=dtype)
    ops.silu_and_mul(out, fused)
    gate, up = fused.double()[:, :40], fused.double()[:, 40:]
    assert rel_err(out, torch.nn.functional.silu(gate) * up) < TOL[dtype]


def digests_by_thread_count(script: str, environment: dict[str, str]) -> set[str]:
    """What `script` prints (a digest of its results' bits) with 1, 2 and 3 threads, each in a fresh process."""
    digests = set()
    for threads in (1, 2, 3):
        env = {**os.environ, **environment, "OMP_NUM_THREADS": str(threads)}
        run = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True,
                             timeout=600)
        assert run.returncode == 0, run.stderr[-3000:]
        digests.add(run.stdout.strip())
    return digests


GEMM_BITS_SCRIPT = """
import hashlib, torch
from harness.parity.infiniop import Infiniop
from harness.parity.test_infiniop_ops import gemm_operands
ops, digest = Infiniop("cpu"), hashlib.sha256()
for m, n, k, layout in [(1, 70, 2048, "linear"), (8, 50, 2048, "linear"), (5, 33, 6144, "linear"),
                         (40, 96, 2048, "linear"), (40, 96, 130, "pv"), (13, 64, 96, "c_columns")]:
    c, a, b = gemm_operands(m, n, k, layout, torch.Generator().manual_seed(m + n + k))
    ops.gemm(c, a, b, alpha=1.0, beta=1.0)
    digest.update(c.contiguous().view(torch.int16).numpy().tobytes())
print(digest.hexdigest())
"""


@pytest.mark.parametrize("run", sorted(TIER_RUNS))
def test_bf16_gemm_results_do_not_depend_on_the_thread_count(ops, run):
    """The bits of every result are the same with 1, 2 and 3 threads on each tier (decode dot products, chunked
    and not; packed panels of each layout): threads split whole rows or blocks, never a sum."""
    if ops.device != "cpu":
        pytest.skip("these are the CPU backend's paths")
    assert len(digests_by_thread_count(GEMM_BITS_SCRIPT, tier_environment(run))) == 1
