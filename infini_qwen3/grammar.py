"""Structured outputs at run time: llguidance (a grammar engine from PyPI that needs no torch) sees the model's
tokenizer once (about 2 s for Qwen3's 151,936 tokens); each constrained choice gets a matcher that yields the
allowed next tokens and advances with every sampled token. The engine applies the mask on its host logits path;
constraints.py says what the grammars are."""

from __future__ import annotations

import numpy as np


class GrammarError(ValueError):
    """The schema cannot be compiled (a feature llguidance does not support, or an invalid schema)."""


class Matcher:
    """One constrained choice: which tokens may come next, and the grammar's progress."""

    def __init__(self, ll_matcher, vocab_size: int):
        import llguidance.numpy

        self._matcher, self._vocab_size = ll_matcher, vocab_size
        self._fill = llguidance.numpy.fill_next_token_bitmask
        self._bitmask = llguidance.numpy.allocate_token_bitmask(1, vocab_size)

    def allowed(self) -> np.ndarray:
        """A bool array over the vocabulary: the tokens the grammar accepts next."""
        self._fill(self._matcher, self._bitmask, 0)
        bits = np.unpackbits(self._bitmask[0].view(np.uint8), bitorder="little")
        return bits[: self._vocab_size].astype(bool)

    def copy(self) -> "Matcher":
        """A matcher of the same grammar in the same state (one compilation for n choices)."""
        return Matcher(self._matcher.deep_copy(), self._vocab_size)

    def accept(self, token: int) -> None:
        self._matcher.consume_token(token)

    @property
    def finished(self) -> bool:
        """The grammar is complete: nothing (but the end) may follow."""
        return self._matcher.is_stopped()


class Grammars:
    """llguidance's view of one model's tokenizer, and the matchers made from it."""

    def __init__(self, tokenizer_json: str, vocab_size: int, eos_ids: tuple[int, ...]):
        import llguidance

        self._llguidance = llguidance
        self.vocab_size = vocab_size
        self.tokenizer = llguidance.LLTokenizer(tokenizer_json, n_vocab=vocab_size, eos_token=list(eos_ids) or None)

    def matcher(self, grammar: str) -> Matcher:
        ll_matcher = self._llguidance.LLMatcher(self.tokenizer, grammar)
        if ll_matcher.is_error():
            raise GrammarError(ll_matcher.get_error())
        return Matcher(ll_matcher, self.vocab_size)
