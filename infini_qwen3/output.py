"""How each sampled token becomes a choice's output, and when the choice ends: decided once, next to the scheduler.

The engine hands every token a choice samples to that choice's output processor, which runs detokenize -> stop
strings -> grammar -> reasoning/tool-call parsing and says whether the choice is finished and why ("stop",
"length", "tool_calls"). The HTTP layer only renders the pieces for its endpoint. The logprobs of tokens whose
text is still held back (a split character, a possible stop string, a possible tag) wait here and ride on the
piece that finally shows that text."""

from __future__ import annotations

from dataclasses import dataclass, field

from .chat_output import ChatOutput, ToolCall
from .detokenizer import IncrementalDetokenizer
from .grammar import Matcher
from .logits import TokenLogprobs
from .stop import StopFilter
from .tokenizer import Tokenizer

FINISH_STOP, FINISH_LENGTH, FINISH_TOOL_CALLS = "stop", "length", "tool_calls"


@dataclass
class OutputPiece:
    """What one token adds to a choice: parsed text (completions: `content` only), the logprobs of the tokens
    it shows, and the finish reason when it ends the choice."""

    reasoning: str = ""
    content: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    logprobs: list[TokenLogprobs] = field(default_factory=list)
    finish_reason: str | None = None

    @property
    def visible(self) -> bool:
        return bool(self.reasoning or self.content or self.tool_calls)

    def add(self, piece: "OutputPiece") -> None:
        """Appends a later piece of the same choice (a whole non-streamed output is its pieces added up)."""
        self.reasoning += piece.reasoning
        self.content += piece.content
        self.tool_calls += piece.tool_calls
        self.logprobs += piece.logprobs
        self.finish_reason = piece.finish_reason or self.finish_reason


class TokenOutput:
    """The plain processor (no text): a stop token id ends the choice, the budget ends it with "length". For
    callers that want tokens only (tests, benchmarks); the server uses ChoiceOutput."""

    grammar: Matcher | None = None

    def __init__(self, stop_token_ids: frozenset[int] = frozenset()):
        self.stop_token_ids = stop_token_ids

    def push(self, token: int, logprobs: TokenLogprobs | None, at_limit: bool) -> OutputPiece:
        reason = FINISH_STOP if token in self.stop_token_ids else FINISH_LENGTH if at_limit else None
        return OutputPiece(logprobs=[logprobs] if logprobs is not None else [], finish_reason=reason)


class ChoiceOutput:
    def __init__(self, tokenizer: Tokenizer, *, stop_token_ids: frozenset[int], stop: list[str] | None = None,
                 grammar: Matcher | None = None, parser: ChatOutput | None = None):
        self.stop_token_ids = stop_token_ids
        self.grammar = grammar  # the engine masks this choice's logits with it
        self.detokenizer = IncrementalDetokenizer(tokenizer)
        self.stop = StopFilter(stop or [])
        self.parser = parser  # chat: reasoning split and tool calls; None: completions (plain text)
        self.finish_reason: str | None = None
        self._logprobs: list[TokenLogprobs] = []

    def push(self, token: int, logprobs: TokenLogprobs | None, at_limit: bool) -> OutputPiece:
        """The output of one sampled token. at_limit: the choice has used its budget (max_tokens or the context)."""
        if token in self.stop_token_ids:
            return self._end(FINISH_STOP, "")  # the stop token itself is not output (nor are its logprobs)
        if logprobs is not None:
            self._logprobs.append(logprobs)
        if self.grammar is not None:
            self.grammar.accept(token)
        text = self.stop.push(self.detokenizer.push(token))
        if self.stop.stopped:
            return self._end(FINISH_STOP, text, flush=False)  # nothing after the stop string is output
        if self.grammar is not None and self.grammar.finished:
            return self._end(FINISH_STOP, text)
        if at_limit:
            return self._end(FINISH_LENGTH, text)
        return self._piece(text, final=False)

    def _end(self, reason: str, text: str, flush: bool = True) -> OutputPiece:
        if flush:
            text += self.stop.push(self.detokenizer.flush())
            text += self.stop.flush()
        piece = self._piece(text, final=True)
        if reason == FINISH_STOP and self.parser is not None and self.parser.called_tools:
            reason = FINISH_TOOL_CALLS  # a chat choice that called tools and ended by itself, as OpenAI's do
        piece.finish_reason = self.finish_reason = reason
        return piece

    def _piece(self, text: str, final: bool) -> OutputPiece:
        piece = OutputPiece(content=text)
        if self.parser is not None:
            piece = OutputPiece()
            for part in self.parser.feed(text, final):
                piece.reasoning += part.reasoning
                piece.content += part.content
                piece.tool_calls += part.tool_calls
        if piece.visible or final:
            piece.logprobs, self._logprobs = self._logprobs, []
        return piece
