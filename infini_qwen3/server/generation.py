"""One API request's choices running on the engine, as an asyncio stream of text deltas.

The engine calls back from its scheduler thread; events are handed to the event loop with
call_soon_threadsafe, so the loop never blocks on the engine. Each choice has its own incremental
detokenizer (no U+FFFD for a split character) and stop-string filter (nothing of a stop string leaks).
Leaving the stream early (client gone, stop string) cancels the engine requests, which frees their KV slots."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from ..detokenizer import IncrementalDetokenizer
from ..engine import Engine, Event, QueueFull, Request
from ..grammar import Matcher
from ..logits import LogitsOptions, TokenLogprobs
from ..model import SamplingParams
from ..tokenizer import Tokenizer
from .errors import server_busy
from .stop import StopFilter


class GenerationFailed(RuntimeError):
    """The engine reported an error for one of this request's choices, or the server stopped it (status 503)."""

    def __init__(self, message: str, status: int = 500):
        super().__init__(message)
        self.status = status


SHUTDOWN = "shutdown"  # an event kind of the server's own: the generation was stopped by a shutdown


@dataclass
class ChoiceDelta:
    index: int
    text: str = ""
    finish_reason: str | None = None
    logprobs: list[TokenLogprobs] = field(default_factory=list)  # of the tokens since the choice's last delta


@dataclass
class ChoiceSpec:
    """What one choice generates from: its prompt, budget and the seed stream index."""

    prompt: list[int]
    max_tokens: int
    seed_index: int = 0
    grammar: Matcher | None = None  # structured outputs: this choice's own matcher


@dataclass
class _Choice:
    spec: ChoiceSpec
    engine_id: str
    detokenizer: IncrementalDetokenizer
    stop: StopFilter
    tokens: int = 0
    finish_reason: str | None = None
    pending_logprobs: list[TokenLogprobs] = field(default_factory=list)


@dataclass
class Timing:
    started: float = field(default_factory=time.monotonic)
    first_token: float | None = None
    last_token: float | None = None

    @property
    def ttft(self) -> float | None:
        return None if self.first_token is None else self.first_token - self.started


class Generation:
    def __init__(self, engine: Engine, tokenizer: Tokenizer, request_id: str, specs: list[ChoiceSpec],
                 sampling: SamplingParams, *, stop: list[str], stop_token_ids: frozenset[int], seed: int | None,
                 logits: LogitsOptions = LogitsOptions()):
        self.engine, self.request_id, self.logits = engine, request_id, logits
        self.sampling, self.stop_token_ids, self.seed = sampling, stop_token_ids, seed
        self.choices = [_Choice(spec, f"{request_id}-{i}", IncrementalDetokenizer(tokenizer), StopFilter(stop))
                        for i, spec in enumerate(specs)]
        self.timing = Timing()
        self._queue: asyncio.Queue[tuple[int, Event]] = asyncio.Queue()
        self._open: set[int] = set()

    @property
    def prompt_tokens(self) -> int:
        """Each distinct prompt counts once, however many choices (n) it has."""
        seen = {}
        for choice in self.choices:
            seen.setdefault(id(choice.spec.prompt), len(choice.spec.prompt))
        return sum(seen.values())

    @property
    def completion_tokens(self) -> int:
        return sum(c.tokens for c in self.choices)

    def start(self) -> None:
        """Submits every choice; all or none (a full queue cancels the ones already in)."""
        loop = asyncio.get_running_loop()
        for index, choice in enumerate(self.choices):
            def deliver(event: Event, index=index) -> None:
                loop.call_soon_threadsafe(self._queue.put_nowait, (index, event))

            request = Request(prompt=choice.spec.prompt, max_tokens=choice.spec.max_tokens, sampling=self.sampling,
                              on_event=deliver, stop_token_ids=self.stop_token_ids, seed=self.seed,
                              id=choice.engine_id, choice_index=choice.spec.seed_index, logits=self.logits,
                              grammar=choice.spec.grammar)
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
        """Text deltas of all choices, interleaved as the engine produces them; each choice ends with one delta
        carrying its finish reason. Cancels what is still running if the consumer stops early."""
        try:
            while self._open:
                index, event = await self._queue.get()
                if index not in self._open:
                    continue  # late events of a choice already finished by a stop string
                delta = self._on_event(index, event)
                if delta is not None:
                    yield delta
        finally:
            self.cancel()

    def _on_event(self, index: int, event: Event) -> ChoiceDelta | None:
        choice = self.choices[index]
        if event.kind == "error":
            self.cancel()
            raise GenerationFailed(event.message or "inference failed")
        if event.kind == SHUTDOWN:
            self.cancel()
            raise GenerationFailed(event.message or "the server is shutting down", status=503)
        if event.kind == "token":
            now = time.monotonic()
            self.timing.first_token = self.timing.first_token or now
            self.timing.last_token = now
            choice.tokens += 1
            if event.token in self.stop_token_ids:
                return None  # EOS / stop token ids end the text; the finish event follows
            if event.logprobs is not None and not choice.stop.stopped:
                choice.pending_logprobs.append(event.logprobs)
            text = choice.stop.push(choice.detokenizer.push(event.token))
            if choice.stop.stopped:
                return self._finish(index, text, "stop")
            return self._delta(index, text) if text else None
        tail = choice.stop.push(choice.detokenizer.flush())
        if choice.stop.stopped:
            return self._finish(index, tail, "stop")
        return self._finish(index, tail + choice.stop.flush(), event.finish_reason)

    def _finish(self, index: int, text: str, reason: str) -> ChoiceDelta:
        choice = self.choices[index]
        choice.finish_reason = reason
        if index in self._open:
            self._open.discard(index)
            self.engine.cancel(choice.engine_id)  # a stop string ends it before the engine would
        return self._delta(index, text, reason)

    def _delta(self, index: int, text: str, reason: str | None = None) -> ChoiceDelta:
        """A delta carries the logprobs of every token since the choice's previous delta (text held back by the
        detokenizer or a stop string does not lose them)."""
        choice = self.choices[index]
        logprobs, choice.pending_logprobs = choice.pending_logprobs, []
        return ChoiceDelta(index, text, reason, logprobs)
