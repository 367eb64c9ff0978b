"""Incremental detokenization that never emits U+FFFD for a character the next token completes.

A byte-level BPE token can end inside a multi-byte UTF-8 character (common in Chinese). Text is decoded over
a short window of recent tokens; new text is released only when it no longer ends in the replacement
character, so a split character comes out whole once its last byte arrives."""

from __future__ import annotations

from .tokenizer import Tokenizer

REPLACEMENT = "\ufffd"


class IncrementalDetokenizer:
    def __init__(self, tokenizer: Tokenizer, skip_special_tokens: bool = True):
        self.tokenizer = tokenizer
        self.skip_special_tokens = skip_special_tokens
        self.ids: list[int] = []
        self.prefix = 0  # window start: text before it has been emitted and is final
        self.read = 0  # tokens whose text has been emitted

    def _decode(self, ids: list[int]) -> str:
        """Special tokens are dropped by id (tokenizer.hidden_ids), not by the tokenizer's special flags, so the
        reasoning and tool-call delimiters reach the parsers whatever flags a checkpoint's tokenizer.json gives them."""
        if self.skip_special_tokens:
            hidden = self.tokenizer.hidden_ids
            ids = [t for t in ids if t not in hidden]
        return self.tokenizer.decode(ids, skip_special_tokens=False)

    def push(self, token: int) -> str:
        """Adds one token; returns the text that became final (possibly empty)."""
        self.ids.append(token)
        emitted = self._decode(self.ids[self.prefix:self.read])
        window = self._decode(self.ids[self.prefix:])
        if window.endswith(REPLACEMENT) or len(window) <= len(emitted):
            return ""
        self.prefix, self.read = self.read, len(self.ids)
        return window[len(emitted):]

    def flush(self) -> str:
        """Text still held at the end of generation (an incomplete character is emitted as U+FFFD)."""
        emitted = self._decode(self.ids[self.prefix:self.read])
        window = self._decode(self.ids[self.prefix:])
        self.prefix = self.read = len(self.ids)
        return window[len(emitted):]
