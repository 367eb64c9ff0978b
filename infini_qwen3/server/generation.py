"""One API request's choices running on the engine, as an asyncio stream of text deltas.

The engine calls back from its scheduler thread; events are handed to the event loop with
call_soon_threadsafe, so the loop never blocks on the engine. What each token means for its choice (text,
reasoning, tool calls, logprobs) and when the choice ends are decided by the choice's output processor next to
the scheduler (infini_qwen3/output.py); here they only travel to the HTTP layer. Leaving the stream early
(client gone) cancels the engine requests, which frees their KV blocks."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from ..engine import Engine, Event, QueueFull, Request
from ..logits import LogitsOptions
from ..model import SamplingParams
from ..output import ChoiceOutput, OutputPiece
from .errors import server_busy


class GenerationFailed(RuntimeError):
    """The engine reported an error for one of this request's choices, or the server stopped it (status 503)."""

    def __init__(self, message: str, status: int = 500):
        super().__init__(message)
        self.status = status


SHUTDOWN = "shutdown"  # an event kind of the server's own: the generation was stopped by a shutdown


@dataclass
class ChoiceDelta:
    index: int
    piece: OutputPiece  # its finish_reason is set on the choice's last delta
    prompt_logprobs: list | None = None  # on the choice's first delta, when asked: None, then one per prompt token


@dataclass
class ChoiceSpec:
    """What one choice generates from: its prompt, budget, the seed stream index, and its output processor."""

    prompt: list[int]
    max_tokens: int
    output: ChoiceOutput
    seed_index: int = 0


@dataclass
class Usage:
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int  # prompt tokens read from the prefix cache
    reasoning_tokens: int  # completion tokens of reasoning blocks


@dataclass
class _Choice:
    spec: ChoiceSpec
    engine_id: str
    tokens: int = 0
    cached_tokens: int = 0  # prompt tokens the engine found in the prefix cache
    reasoning_tokens: int = 0  # tokens up to the one that closed its reasoning block
    reasoned: bool = False  # some of its output was reasoning text

    @property
    def finish_reason(self) -> str | None:
        return self.spec.output.finish_reason


@dataclass
class Timing:
    started: float = field(default_factory=time.monotonic)
    first_token: float | None = None
    last_token: float | None = None

    @property
    def ttft(self) -> float | None:
        return None if self.first_token is None else self.first_token - self.started


class Generation:
    def __init__(self, engine: Engine, request_id: str, specs: list[ChoiceSpec], sampling: SamplingParams, *,
                 prompt_tokens: int, seed: int | None, logits: LogitsOptions = LogitsOptions(),
                 cache_salt: str | None = None, think_end: int | None = None):
        self.engine, self.request_id, self.logits, self.cache_salt = engine, request_id, logits, cache_salt
        self.think_end = think_end  # the token id that closes a reasoning block (</think>)
        self.prompt_tokens = prompt_tokens  # each prompt counts once, however many choices (n) it has
        self.sampling, self.seed = sampling, seed
        self.choices = [_Choice(spec, f"{request_id}-{i}") for i, spec in enumerate(specs)]
        self.timing = Timing()
        self._queue: asyncio.Queue[tuple[int, Event]] = asyncio.Queue()
        self._open: set[int] = set()


    @property
    def completion_tokens(self) -> int:
        return sum(c.tokens for c in self.choices)

    def usage(self) -> Usage:
        reasoning = sum(c.reasoning_tokens or (c.tokens if c.reasoned else 0) for c in self.choices)
        return Usage(self.prompt_tokens, self.completion_tokens, self.cached_tokens, reasoning)

    @property
    def cached_tokens(self) -> int:
        """Prompt tokens read from the prefix cache, counted once per prompt (its first choice) as prompt_tokens."""
        return sum(c.cached_tokens for c in self.choices if c.spec.seed_index == 0)

    def start(self) -> None:
        """Submits every choice; all or none (a full queue cancels the ones already in)."""
        loop = asyncio.get_running_loop()
        for index, choice in enumerate(self.choices):
            def deliver(event: Event, index=index) -> None:
                loop.call_soon_threadsafe(self._queue.put_nowait, (index, event))

            request = Request(prompt=choice.spec.prompt, max_tokens=choice.spec.max_tokens, sampling=self.sampling,
                              on_event=deliver, output=choice.spec.output, seed=self.seed,
                              id=choice.engine_id, choice_index=choice.spec.seed_index, logits=self.logits,
                              cache_salt=self.cache_salt)
            try:
                self.engine.submit(request)
            except QueueFull as exc:
                self.cancel()
                raise server_busy(str(exc)) from None
            self._open.add(index)

    def abort(self, message: str) -> None:
        """Ends every open choice with an error (the server is shutting down); call on the event loop."""
        for index in self._open:
            self._queue.put_nowait((index, Event(SHUTDOWN, message=message)))

    def cancel(self) -> None:
        for index in list(self._open):
            self.engine.cancel(self.choices[index].engine_id)
        self._open.clear()

    async def deltas(self) -> AsyncIterator[ChoiceDelta]:
        """The pieces of all choices, interleaved as the engine produces them; each choice's last piece carries
        its finish reason. Cancels what is still running if the consumer stops early."""
        try:
            while self._open:
                index, event = await self._queue.get()
                if index not in self._open:
                    continue  # the engine's finish event after the piece that ended the choice
                delta = self._on_event(index, event)
                if delta is not None:
                    yield delta
        finally:
            self.cancel()

    def _on_event(self, index: int, event: Event) -> ChoiceDelta | None:
        if event.kind == "error":
            self.cancel()
            raise GenerationFailed(event.message or "inference failed")
        if event.kind == SHUTDOWN:
            self.cancel()
            raise GenerationFailed(event.message or "the server is shutting down", status=503)
        if event.kind == "finish" and event.prompt_logprobs is not None:  # max_tokens 0: the prompt was the answer
            self._open.discard(index)
            return ChoiceDelta(index, OutputPiece(finish_reason=event.finish_reason), event.prompt_logprobs)
        if event.kind != "token":
            return None  # "finish": the token's piece already said so
        now = time.monotonic()
        self.timing.first_token = self.timing.first_token or now
        self.timing.last_token = now
        choice = self.choices[index]
        choice.tokens += 1
        choice.cached_tokens = event.cached_tokens
        if event.token == self.think_end and not choice.reasoning_tokens:
            choice.reasoning_tokens = choice.tokens
        choice.reasoned = choice.reasoned or bool(event.piece.reasoning)
        piece = event.piece
        if piece.finish_reason:
            self._open.discard(index)
        elif not piece.visible and not piece.logprobs and event.prompt_logprobs is None:
            return None
        return ChoiceDelta(index, piece, event.prompt_logprobs)
