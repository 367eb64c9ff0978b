"""One request's progress through batched steps, and how a step's token budget is shared.

Both the synchronous `generation.generate` and the continuous-batching `engine.Engine` drive sequences
through `plan_step` and `Sequence.advance`, so chunked prefill and token accounting exist once."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from .model import SamplingParams, StepRequest


def request_rng(seed: int | None, index: int = 0) -> random.Random:
    """Per-request random stream: the same seed gives the same draws for the same request (choice) index."""
    return random.Random(f"{seed}:{index}") if seed is not None else random.Random()


@dataclass(eq=False)  # identity: a sequence is one request's state, not a value
class Sequence:
    pending: list[int]  # tokens not yet in the KV cache: the prompt's remainder, or the last sampled token
    rng: random.Random
    past: int = 0  # tokens already in the KV cache
    generated: int = 0
    blocks: list[int] = field(default_factory=list)  # its KV blocks in position order (kv_blocks.BlockPool)

    def step_request(self, take: int, sampling: SamplingParams | None) -> StepRequest:
        """The step's part for this sequence. A random number is drawn only for a step that samples a real
        token, so the n-th token of a seeded request gets the n-th draw however its prompt was chunked or
        recomputed."""
        samples = take == len(self.pending)
        return StepRequest(self.pending[:take], self.past, self.blocks, sampling,
                           self.rng.random() if samples else 0.0)

    def advance(self, take: int, token: int) -> bool:
        """Records that `take` pending tokens went into the cache and `token` was sampled. Returns False while
        the prompt is still being prefilled (the sample is then not a real next token)."""
        self.past += take
        del self.pending[:take]
        if self.pending:
            return False
        self.generated += 1
        return True

    def continue_with(self, token: int) -> None:
        self.pending = [token]


def plan_step(sequences: list[Sequence], budget: int) -> list[tuple[Sequence, int]]:
    """Takes pending tokens from the sequences in order until the step's token budget is spent."""
    plan = []
    for seq in sequences:
        if budget == 0:
            break
        take = min(len(seq.pending), budget)
        plan.append((seq, take))
        budget -= take
    return plan
