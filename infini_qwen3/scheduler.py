"""The one scheduler: requests waiting, running and preempted over the model's block manager, and a synchronous
`step()` (admit, plan within the token budget, run the model, hand each sampled token to its request's output
processor, finish). The engine (engine.py) is a thread around it; the library `generate()` and the CLI loop
over it directly.

Each step first gives every decoding request its one token, then spends what is left of the token budget on
prompt chunks (oldest request first), so a long prompt delays running streams by at most one chunk. A request
is admitted when the pool can hold its pending tokens plus one block for each running request to grow into; its
prompt first claims the blocks of the prefix cache that hold its leading tokens (block_manager.py), and it starts
with those as its past. When the pool runs out, the newest running request gives its blocks back and waits to
be recomputed (vLLM's preemption by recomputation; its cached prefix usually survives and is claimed again): its
stream only pauses, and a seeded request still produces the tokens it would have produced unpressured. What a
token means for its request's output, and whether it ends the request, is decided by the request's output
processor (output.py), called here as each token is sampled: one place decides how a choice ends."""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from .logits import LogitsOptions, TokenLogprobs, resolve_on_host, sample, token_logprobs
from .model import Qwen3Model, SamplingParams, StepRequest
from .output import ChoiceOutput, OutputPiece, TokenOutput
from .sequence import Sequence, request_rng

log = logging.getLogger(__name__)


@dataclass
class Event:
    kind: str  # "token", "finish" or "error"
    token: int | None = None
    finish_reason: str | None = None
    message: str | None = None
    logprobs: TokenLogprobs | None = None  # with a token, when the request asked for logprobs
    piece: OutputPiece | None = None  # with a token: what it adds to the output, and whether it ends it
    cached_tokens: int = 0  # with a token: prompt tokens the request found in the prefix cache
    # with the first token (or the finish of a max_tokens=0 request) when asked: the prompt tokens' logprobs,
    # None for the first token (nothing predicts it)
    prompt_logprobs: list[TokenLogprobs | None] | None = None


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
    cache_salt: str | None = None  # only requests with the same salt share prefix-cache blocks

    @property
    def needs_logits(self) -> bool:
        """The host logits path: for penalties, bias, min_p, logprobs, or a grammar's mask (structured outputs)."""
        return self.logits.needs_logits or self.output.grammar is not None


@dataclass(kw_only=True, eq=False)
class Running(Sequence):
    """A sequence the scheduler runs, with the request it serves."""

    request: Request
    cancelled: bool = False
    registered_blocks: int = 0  # leading full blocks already offered to the prefix cache
    block_hashes: list = field(default_factory=list)  # prefix-cache hashes of its leading full blocks, as computed
    prompt_logprobs: list[TokenLogprobs | None] = field(default_factory=lambda: [None])  # when asked, as computed

    @property
    def scores_prompt(self) -> bool:
        """Its prompt's logprobs were asked for and are not all computed yet: its steps need every row's logits."""
        return self.request.logits.prompt_logprobs is not None and self.past < self.prompt_len


@dataclass(frozen=True)
class SchedulerStats:
    running: int
    waiting: int
    max_batch: int
    kv_blocks_total: int
    kv_blocks_used: int  # referenced by a request (cached blocks nobody references are free)
    kv_blocks_cached: int
    kv_tokens: int
    preemptions: int
    prefix_cache_queries: int  # prompt tokens looked up, since start
    prefix_cache_hits: int  # of which were found in the cache
    prefix_caching: bool

    @property
    def kv_usage(self) -> float:
        return self.kv_blocks_used / self.kv_blocks_total


PlanItem = tuple[Running, int]


