"""weight_only_gemm (patch 0024): c = alpha * a . dequant(b)^T + beta * c with int8 weights and per-group scales
(GPTQ-Int8) or FP8 E4M3 weights and per-block scales (fine-grained FP8), against float64 with the weights
dequantized by torch; the direct path (up to 16 rows of a) and the dequantize + GEMM path, odd shapes, group and
block tails, F32 and BF16, on every CPU tier the machine has (lower ones forced by INFINICORE_CPU_ISA)."""

from __future__ import annotations

import pytest
import torch

from .infiniop import WEIGHT_F8_E4M3, WEIGHT_INT8, Infiniop
from .test_infiniop_ops import TIER_RUNS, TOL, digests_by_thread_count, rel_err, run_in_process_with, tier_environment

E4M3_NAN = (0x7F, 0xFF)


@pytest.fixture(scope="module")
def ops() -> Infiniop:
    return Infiniop()


def quantized(n: int, k: int, weight_format: int, block_n: int, block_k: int, g: torch.Generator):
    """(b, scales, dequantized b in float64) for random 8-bit weights."""
    groups = (-(-n // block_n), -(-k // block_k))
    scales = torch.rand(groups, generator=g) * 0.02 + 0.001
    if weight_format == WEIGHT_INT8:
        b = torch.randint(-128, 128, (n, k), generator=g, dtype=torch.int8)
        values = b.double()
    else:
        b = torch.randint(0, 256, (n, k), generator=g, dtype=torch.uint8)
        b[(b == E4M3_NAN[0]) | (b == E4M3_NAN[1])] = 0x7E  # every E4M3 byte but NaN
        values = b.view(torch.float8_e4m3fn).double()
    expanded = scales.double().repeat_interleave(block_n, 0)[:n].repeat_interleave(block_k, 1)[:, :k]
    return b, scales, values * expanded


# (m, n, k, format, block_n, block_k): decode and small batches read the weights directly (m <= 16), more rows
# dequantize them for the GEMM; k and n with partial groups and blocks, k not a multiple of the SIMD width.
SHAPES = [(1, 33, 300, WEIGHT_INT8, 1, 128), (3, 40, 257, WEIGHT_INT8, 1, 32), (8, 130, 200, WEIGHT_F8_E4M3, 128, 128),
          (16, 70, 129, WEIGHT_F8_E4M3, 128, 128), (1, 129, 2049, WEIGHT_F8_E4M3, 128, 128),
          (9, 24, 71, WEIGHT_INT8, 1, 16), (17, 45, 300, WEIGHT_INT8, 1, 128),
          (40, 140, 260, WEIGHT_F8_E4M3, 128, 128), (5, 67, 320, WEIGHT_INT8, 1, 64),
          (2, 9, 130, WEIGHT_INT8, 1, 128), (12, 37, 384, WEIGHT_INT8, 1, 128)]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("m, n, k, weight_format, block_n, block_k", SHAPES)
def test_weight_only_gemm_matches_the_dequantized_product(ops, dtype, m, n, k, weight_format, block_n, block_k):
    g = torch.Generator().manual_seed(m * 7919 + n * 31 + k)
    b, scales, dequantized = quantized(n, k, weight_format, block_n, block_k, g)
    a = torch.randn(m, k, generator=g).to(dtype)
    c = torch.randn(m, n, generator=g).to(dtype)
    expected = 0.5 * a.double() @ dequantized.T + 1.0 * c.double()
    ops.weight_only_gemm(c, a, b, scales, weight_format, block_n, block_k, alpha=0.5, beta=1.0)
    assert rel_err(c, expected) < TOL[dtype]


def rounded_weights(b: torch.Tensor, scales: torch.Tensor, weight_format: int, block_n: int, block_k: int):
    """dequant(b) as the operator's GEMM path makes it for bf16 a: each weight's value times its scale in F32,
    rounded to bf16 to nearest even."""
    n, k = b.shape
    values = b.float() if weight_format == WEIGHT_INT8 else b.view(torch.float8_e4m3fn).float()
    expanded = scales.repeat_interleave(block_n, 0)[:n].repeat_interleave(block_k, 1)[:, :k]
    return (values * expanded).bfloat16()


# Many rows of a (the GEMM path): several panels of b and blocks of a's rows, partial ones, odd k; enough rows of
# a with a long k that the AMX kernel takes a's rows in several chunks (each pair of weight blocks dequantized once
# per chunk, the next pair while the current one is multiplied), with more threads than pairs of weight blocks;
# k 6144 (the MLP's down projection) with more rows than L2 holds in 3 chunks beside its panels: at most 3 chunks,
# the last one shorter.
GEMM_SHAPES = [(17, 70, 257, WEIGHT_INT8, 1, 64), (40, 100, 300, WEIGHT_F8_E4M3, 128, 128),
               (100, 33, 128, WEIGHT_F8_E4M3, 1, 128), (29, 64, 2049, WEIGHT_INT8, 1, 128),
               (700, 100, 2049, WEIGHT_F8_E4M3, 128, 128), (650, 90, 2112, WEIGHT_INT8, 1, 128),
               (300, 20, 640, WEIGHT_F8_E4M3, 128, 128), (300, 40, 6144, WEIGHT_F8_E4M3, 128, 128)]


@pytest.mark.parametrize("m, n, k, weight_format, block_n, block_k", GEMM_SHAPES)
def test_gemm_path_is_the_bf16_gemm_on_the_rounded_weights(ops, m, n, k, weight_format, block_n, block_k):
    """bf16, many rows: bit for bit the dense bf16 GEMM operator on the weights dequantized and rounded to bf16
    (whether the operator dequantizes b into its workspace or each panel as the GEMM packs it), residual included."""
    g = torch.Generator().manual_seed(m * 131 + n + k)
    b, scales, _ = quantized(n, k, weight_format, block_n, block_k, g)
    a = torch.randn(m, k, generator=g).bfloat16()
    c = torch.randn(m, n, generator=g).bfloat16()
    dense_c = c.clone()
    ops.weight_only_gemm(c, a, b, scales, weight_format, block_n, block_k, alpha=1.0, beta=1.0)
    ops.gemm(dense_c, a, rounded_weights(b, scales, weight_format, block_n, block_k).T, alpha=1.0, beta=1.0)
    assert torch.equal(c.view(torch.int16), dense_c.view(torch.int16))


@pytest.mark.parametrize("m", [1, 3, 6, 20])
@pytest.mark.parametrize("weight_format", [WEIGHT_INT8, WEIGHT_F8_E4M3])
def test_every_weight_byte_has_its_exact_value(ops, weight_format, m):
    """Each column of b holds all 256 bytes (E4M3's two NaN codes aside), and one-hot rows of a pick columns one by
    one, so every c[i, j] is one weight times a power-of-two scale: exact, whatever the path. The bf16 decode
    kernels turn bytes into values by table lookup (int8's -128 set apart), 64 bytes at a time; 20 rows take the
    GEMM path (on AMX, FP8 through tables of each group's scaled magnitudes)."""
    n = k = 256
    codes = (torch.arange(n)[:, None] + torch.arange(k)[None, :]) % 256
    b = codes.to(torch.uint8)
    if weight_format == WEIGHT_INT8:
        b = b.view(torch.int8)
        values = b.double()
    else:
        b[(b == E4M3_NAN[0]) | (b == E4M3_NAN[1])] = 0x7E
        values = b.view(torch.float8_e4m3fn).double()
    scales = 2.0 ** torch.randint(-3, 3, (n, k // 128), generator=torch.Generator().manual_seed(m)).float()
    dequantized = values * scales.double().repeat_interleave(128, 1)
    for first in range(0, k, m):
        columns = torch.arange(first, min(k, first + m))
        a = torch.nn.functional.one_hot(columns, k).bfloat16()
        c = torch.zeros(len(columns), n).bfloat16()
        ops.weight_only_gemm(c, a, b, scales, weight_format, 1, 128)
        assert torch.equal(c, dequantized[:, columns].T.bfloat16()), f"columns {columns.tolist()}"


def test_beta_zero_never_reads_c(ops):
    g = torch.Generator().manual_seed(5)
    b, scales, dequantized = quantized(20, 64, WEIGHT_INT8, 1, 32, g)
    a = torch.randn(2, 64, generator=g)
    c = torch.full((2, 20), float("nan"))
    ops.weight_only_gemm(c, a, b, scales, WEIGHT_INT8, 1, 32)
    assert rel_err(c, a.double() @ dequantized.T) < TOL[torch.float32]


@pytest.mark.parametrize("run", sorted(TIER_RUNS))
def test_weight_only_gemm_on_each_cpu_tier(ops, run):
    if ops.device != "cpu":
        pytest.skip("these are the CPU backend's paths")
    run_in_process_with(tier_environment(run), *(f"harness/parity/test_weight_only_gemm.py::{name}" for name in
                        ("test_weight_only_gemm_matches_the_dequantized_product",
                         "test_gemm_path_is_the_bf16_gemm_on_the_rounded_weights")))


# Decode shapes of the direct path: one and two rows (weight rows in streams of 4 per thread, rows left over one at
# a time), batches through the tiles (AMX) or in passes of 8; n such that threads get runs and leftovers alike.
WEIGHT_ONLY_BITS_SCRIPT = """
import hashlib, torch
from harness.parity.infiniop import Infiniop, WEIGHT_F8_E4M3, WEIGHT_INT8
from harness.parity.test_weight_only_gemm import quantized
ops, digest = Infiniop("cpu"), hashlib.sha256()
for m, n, k, weight_format, block_n in [(1, 70, 2048, WEIGHT_F8_E4M3, 128), (1, 45, 384, WEIGHT_INT8, 1),
                                        (2, 37, 2048, WEIGHT_INT8, 1), (5, 33, 6144, WEIGHT_INT8, 1),
                                        (8, 50, 2048, WEIGHT_F8_E4M3, 128), (12, 67, 256, WEIGHT_INT8, 1)]:
    g = torch.Generator().manual_seed(m * 131 + n + k)
    b, scales, _ = quantized(n, k, weight_format, block_n, 128, g)
    a, c = torch.randn(m, k, generator=g).bfloat16(), torch.randn(m, n, generator=g).bfloat16()
    ops.weight_only_gemm(c, a, b, scales, weight_format, block_n, 128, alpha=1.0, beta=1.0)
    digest.update(c.view(torch.int16).numpy().tobytes())
print(digest.hexdigest())
"""


@pytest.mark.parametrize("run", sorted(TIER_RUNS))
def test_weight_only_gemm_results_do_not_depend_on_the_thread_count(ops, run):
    """The bits of every decode result are the same with 1, 2 and 3 threads on each tier: threads split b's rows
    (into streams of rows, see patch 0032), never a sum."""
    if ops.device != "cpu":
        pytest.skip("these are the CPU backend's paths")
    assert len(digests_by_thread_count(WEIGHT_ONLY_BITS_SCRIPT, tier_environment(run))) == 1
