"""InfiniCCL's CPU backend (patch 0017): the ranks of a communicator are threads of one process. Each test runs
one thread per rank (ctypes releases the GIL during the call, so the ranks meet in the collective) and checks
infinicclAllReduce against torch: every op, F32/F16/BF16, in place and not, odd sizes, many rounds in a row."""

from __future__ import annotations

import ctypes
import threading

import pytest
import torch

from harness.fixtures.device import TEST_DEVICE
from infini_qwen3 import _native

from .infiniop import TORCH_DTYPES

pytestmark = pytest.mark.skipif(TEST_DEVICE != "cpu", reason="several ranks on one host: the CPU backend")

SUM, PROD, MAX, MIN, AVG = range(5)
BAD_PARAM, BAD_TENSOR_DTYPE = 3, 10


@pytest.fixture(scope="module")
def lib():
    return _native.load()


def communicators(lib, ranks: int) -> list[ctypes.c_void_p]:
    comms = (ctypes.c_void_p * ranks)()
    ids = (ctypes.c_int * ranks)(*([0] * ranks))
    assert lib.infinicclCommInitAll(_native.DEVICES["cpu"], comms, ranks, ids) == 0
    return [ctypes.c_void_p(c) for c in comms]


def on_ranks(comms, call) -> list[int]:
    """call(rank, comm) -> status on one thread per rank; the statuses by rank."""
    statuses = [None] * len(comms)

    def run(rank):
        statuses[rank] = call(rank, comms[rank])

    threads = [threading.Thread(target=run, args=(r,)) for r in range(len(comms))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads), "a rank never returned from the collective"
    return statuses


def all_reduce(lib, comm, send: torch.Tensor, recv: torch.Tensor, op: int, count: int | None = None) -> int:
    return lib.infinicclAllReduce(ctypes.c_void_p(send.data_ptr()), ctypes.c_void_p(recv.data_ptr()),
                                  ctypes.c_size_t(send.numel() if count is None else count),
                                  TORCH_DTYPES[send.dtype], op, comm, None)


def expected_reduce(inputs: list[torch.Tensor], op: int) -> torch.Tensor:
    """In F32 and in rank order, rounded once to the dtype: what every rank must get, bit for bit."""
    acc = inputs[0].float()
    for x in inputs[1:]:
        x = x.float()
        acc = {SUM: acc + x, AVG: acc + x, PROD: acc * x, MAX: torch.maximum(acc, x), MIN: torch.minimum(acc, x)}[op]
    if op == AVG:
        acc = acc / len(inputs)
    return acc.to(inputs[0].dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("op", [SUM, PROD, MAX, MIN, AVG])
@pytest.mark.parametrize("ranks, count", [(1, 5), (2, 1), (3, 1000), (4, 7)])
@pytest.mark.parametrize("in_place", [True, False])
def test_all_reduce_gives_every_rank_the_rank_order_f32_result(lib, dtype, op, ranks, count, in_place):
    g = torch.Generator().manual_seed(ranks * 1000 + count + op)
    inputs = [torch.randn(count, generator=g).to(dtype) for _ in range(ranks)]
    sends = [x.clone() for x in inputs]
    recvs = sends if in_place else [torch.full_like(x, float("nan")) for x in inputs]
    comms = communicators(lib, ranks)
    try:
        statuses = on_ranks(comms, lambda r, c: all_reduce(lib, c, sends[r], recvs[r], op))
    finally:
        for c in comms:
            lib.infinicclCommDestroy(c)
    assert statuses == [0] * ranks
    want = expected_reduce(inputs, op)
    for r in range(ranks):
        assert torch.equal(recvs[r], want), f"rank {r}"
        if not in_place:
            assert torch.equal(sends[r], inputs[r]), "the send buffer must not change"


def test_a_communicator_serves_many_rounds_in_a_row(lib):
    ranks, rounds = 4, 200
    comms = communicators(lib, ranks)
    buffers = [torch.zeros(64) for _ in range(ranks)]

    def rank_loop(rank, comm):
        for step in range(rounds):
            buffers[rank].fill_(rank + step)
            status = all_reduce(lib, comm, buffers[rank], buffers[rank], SUM)
            if status != 0 or not torch.all(buffers[rank] == sum(r + step for r in range(ranks))):
                return status or -1
        return 0

    try:
        assert on_ranks(comms, rank_loop) == [0] * ranks
    finally:
        for c in comms:
            lib.infinicclCommDestroy(c)


def test_counts_that_differ_between_ranks_fail_on_every_rank(lib):
    comms = communicators(lib, 2)
    buffers = [torch.ones(8), torch.ones(8)]
    try:
        statuses = on_ranks(comms, lambda r, c: all_reduce(lib, c, buffers[r], buffers[r], SUM, count=8 - r))
        assert statuses == [BAD_PARAM, BAD_PARAM]
        assert all(torch.all(b == 1) for b in buffers)
        # and the communicator still works
        assert on_ranks(comms, lambda r, c: all_reduce(lib, c, buffers[r], buffers[r], SUM)) == [0, 0]
        assert all(torch.all(b == 2) for b in buffers)
    finally:
        for c in comms:
            lib.infinicclCommDestroy(c)


def test_an_integer_dtype_is_refused_before_any_rank_waits(lib):
    comms = communicators(lib, 2)
    try:
        x = torch.ones(4, dtype=torch.int32)
        assert all_reduce(lib, comms[0], x, x, SUM) == BAD_TENSOR_DTYPE  # one rank alone: returns, does not block
    finally:
        for c in comms:
            lib.infinicclCommDestroy(c)
