"""Batched steps (prefill and decode of several requests mixed in one call) and end-to-end greedy generation
against transformers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from harness.fixtures.blocks import slot_blocks
from harness.fixtures.device import TEST_DEVICE
from infini_qwen3.generation import generate
from infini_qwen3.model import Qwen3Model, SamplingParams, StepRequest

from .reference import greedy_continuations, load_reference, rel_l2


@pytest.fixture(scope="module")
def checkpoint_dir(make_checkpoint):
    return make_checkpoint(num_hidden_layers=2, num_attention_heads=8, num_key_value_heads=2, head_dim=32,
                           hidden_size=96, vocab_size=4096, seed=21)


def prompts(lengths, vocab=4096, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, vocab, (n,), generator=g).tolist() for n in lengths]


def test_mixed_prefill_and_decode_step_equals_each_request_alone(checkpoint_dir):
    """Request A decodes with 6 tokens of past, B prefills 5 tokens, C continues a 3-token prefix with 4 more:
    one step for all three gives each the logits it gets when run alone."""
    a, b, c = prompts([7, 5, 7], seed=1)
    sizes = dict(max_model_len=32, kv_cache_tokens=128)
    with Qwen3Model(checkpoint_dir, device=TEST_DEVICE, dtype="f32", **sizes) as batched, \
            Qwen3Model(checkpoint_dir, device=TEST_DEVICE, dtype="f32", **sizes) as alone:
        for model in (batched, alone):
            # fill the past of A and C
            model.forward([StepRequest(a[:6], 0, slot_blocks(model, 2)), StepRequest(c[:3], 0, slot_blocks(model, 0))])
        blocks = [slot_blocks(batched, i) for i in range(3)]
        mixed = batched.forward([StepRequest(a[6:], 6, blocks[2]), StepRequest(b, 0, blocks[1]),
                                 StepRequest(c[3:], 3, blocks[0])])
        singles = [alone.forward([StepRequest(a[6:], 6, blocks[2])])[0],
                   alone.forward([StepRequest(b, 0, blocks[1])])[0],
                   alone.forward([StepRequest(c[3:], 3, blocks[0])])[0]]
    for got, want in zip(mixed, singles):
        assert rel_l2(got, want) < 1e-6
    reference = load_reference(checkpoint_dir, torch.float32)
    with torch.no_grad():
        for got, tokens in zip(mixed, [a, b, c]):
            expected = reference(torch.tensor([tokens])).logits[0, -1].numpy()
            assert rel_l2(got, expected) < 1e-4


def test_a_decode_step_padded_to_its_batch_bucket_equals_each_request_alone(checkpoint_dir):
    """Three decoding requests run as a bucket of four rows (one padding row with no KV): each gets the logits
    and the greedy token it gets alone, and the padding row writes none of their KV blocks."""
    seqs = prompts([5, 8, 3], seed=3)
    sizes = dict(max_model_len=32, kv_cache_tokens=128)
    with Qwen3Model(checkpoint_dir, device=TEST_DEVICE, dtype="f32", **sizes) as batched, \
            Qwen3Model(checkpoint_dir, device=TEST_DEVICE, dtype="f32", **sizes) as alone:
        blocks = [slot_blocks(batched, i) for i in range(3)]
        for model in (batched, alone):
            model.forward([StepRequest(s[:-1], 0, b) for s, b in zip(seqs, blocks)])  # the pasts
        step = [StepRequest(s[-1:], len(s) - 1, b, SamplingParams(temperature=0.0)) for s, b in zip(seqs, blocks)]
        tokens, logits = batched.infer_with_logits(step)
        singles = [alone.infer_with_logits([request]) for request in step]
        again = batched.forward([StepRequest([t], len(s), b) for t, s, b in zip(tokens, seqs, blocks)])
        again_alone = [alone.forward([StepRequest([t], len(s), b)])[0] for t, s, b in zip(tokens, seqs, blocks)]
    for row, (single_tokens, single_logits) in enumerate(singles):
        assert tokens[row] == single_tokens[0]
        assert rel_l2(logits[row], single_logits[0]) < 1e-6
        assert rel_l2(again[row], again_alone[row]) < 1e-6  # the KV written by the padded step is each one's own


# (12, 5): the past and the chunk in one KV block; (40, 21): a past of two blocks, the chunk ending in a third;
# (300, 0) and (300, 90): longer prompts, whose scores span many AMX tile blocks and KV blocks (with a past: 210
# rows against 300 keys gathered from 19 blocks).
# "gemm": the chunk attends with GEMMs over its context gathered block by block; "paged": with the paged prefill
# operator (what a context past INFINI_QWEN3_ATTENTION_GEMM_BYTES of scores takes).
@pytest.mark.parametrize("length, past", [(12, 5), (40, 21), (300, 0), (300, 90)])
@pytest.mark.parametrize("path", ["gemm", "paged"])
def test_all_positions_logits_match_transformers_with_past(checkpoint_dir, length, past, path, monkeypatch):
    if path == "paged":
        monkeypatch.setenv("INFINI_QWEN3_ATTENTION_GEMM_BYTES", "0")
    tokens = prompts([length], seed=2)[0]
    context = -(-length // 16) * 16
    with Qwen3Model(checkpoint_dir, device=TEST_DEVICE, dtype="f32", max_model_len=context,
                    kv_cache_tokens=context) as model:
        steps = [(0, past), (past, length)] if past else [(0, length)]
        ours = np.concatenate([model.forward([StepRequest(tokens[a:b], a, slot_blocks(model, 0))], all_positions=True)
                               for a, b in steps])
    with torch.no_grad():
        expected = load_reference(checkpoint_dir, torch.float32)(torch.tensor([tokens])).logits[0].numpy()
    assert ours.shape == expected.shape
    assert rel_l2(ours, expected) < 1e-4


def test_greedy_generation_of_four_prompts_equals_transformers_generate(checkpoint_dir):
    batch = prompts([3, 9, 5, 14], seed=3)
    with Qwen3Model(checkpoint_dir, device=TEST_DEVICE, dtype="f32", max_model_len=128, kv_cache_tokens=512) as model:
        outputs = [[] for _ in batch]
        for index, token in generate(model, batch, max_new_tokens=64, eos_token_ids=()):
            outputs[index].append(token)
    assert outputs == greedy_continuations(checkpoint_dir, batch, 64)


def test_generation_in_small_prefill_chunks_equals_one_step(checkpoint_dir):
    """A step budget smaller than the prompts forces chunked prefill; the tokens must not change."""
    batch = prompts([11, 6], seed=4)
    results = []
    for budget in (64, 4):
        with Qwen3Model(checkpoint_dir, device=TEST_DEVICE, dtype="f32", max_model_len=64, kv_cache_tokens=128,
                        max_step_tokens=budget) as m:
            out = [[] for _ in batch]
            for index, token in generate(m, batch, max_new_tokens=10, eos_token_ids=()):
                out[index].append(token)
            results.append(out)
    assert results[0] == results[1]


def sampled_runs(checkpoint_dir, modes):
    """For each cuda_graphs mode: the tokens of one seeded sampled generation and the model's graph counts."""
    seqs = prompts([5, 7, 3], seed=4)
    sampling = SamplingParams(temperature=1.0, top_k=20, top_p=0.9)
    runs = []
    for graphs in modes:
        with Qwen3Model(checkpoint_dir, device=TEST_DEVICE, dtype="bf16", max_model_len=64, kv_cache_tokens=256,
                        cuda_graphs=graphs) as model:
            tokens = list(generate(model, seqs, max_new_tokens=24, sampling=sampling, seed=5, eos_token_ids=()))
            runs.append((tokens, model.graph_stats()))
    return runs


