"""The continuous-batching engine on a tiny checkpoint: same tokens as running alone, queueing, cancellation,
limits, and no starvation of running streams by a long prompt."""

from __future__ import annotations

import threading
import time

import pytest

from harness.fixtures.checkpoints import checkpoint
from harness.fixtures.device import TEST_DEVICE
from infini_qwen3.engine import ContextTooLong, Engine, Event, QueueFull, Request
from infini_qwen3.generation import generate
from infini_qwen3.model import Qwen3Model, SamplingParams
from infini_qwen3.output import TokenOutput

GREEDY = SamplingParams(temperature=0.0)


@pytest.fixture(scope="module")
def checkpoint_dir(tmp_path_factory):
    return checkpoint(tmp_path_factory.mktemp("engine"), num_hidden_layers=1, vocab_size=512, seed=61)


class Collector:
    def __init__(self):
        self.tokens: list[int] = []
        self.events: list[Event] = []
        self.done = threading.Event()
        self.times: list[float] = []

    def __call__(self, event: Event) -> None:
        self.events.append(event)
        if event.kind == "token":
            self.tokens.append(event.token)
            self.times.append(time.monotonic())
        else:
            self.done.set()

    @property
    def finish(self) -> str | None:
        return next((e.finish_reason or e.kind for e in self.events if e.kind != "token"), None)


def alone(path, prompt, max_tokens):
    with Qwen3Model(path, device=TEST_DEVICE, dtype="f32", max_model_len=64, kv_cache_tokens=64) as model:
        return [t for _, t in generate(model, [prompt], max_new_tokens=max_tokens, eos_token_ids=())]


def prompts(n):
    return [[(7 * i + j) % 500 + 1 for j in range(3 + 2 * i)] for i in range(n)]


def run_engine(path, max_batch=2, max_step_tokens=64, max_queue=16, kv_cache_tokens=None):
    model = Qwen3Model(path, device=TEST_DEVICE, dtype="f32", max_model_len=64,
                       kv_cache_tokens=kv_cache_tokens or max_batch * 64, max_step_tokens=max_step_tokens)
    engine = Engine(model, max_batch=max_batch, max_queue=max_queue)
    engine.start()
    return model, engine


def test_more_requests_than_slots_all_finish_with_the_tokens_they_get_alone(checkpoint_dir):
    model, engine = run_engine(checkpoint_dir, max_batch=2)
    try:
        collectors = []
        for i, prompt in enumerate(prompts(5)):
            c = Collector()
            engine.submit(Request(prompt, 8, GREEDY, c, id=f"r{i}"))
            collectors.append(c)
        for c in collectors:
            assert c.done.wait(60)
        stats = engine.stats
        assert (stats.running, stats.waiting, stats.max_batch, stats.kv_blocks_total, stats.kv_blocks_used,
                stats.kv_tokens, stats.kv_usage, stats.preemptions) == (0, 0, 2, 8, 0, 0, 0.0, 0)
    finally:
        engine.shutdown()
        model.close()
    for prompt, c in zip(prompts(5), collectors):
        assert c.finish == "length"
        assert c.tokens == alone(checkpoint_dir, prompt, 8)


def test_stop_token_finishes_with_stop(checkpoint_dir):
    expected = alone(checkpoint_dir, prompts(1)[0], 6)
    model, engine = run_engine(checkpoint_dir)
    try:
        c = Collector()
        engine.submit(Request(prompts(1)[0], 6, GREEDY, c, output=TokenOutput(frozenset({expected[2]})), id="s"))
        assert c.done.wait(60)
    finally:
        engine.shutdown()
        model.close()
    assert c.tokens == expected[: expected.index(expected[2]) + 1] and c.finish == "stop"


def test_cancel_frees_the_blocks(checkpoint_dir):
    model, engine = run_engine(checkpoint_dir, max_batch=1)
    try:
        c = Collector()
        engine.submit(Request(prompts(1)[0], 60, GREEDY, c, id="long"))
        while not c.tokens:
            time.sleep(0.01)
        engine.cancel("long")
        deadline = time.monotonic() + 10
        while engine.stats.kv_blocks_used != 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert engine.stats.kv_blocks_used == 0 and engine.stats.running == 0
        after = Collector()
        engine.submit(Request(prompts(2)[1], 4, GREEDY, after, id="next"))
        assert after.done.wait(60) and len(after.tokens) == 4
    finally:
        engine.shutdown()
        model.close()


