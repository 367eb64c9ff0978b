"""Continuous batching over a Qwen3Model: a scheduler thread runs one batched native step at a time over all
running requests, admitting waiting ones between steps while the batch limit and the KV block pool allow.

Each step first gives every decoding request its one token, then spends what is left of the token budget on
prompt chunks (oldest request first), so a long prompt delays running streams by at most one chunk. Requests
take KV blocks from one shared pool as their tokens enter the cache. When the pool runs out, the newest
running request gives its blocks back and waits to be recomputed (vLLM's preemption by recomputation): its
stream only pauses, and a seeded request still produces the tokens it would have produced unpressured.
Results are delivered through a callback per request (the server wraps it into an asyncio queue). What a token
means for its request's output, and whether it ends the request, is decided by the request's output processor
(output.py), called here as each token is sampled: one place decides how a choice ends."""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from .kv_blocks import BlockPool
from .logits import LogitsOptions, TokenLogprobs, resolve_on_host
from .model import Qwen3Model, SamplingParams, StepRequest
from .output import ChoiceOutput, OutputPiece, TokenOutput
from .sequence import Sequence, request_rng

log = logging.getLogger(__name__)


class QueueFull(RuntimeError):
    """Too many requests are waiting; the server answers 429."""


class ContextTooLong(ValueError):
    """The prompt (plus at least one new token) does not fit the context window."""


@dataclass
class Event:
    kind: str  # "token", "finish" or "error"
    token: int | None = None
    finish_reason: str | None = None
    message: str | None = None
    logprobs: TokenLogprobs | None = None  # with a token, when the request asked for logprobs
    piece: OutputPiece | None = None  # with a token: what it adds to the output, and whether it ends it


@dataclass
class Request:
    prompt: list[int]
    max_tokens: int
    sampling: SamplingParams
    on_event: Callable[[Event], None]
    output: ChoiceOutput | TokenOutput = field(default_factory=TokenOutput)  # decides the output and its end
    seed: int | None = None
    id: str = ""
    choice_index: int = 0  # with a seed, choices of one request (n > 1) draw different random streams
    logits: LogitsOptions = LogitsOptions()  # penalties, bias, min_p, logprobs: the host logits path

    @property
    def needs_logits(self) -> bool:
        """The host logits path: for penalties, bias, min_p, logprobs, or a grammar's mask (structured outputs)."""
        return self.logits.needs_logits or self.output.grammar is not None


@dataclass(kw_only=True, eq=False)
class _Running(Sequence):
    """A sequence the engine is running, with the request it serves."""

    request: Request
    cancelled: bool = False
    output: list[int] = field(default_factory=list)  # generated tokens, for the penalties


DEFAULT_MAX_BATCH = 8
SHUTDOWN_JOIN_S = 30  # the step in flight finishes first; longer than any one step of a model this serves