@pytest.mark.skipif(TEST_DEVICE == "cpu", reason="graph capture needs a GPU backend; the CPU runs every step eagerly")
def test_cuda_graph_replay_gives_the_eager_tokens(checkpoint_dir):
    """Decode steps captured once per batch bucket and replayed draw the same tokens as eager steps (sampled with
    a seed, so the batched sampler inside the graph is checked too), and graphs were in fact replayed."""
    (eager, eager_stats), (graphed, stats) = sampled_runs(checkpoint_dir, (False, True))
    assert eager_stats["captures"] == eager_stats["replays"] == 0
    assert stats["failed_captures"] == 0, stats
    assert stats["captures"] >= 1 and stats["replays"] >= 10, stats
    assert graphed == eager


def test_a_failed_capture_falls_back_to_eager_steps(checkpoint_dir):
    """cuda_graphs "always" attempts captures where the backend cannot (the CPU answers NOT_SUPPORTED, as a GPU
    capture that fails would): each bucket then runs eagerly, the tokens are the eager ones, the counts say so."""
    if TEST_DEVICE != "cpu":
        pytest.skip("the backend captures: test_cuda_graph_replay_gives_the_eager_tokens covers it")
    (eager, _), (attempted, stats) = sampled_runs(checkpoint_dir, (False, "always"))
    assert attempted == eager
    assert stats["failed_captures"] >= 1 and stats["captures"] == stats["replays"] == stats["live_graphs"] == 0
    assert stats["max_live_graphs"] > 0


def test_model_created_stepped_and_destroyed_on_three_threads(checkpoint_dir):
    """The server loads the model on one thread, steps it on another and closes it on a third: each call selects
    the rank's device itself (on a GPU, a free from a thread that never selected it used the CPU's free)."""
    import threading

    seqs = prompts([6, 4], seed=9)
    expected = greedy_continuations(checkpoint_dir, seqs, 8)
    holder: dict = {}

    def on_thread(work):
        errors = []

        def body():
            try:
                work()
            except BaseException as exc:  # re-raised on the test's own thread
                errors.append(exc)
        thread = threading.Thread(target=body)
        thread.start()
        thread.join()
        if errors:
            raise errors[0]

    def create():
        holder["model"] = Qwen3Model(checkpoint_dir, device=TEST_DEVICE, dtype="f32", max_model_len=32,
                                     kv_cache_tokens=128)

    def step():
        outputs = [[] for _ in seqs]
        for index, token in generate(holder["model"], seqs, max_new_tokens=8, eos_token_ids=()):
            outputs[index].append(token)
        holder["outputs"] = outputs

    on_thread(create)
    on_thread(step)
    on_thread(lambda: holder.pop("model").close())
    assert holder["outputs"] == expected