class Scheduler:
    def __init__(self, model: Qwen3Model, *, max_batch: int, enable_prefix_caching: bool = True):
        self.model = model
        self.kv = model.block_manager
        self.max_batch = max_batch
        self.enable_prefix_caching = enable_prefix_caching
        self.preemptions = 0
        self.waiting: deque[Running] = deque()
        self.preempted: deque[Running] = deque()  # gave their blocks back; resumed before new requests
        self.running: list[Running] = []  # in admission order: the last is the first to be preempted

    # -- requests --------------------------------------------------------------------------------------------
    def add(self, request: Request) -> None:
        rng = request_rng(request.seed, request.choice_index)
        self.waiting.append(Running(tokens=list(request.prompt), prompt_len=len(request.prompt), rng=rng,
                                    request=request))

    def cancel(self, request_id: str) -> None:
        """Ends a request wherever it is; a running one frees its blocks now."""
        self.waiting = deque(s for s in self.waiting if s.request.id != request_id)
        for seq in [*self.running, *self.preempted]:
            if seq.request.id == request_id:
                seq.cancelled = True
        self._release([s for s in [*self.running, *self.preempted] if s.cancelled])

    def has_work(self) -> bool:
        return bool(self.running or self.preempted or self.waiting)

    @property
    def stats(self) -> SchedulerStats:
        kv = self.kv
        return SchedulerStats(len(self.running), len(self.waiting) + len(self.preempted), self.max_batch,
                              kv.num_blocks, kv.used, kv.cached, sum(s.past for s in self.running),
                              self.preemptions, kv.prefix.queries, kv.prefix.hits, self.enable_prefix_caching)

    # -- one step --------------------------------------------------------------------------------------------
    def step(self) -> None:
        """Admits what fits, runs one batched model step over the plan, and delivers its tokens."""
        self.admit()
        plan = self._plan()
        if not plan:
            return
        scored = [item for item in plan if item[0].scores_prompt]
        sampled = [item for item in plan if not item[0].scores_prompt]
        try:
            results = self._run(sampled) + [self._score_prompt(seq, take) for seq, take in scored]
        except Exception as exc:  # the step's requests fail; the others go on
            log.exception("model step failed")
            for seq, _ in plan:
                self._deliver(seq, Event("error", message=f"inference failed: {exc}"))
            self._release([seq for seq, _ in plan])
            return
        tokens = [token for token, _ in results]
        self._postprocess(sampled + scored, tokens, [token_lp for _, token_lp in results])

    def _run(self, plan: list[PlanItem]) -> list[tuple[int, TokenLogprobs | None]]:
        """One batched step that samples on the device (and on the host where the request needs logits)."""
        if not plan:
            return []
        requests = [seq.step_request(take, seq.request.sampling) for seq, take in plan]
        if any(seq.request.needs_logits for seq, _ in plan):
            tokens, logits = self.model.infer_with_logits(requests)
            tokens, logprobs = self._host_logits(plan, requests, tokens, logits)
        else:
            tokens, logprobs = self.model.infer(requests), [None] * len(plan)
        return list(zip(tokens, logprobs))

    def _score_prompt(self, seq: Running, take: int) -> tuple[int, TokenLogprobs | None]:
        """A prompt chunk of a request that asked for its prompt's logprobs: a step of its own that returns the
        logits of every row. Row j predicts position past + j + 1: a prompt token's logprob, or (last row of the
        prompt) the first generated token, sampled here on the host with the draw the device would have used."""
        request = seq.step_request(take, seq.request.sampling)
        logits = self.model.forward([request], all_positions=True)
        k = seq.request.logits.prompt_logprobs
        for row, position in enumerate(range(seq.past + 1, min(seq.past + take + 1, seq.prompt_len))):
            if position == len(seq.prompt_logprobs):  # not yet scored (a preempted request computes them again)
                seq.prompt_logprobs.append(token_logprobs(logits[row], seq.tokens[position], k))
        if take < seq.pending:
            return 0, None  # mid-prompt: nothing sampled
        options, sampling = seq.request.logits, seq.request.sampling
        grammar = seq.request.output.grammar
        device_token = sample(logits[-1], sampling, 0.0, request.random)
        return resolve_on_host(logits[-1], device_token, options, sampling, seq.prompt, seq.output_tokens,
                               request.random, grammar.allowed() if grammar is not None else None)

    def _postprocess(self, plan: list[PlanItem], tokens: list[int], logprobs: list) -> None:
        finished = []
        for (seq, take), token, token_lp in zip(plan, tokens, logprobs):
            if seq.cancelled:
                continue
            sampled = seq.advance(take, token)
            self._register(seq)
            if not sampled:
                continue  # mid-prompt chunk: no token yet
            prompt_logprobs = seq.prompt_logprobs if seq.generated == 1 and seq.request.logits.prompt_logprobs \
                is not None else None
            if seq.request.max_tokens == 0:  # only the prompt's logprobs were wanted (echo)
                self._deliver(seq, Event("finish", finish_reason="length", prompt_logprobs=prompt_logprobs))
                finished.append(seq)
                continue
            piece = self._output(seq, token, token_lp)
            event = Event("token", token=token, logprobs=token_lp, piece=piece, cached_tokens=seq.cached_tokens,
                          prompt_logprobs=prompt_logprobs)
            if piece is None or not self._deliver(seq, event):
                finished.append(seq)
            elif piece.finish_reason:
                self._deliver(seq, Event("finish", finish_reason=piece.finish_reason))
                finished.append(seq)
        self._release(finished)

    # -- admission, planning, preemption ---------------------------------------------------------------------
    def admit(self) -> None:
        """Preempted sequences first, then waiting ones, while the batch has room and the pool can hold the
        candidate's pending tokens (after its cached prefix) plus one block for each running sequence."""
        while len(self.running) < self.max_batch and (self.preempted or self.waiting):
            source = self.preempted or self.waiting
            seq = source[0]
            # a request scoring its prompt needs the logits of every prompt row, so it computes them all
            reads_cache = self.enable_prefix_caching and seq.request.logits.prompt_logprobs is None
            hit = self.kv.match(seq.tokens, seq.request.cache_salt, seq.block_hashes) if reads_cache else []
            need = self.kv.blocks_for(len(seq.tokens) + 1) - len(hit)
            if need + len(self.running) > self.kv.free:
                self.kv.release(hit)
                return
            source.popleft()
            seq.blocks, seq.past = hit, len(hit) * self.kv.block_size
            seq.registered_blocks = len(hit)
            if not seq.admitted:
                seq.admitted, seq.cached_tokens = True, seq.past
                if reads_cache:
                    self.kv.count_query(seq.prompt_len, seq.past)
            self.running.append(seq)

    def _plan(self) -> list[PlanItem]:
        """Decode tokens first (one per generating sequence), then prompt chunks within the token budget; each
        planned sequence gets the blocks its tokens need, preempting the newest sequences when there are none."""
        plan: list[PlanItem] = []
        decoding = [s for s in self.running if s.pending == 1]
        for seq in decoding + [s for s in self.running if s.pending > 1]:
            budget = self.model.max_step_tokens - sum(take for _, take in plan)
            if budget == 0 or seq not in self.running:
                continue  # no budget left, or preempted for an older sequence in this loop
            take = self._fit(seq, min(seq.pending, budget), plan)
            if take:
                plan.append((seq, take))
        return plan

    def _fit(self, seq: Running, take: int, plan: list[PlanItem]) -> int:
        """How many of `take` tokens seq can put into the cache now (growing its blocks). A prompt chunk shrinks to
        the free blocks; when not even one token fits, the newest other sequence is preempted (and dropped from
        this step's plan), or seq itself when it is the newest."""
        while True:
            reach = self.kv.tokens_within_reach(seq.blocks) - seq.past
            if reach >= 1:
                take = min(take, reach)
                self.kv.grow(seq.blocks, seq.past + take)
                return take
            victim = self.running[-1]
            self._preempt(victim)
            plan[:] = [(s, t) for s, t in plan if s is not victim]
            if victim is seq:
                return 0

    def _preempt(self, seq: Running) -> None:
        """Gives seq's blocks back; it is recomputed from its token history (after any cached prefix) when it is
        admitted again."""
        self.running.remove(seq)
        self.kv.release(seq.blocks)
        seq.forget_cache()
        self.preempted.appendleft(seq)
        self.preemptions += 1
        log.info("request %s preempted (KV blocks exhausted); it will be recomputed", seq.request.id)

    def _release(self, finished: list[Running]) -> None:
        for seq in finished:
            if seq in self.running:
                self.running.remove(seq)
            if seq in self.preempted:
                self.preempted.remove(seq)
            self.kv.release(seq.blocks)

    def _register(self, seq: Running) -> None:
        """Offers the blocks that this step filled to the prefix cache."""
        full = seq.past // self.kv.block_size
        if self.enable_prefix_caching and full > seq.registered_blocks:
            self.kv.register(seq.blocks, seq.tokens, seq.request.cache_salt, seq.past)
            seq.registered_blocks = full

    # -- tokens to outputs -----------------------------------------------------------------------------------
    def _output(self, seq: Running, token: int, token_lp: TokenLogprobs | None) -> OutputPiece | None:
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
    def _deliver(seq: Running, event: Event) -> bool:
        """Hands an event to its request's callback. A callback that raises (its event loop is gone, say) ends
        that request only; the scheduler must outlive any one consumer."""
        try:
            seq.request.on_event(event)
            return True
        except Exception:
            log.exception("request %s: its event callback failed; the request is dropped", seq.request.id)
            seq.cancelled = True
            return False

    @staticmethod
    def _host_logits(plan: list[PlanItem], requests: list[StepRequest], tokens: list[int], logits):
        """For requests that finish their prompt this step: resample on the host where penalties, bias or
        min_p apply (with the same uniform draw the device had), and compute logprobs where asked."""
        tokens, logprobs = list(tokens), [None] * len(plan)
        for i, (seq, take) in enumerate(plan):
            if take < seq.pending or not seq.request.needs_logits:
                continue  # a mid-prompt chunk samples nothing real
            grammar = seq.request.output.grammar
            tokens[i], logprobs[i] = resolve_on_host(logits[i], tokens[i], seq.request.logits, seq.request.sampling,
                                                     seq.prompt, seq.output_tokens, requests[i].random,
                                                     grammar.allowed() if grammar is not None else None)
        return tokens, logprobs
