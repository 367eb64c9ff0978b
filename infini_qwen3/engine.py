"""Continuous batching over a Qwen3Model: a scheduler thread runs one batched native step at a time over all
running requests, admitting waiting ones between steps while KV slots and the step token budget allow.

Each step first gives every decoding request its one token, then spends what is left of the token budget on
prompt chunks (oldest request first), so a long prompt delays running streams by at most one chunk.
Results are delivered through a callback per request (the server wraps it into an asyncio queue)."""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from .logits import LogitsOptions, TokenLogprobs, resolve_on_host
from .model import Qwen3Model, SamplingParams, StepRequest
from .sequence import Sequence, plan_step, request_rng

log = logging.getLogger(__name__)

FINISH_STOP, FINISH_LENGTH = "stop", "length"


class QueueFull(RuntimeError):
    """Too many requests are waiting; the server answers 429."""


class ContextTooLong(ValueError):
    """The prompt (plus at least one new token) does not fit a KV slot."""


@dataclass
class Event:
    kind: str  # "token", "finish" or "error"
    token: int | None = None
    finish_reason: str | None = None
    message: str | None = None
    logprobs: TokenLogprobs | None = None  # with a token, when the request asked for logprobs


@dataclass
class Request:
    prompt: list[int]
    max_tokens: int
    sampling: SamplingParams
    on_event: Callable[[Event], None]
    stop_token_ids: frozenset[int] = frozenset()
    seed: int | None = None
    id: str = ""
    choice_index: int = 0  # with a seed, choices of one request (n > 1) draw different random streams
    logits: LogitsOptions = LogitsOptions()  # penalties, bias, min_p, logprobs: the host logits path


@dataclass(kw_only=True, eq=False)
class _Running(Sequence):
    """A sequence the engine is running, with the request it serves."""

    request: Request
    cancelled: bool = False
    output: list[int] = field(default_factory=list)  # generated tokens, for the penalties


class Engine:
    def __init__(self, model: Qwen3Model, *, max_batch: int | None = None, max_queue: int = 256):
        self.model = model
        self.max_batch = min(max_batch or model.kv_slots, model.kv_slots)
        self.max_queue = max_queue
        self._waiting: deque[Request] = deque()
        self._running: list[_Running] = []
        self._free_slots = list(range(self.max_batch))
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
        self._thread.join(timeout=30)

    def submit(self, request: Request) -> None:
        if len(request.prompt) == 0:
            raise ValueError("the prompt is empty")
        if len(request.prompt) + 1 > self.model.kv_slot_tokens:
            raise ContextTooLong(f"the prompt has {len(request.prompt)} tokens; the context window holds "
                                 f"{self.model.kv_slot_tokens} (including at least one generated token)")
        with self._cond:
            if len(self._waiting) >= self.max_queue:
                raise QueueFull(f"{len(self._waiting)} requests are already waiting")
            self._waiting.append(request)
            self._cond.notify_all()

    def cancel(self, request_id: str) -> None:
        """Stops a request (client gone): it frees its KV slot before the next step."""
        with self._cond:
            self._cancelled.add(request_id)
            self._waiting = deque(r for r in self._waiting if r.id != request_id)
            self._cond.notify_all()

    @property
    def stats(self) -> dict:
        with self._cond:
            kv_tokens = sum(seq.past for seq in self._running)
            capacity = self.max_batch * self.model.kv_slot_tokens
            return {"running": len(self._running), "waiting": len(self._waiting), "slots": self.max_batch,
                    "free_slots": len(self._free_slots), "kv_tokens": kv_tokens, "kv_usage": kv_tokens / capacity}

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
        for seq in self._running:
            if seq.request.id in self._cancelled:
                seq.cancelled = True
        self._release([s for s in self._running if s.cancelled])
        self._cancelled = {i for i in self._cancelled if any(r.id == i for r in self._waiting)}

    def _admit(self) -> None:
        while self._waiting and self._free_slots:
            request = self._waiting.popleft()
            slot = self._free_slots.pop(0)
            rng = request_rng(request.seed, request.choice_index)
            self._running.append(_Running(slot=slot, pending=list(request.prompt), rng=rng, request=request))

    def _release(self, finished: list[_Running]) -> None:
        for seq in finished:
            if seq in self._running:
                self._running.remove(seq)
                self._free_slots.append(seq.slot)
        self._free_slots.sort()

    def _plan(self) -> list[tuple[_Running, int]]:
        """Decode tokens first (one per generating request), then prompt chunks within the token budget."""
        decoding = [s for s in self._running if s.generated > 0]
        prefilling = [s for s in self._running if s.generated == 0]
        return plan_step(decoding + prefilling, self.model.max_step_tokens)

    def _step(self) -> None:
        with self._cond:
            plan = self._plan()
        requests = [seq.step_request(take, seq.request.sampling) for seq, take in plan]
        try:
            if any(seq.request.logits.needs_logits for seq, _ in plan):
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
                if not self._deliver(seq, Event("token", token=token, logprobs=token_lp)):
                    finished.append(seq)
                    continue
                reason = None
                if token in seq.request.stop_token_ids:
                    reason = FINISH_STOP
                elif seq.generated >= seq.request.max_tokens or seq.past + 1 >= self.model.kv_slot_tokens:
                    reason = FINISH_LENGTH  # prompt + completion fill the context window
                if reason:
                    self._deliver(seq, Event("finish", finish_reason=reason))
                    finished.append(seq)
                else:
                    seq.continue_with(token)
            self._release(finished)

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
            if take < len(seq.pending) or not seq.request.logits.needs_logits:
                continue  # a mid-prompt chunk samples nothing real
            tokens[i], logprobs[i] = resolve_on_host(logits[i], tokens[i], seq.request.logits, seq.request.sampling,
                                                     seq.request.prompt, seq.output, requests[i].random)
        return tokens, logprobs