class Engine:
    def __init__(self, model: Qwen3Model, *, max_batch: int = DEFAULT_MAX_BATCH, max_queue: int = 256):
        self.model = model
        self.max_batch = max_batch
        self.max_queue = max_queue
        self.pool = BlockPool(model.kv_blocks, model.block_size)
        self.preemptions = 0
        self._waiting: deque[Request] = deque()
        self._preempted: deque[_Running] = deque()  # gave their blocks back; resumed before new requests
        self._running: list[_Running] = []  # in admission order: the last is the first to be preempted
        self._cancelled: set[str] = set()
        self._cond = threading.Condition()
        self._stop = False
        self._thread = threading.Thread(target=self._loop, name="infini-qwen3-engine", daemon=True)

    # -- called from any thread --------------------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def shutdown(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        self._thread.join(timeout=SHUTDOWN_JOIN_S)

    def submit(self, request: Request) -> None:
        if len(request.prompt) == 0:
            raise ValueError("the prompt is empty")
        if len(request.prompt) + 1 > self.model.max_model_len:
            raise ContextTooLong(f"the prompt has {len(request.prompt)} tokens; the context window holds "
                                 f"{self.model.max_model_len} (including at least one generated token)")
        with self._cond:
            if len(self._waiting) >= self.max_queue:
                raise QueueFull(f"{len(self._waiting)} requests are already waiting")
            self._waiting.append(request)
            self._cond.notify_all()

    def cancel(self, request_id: str) -> None:
        """Stops a request (client gone): it frees its KV blocks before the next step."""
        with self._cond:
            self._cancelled.add(request_id)
            self._waiting = deque(r for r in self._waiting if r.id != request_id)
            self._cond.notify_all()

    @property
    def stats(self) -> dict:
        with self._cond:
            return {"running": len(self._running), "waiting": len(self._waiting) + len(self._preempted),
                    "max_batch": self.max_batch, "kv_blocks_total": self.pool.num_blocks,
                    "kv_blocks_used": self.pool.used, "kv_tokens": sum(seq.past for seq in self._running),
                    "kv_usage": self.pool.used / self.pool.num_blocks, "preemptions": self.preemptions}

    # -- scheduler thread -------------------------------------------------------------------------------------
    def _loop(self) -> None:
        while True:
            with self._cond:
                self._drop_cancelled()
                self._admit()
                while not self._running and not self._stop:
                    self._cond.wait()
                    self._drop_cancelled()
                    self._admit()
                if self._stop:
                    return
            self._step()

    def _drop_cancelled(self) -> None:
        held = [*self._running, *self._preempted]
        for seq in held:
            if seq.request.id in self._cancelled:
                seq.cancelled = True
        self._release([s for s in held if s.cancelled])
        self._cancelled = {i for i in self._cancelled if any(r.id == i for r in self._waiting)}

    def _admit(self) -> None:
        """Preempted sequences first, then waiting requests, while the batch has room and the pool can hold the
        candidate's pending tokens plus one block for each running sequence to grow into."""
        while len(self._running) < self.max_batch and (self._preempted or self._waiting):
            seq = self._preempted[0] if self._preempted else None
            pending = len(seq.pending) if seq else len(self._waiting[0].prompt)
            if self.pool.blocks_for(pending + 1) + len(self._running) > self.pool.free:
                return
            if seq is None:
                request = self._waiting.popleft()
                rng = request_rng(request.seed, request.choice_index)
                seq = _Running(pending=list(request.prompt), rng=rng, request=request)
            else:
                self._preempted.popleft()
            self._running.append(seq)

    def _release(self, finished: list[_Running]) -> None:
        for seq in finished:
            if seq in self._running:
                self._running.remove(seq)
            if seq in self._preempted:
                self._preempted.remove(seq)
            self.pool.release(seq.blocks)

    def _preempt(self, seq: _Running) -> None:
        """Gives seq's blocks back; it is recomputed from its prompt and output when it is admitted again."""
        self._running.remove(seq)
        self.pool.release(seq.blocks)
        seq.pending = list(seq.request.prompt) + seq.output  # output's last token was not in the cache yet
        seq.past = 0
        self._preempted.appendleft(seq)
        self.preemptions += 1
        log.info("request %s preempted (KV blocks exhausted); it will be recomputed", seq.request.id)

    def _plan(self) -> list[tuple[_Running, int]]:
        """Decode tokens first (one per generating request), then prompt chunks within the token budget; each
        planned sequence gets the blocks its tokens need, preempting the newest sequences when there are none."""
        plan: list[tuple[_Running, int]] = []
        decoding = [s for s in self._running if len(s.pending) == 1]
        for seq in decoding + [s for s in self._running if len(s.pending) > 1]:
            budget = self.model.max_step_tokens - sum(take for _, take in plan)
            if budget == 0 or seq not in self._running:
                continue  # no budget left, or preempted for an older sequence in this loop
            take = self._fit(seq, min(len(seq.pending), budget), plan)
            if take:
                plan.append((seq, take))
        return plan

    def _fit(self, seq: _Running, take: int, plan: list[tuple[_Running, int]]) -> int:
        """How many of `take` tokens seq can put into the cache now (growing its blocks). A prompt chunk shrinks to
        the free blocks; when not even one token fits, the newest other sequence is preempted (and dropped from
        this step's plan), or seq itself when it is the newest."""
        while True:
            reach = self.pool.tokens_within_reach(seq.blocks) - seq.past
            if reach >= 1:
                take = min(take, reach)
                self.pool.grow(seq.blocks, seq.past + take)
                return take
            victim = self._running[-1]
            self._preempt(victim)
            plan[:] = [(s, t) for s, t in plan if s is not victim]
            if victim is seq:
                return 0

    def _step(self) -> None:
        with self._cond:
            plan = self._plan()
        requests = [seq.step_request(take, seq.request.sampling) for seq, take in plan]
        try:
            if any(seq.request.needs_logits for seq, _ in plan):
                tokens, logits = self.model.infer_with_logits(requests)
                tokens, logprobs = self._host_logits(plan, requests, tokens, logits)
            else:
                tokens, logprobs = self.model.infer(requests), [None] * len(plan)
        except Exception as exc:  # the step's requests fail; the engine keeps serving the others
            log.exception("engine step failed")
            with self._cond:
                for seq, _ in plan:
                    self._deliver(seq, Event("error", message=f"inference failed: {exc}"))
                self._release([seq for seq, _ in plan])
            return
        finished = []
        with self._cond:
            for (seq, take), token, token_lp in zip(plan, tokens, logprobs):
                if seq.cancelled:
                    continue
                if not seq.advance(take, token):
                    continue  # mid-prompt chunk: no token yet
                seq.output.append(token)
                piece = self._output(seq, token, token_lp)
                if piece is None or not self._deliver(seq, Event("token", token=token, logprobs=token_lp,
                                                                 piece=piece)):
                    finished.append(seq)
                elif piece.finish_reason:
                    self._deliver(seq, Event("finish", finish_reason=piece.finish_reason))
                    finished.append(seq)
                else:
                    seq.continue_with(token)
            self._release(finished)

    def _output(self, seq: _Running, token: int, token_lp: TokenLogprobs | None) -> OutputPiece | None:
        """The request's output processor decides what the token adds and whether the request ends; if it fails
        (a bug in a parser, say), that request ends with an error and the others go on."""
        at_limit = seq.generated >= seq.request.max_tokens or seq.past + 1 >= self.model.max_model_len
        try:
            return seq.request.output.push(token, token_lp, at_limit)
        except Exception as exc:
            log.exception("request %s: its output processor failed", seq.request.id)
            self._deliver(seq, Event("error", message=f"output processing failed: {exc}"))
            return None

    @staticmethod
    def _deliver(seq: _Running, event: Event) -> bool:
        """Hands an event to its request's callback. A callback that raises (its event loop is gone, say) ends
        that request only; the scheduler thread must outlive any one consumer."""
        try:
            seq.request.on_event(event)
            return True
        except Exception:
            log.exception("request %s: its event callback failed; the request is dropped", seq.request.id)
            seq.cancelled = True
            return False

    @staticmethod
    def _host_logits(plan, requests: list[StepRequest], tokens: list[int], logits):
        """For requests that finish their prompt this step: resample on the host where penalties, bias or
        min_p apply (with the same uniform draw the device had), and compute logprobs where asked."""
        tokens, logprobs = list(tokens), [None] * len(plan)
        for i, (seq, take) in enumerate(plan):
            if take < len(seq.pending) or not seq.request.needs_logits:
                continue  # a mid-prompt chunk samples nothing real
            grammar = seq.request.output.grammar
            tokens[i], logprobs[i] = resolve_on_host(logits[i], tokens[i], seq.request.logits, seq.request.sampling,
                                                     seq.request.prompt, seq.output, requests[i].random,
                                                     grammar.allowed() if grammar is not None else None)
        return tokens, logprobs
