"""One request's progress through batched steps: its one token history (prompt, then output), how much of it is
in the KV cache, and its block table."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from .model import SamplingParams, StepRequest


def request_rng(seed: int | None, index: int = 0) -> random.Random:
    """Per-request random stream: the same seed gives the same draws for the same request (choice) index."""
    return random.Random(f"{seed}:{index}") if seed is not None else random.Random()


@dataclass(eq=False)  # identity: a sequence is one request's state, not a value
class Sequence:
    tokens: list[int]  # the prompt, then every sampled token: the one token history
    prompt_len: int
    rng: random.Random
    past: int = 0  # leading tokens whose K/V are in the cache
    blocks: list[int] = field(default_factory=list)  # its KV blocks in position order (block_manager)
    cached_tokens: int = 0  # prompt tokens its first admission found in the prefix cache
    admitted: bool = False

    @classmethod
    def from_prompt(cls, prompt: list[int], rng: random.Random) -> "Sequence":
        return cls(list(prompt), len(prompt), rng)

    @property
    def pending(self) -> int:
        """Tokens not yet in the KV cache: the prompt's remainder, or the last sampled token."""
        return len(self.tokens) - self.past

    @property
    def prompt(self) -> list[int]:
        return self.tokens[:self.prompt_len]

    @property
    def output_tokens(self) -> list[int]:
        """The sampled tokens (the request's output processor, `Request.output`, turns them into text)."""
        return self.tokens[self.prompt_len:]

    @property
    def generated(self) -> int:
        return len(self.tokens) - self.prompt_len

    def step_request(self, take: int, sampling: SamplingParams | None) -> StepRequest:
        """The step's part for this sequence. A random number is drawn only for a step that samples a real
        token, so the n-th token of a seeded request gets the n-th draw however its prompt was chunked, cached
        or recomputed."""
        samples = take == self.pending
        return StepRequest(self.tokens[self.past:self.past + take], self.past, self.blocks, sampling,
                           self.rng.random() if samples else 0.0)

    def advance(self, take: int, token: int) -> bool:
        """Records that `take` pending tokens went into the cache and `token` was sampled. Returns False while
        the prompt is still being prefilled (the sample is then not a real next token)."""
        self.past += take
        if self.pending:
            return False
        self.tokens.append(token)
        return True

    def forget_cache(self) -> None:
        """After its blocks were given back (preemption): everything is pending again."""
        self.past = 0