def test_queue_limit_and_context_limit(checkpoint_dir):
    model = Qwen3Model(checkpoint_dir, device=TEST_DEVICE, dtype="f32", max_model_len=64, kv_cache_tokens=64)
    engine = Engine(model, max_queue=2)  # not started: nothing leaves the queue
    try:
        engine.submit(Request([1], 4, GREEDY, Collector(), id="a"))
        engine.submit(Request([1], 4, GREEDY, Collector(), id="b"))
        with pytest.raises(QueueFull):
            engine.submit(Request([1], 4, GREEDY, Collector(), id="c"))
        with pytest.raises(ContextTooLong):
            engine.submit(Request(list(range(1, 65)), 4, GREEDY, Collector(), id="d"))
    finally:
        model.close()


def test_long_prompt_does_not_stall_a_running_stream(checkpoint_dir):
    """With a 4-token step budget, a 40-token prompt prefills over 10 steps; the running stream still gets a
    token in every one of them."""
    model, engine = run_engine(checkpoint_dir, max_batch=2, max_step_tokens=4)
    try:
        running, late = Collector(), Collector()
        engine.submit(Request([3, 4], 40, GREEDY, running, id="running"))
        while len(running.tokens) < 2:
            time.sleep(0.005)
        engine.submit(Request(list(range(10, 50)), 2, GREEDY, late, id="late"))
        assert late.done.wait(60) and running.done.wait(60)
    finally:
        engine.shutdown()
        model.close()
    first_late = late.times[0]
    tokens_before = sum(1 for t in running.times if t < first_late)
    assert tokens_before >= 2 + 9


def test_a_failing_callback_drops_only_its_request(checkpoint_dir):
    """A consumer whose callback raises (its event loop closed, say) must not take the scheduler thread down."""
    model, engine = run_engine(checkpoint_dir, max_batch=2)

    def broken(event):
        raise RuntimeError("Event loop is closed")

    try:
        engine.submit(Request(prompts(1)[0], 8, GREEDY, broken, id="broken"))
        healthy = Collector()
        engine.submit(Request(prompts(2)[1], 6, GREEDY, healthy, id="healthy"))
        assert healthy.done.wait(60) and len(healthy.tokens) == 6 and healthy.finish == "length"
        deadline = time.monotonic() + 10
        while engine.stats.kv_blocks_used != 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert engine.stats.kv_blocks_used == 0
    finally:
        engine.shutdown()
        model.close()


def run_to_completion(engine, requests):
    collectors = [Collector() for _ in requests]
    for request, c in zip(requests, collectors):
        request.on_event = c
        engine.submit(request)
    for c in collectors:
        assert c.done.wait(120)
    return collectors


def seeded_requests():
    sampling = SamplingParams(temperature=1.0, top_k=50, top_p=0.95)
    return [Request(prompt, 40, sampling, None, seed=11, id=f"p{i}") for i, prompt in enumerate(prompts(4))]


def test_preemption_when_the_pool_runs_out_gives_the_unpressured_outputs(checkpoint_dir):
    """Four requests of up to 49 tokens share a pool of 4 blocks of 16 tokens (one request alone fits): the newest
    give their blocks back and are recomputed; every stream completes with the tokens of an unpressured run."""
    model, engine = run_engine(checkpoint_dir, max_batch=4)  # 16 blocks: nobody waits for blocks
    try:
        roomy = run_to_completion(engine, seeded_requests())
        assert engine.stats.preemptions == 0
    finally:
        engine.shutdown()
        model.close()
    model, engine = run_engine(checkpoint_dir, max_batch=4, kv_cache_tokens=64)
    try:
        pressed = run_to_completion(engine, seeded_requests())
        stats = engine.stats
    finally:
        engine.shutdown()
        model.close()
    assert stats.preemptions > 0 and stats.kv_blocks_used == 0 and stats.kv_blocks_total == 4
    for a, b in zip(roomy, pressed):
        assert b.finish == "length" and len(b.tokens) == 40
        assert b.tokens == a.tokens
