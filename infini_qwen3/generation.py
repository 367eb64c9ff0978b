"""Batch generation over a Qwen3Model: every prompt gets a KV slot, prompts are prefilled in chunks that fit
the step budget, then all unfinished requests decode together, one token per request per step."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field

from .model import Qwen3Model, SamplingParams, StepRequest


@dataclass
class _Sequence:
    index: int
    slot: int
    pending: list[int]  # tokens not yet in the KV cache
    rng: random.Random
    past: int = 0
    generated: list[int] = field(default_factory=list)
    done: bool = False


def request_rng(seed: int | None, index: int) -> random.Random:
    """Per-request random stream: the same seed gives the same draws for the same request position."""
    return random.Random(f"{seed}:{index}") if seed is not None else random.Random()


def generate(model: Qwen3Model, prompts: list[list[int]], *, max_new_tokens: int,
             sampling: SamplingParams | None = None, seed: int | None = None,
             eos_token_ids: tuple[int, ...] | None = None) -> Iterator[tuple[int, int]]:
    """Yields (prompt index, token id) as tokens are produced; greedy when sampling is None."""
    if len(prompts) > model.kv_slots:
        raise ValueError(f"{len(prompts)} prompts but the model has {model.kv_slots} KV slots")
    eos = set(model.defaults.eos_token_ids if eos_token_ids is None else eos_token_ids)
    sequences = []
    for i, prompt in enumerate(prompts):
        if not prompt:
            raise ValueError(f"prompt {i} is empty")
        if len(prompt) + max_new_tokens > model.kv_slot_tokens:
            raise ValueError(f"prompt {i}: {len(prompt)} tokens + {max_new_tokens} new exceed the KV slot "
                             f"capacity of {model.kv_slot_tokens}")
        sequences.append(_Sequence(i, i, list(prompt), request_rng(seed, i)))
    if max_new_tokens <= 0:
        return
    while True:
        active = [s for s in sequences if not s.done]
        if not active:
            return
        budget = model.max_step_tokens
        step: list[tuple[_Sequence, int]] = []
        for seq in active:
            if budget == 0:
                break
            take = min(len(seq.pending), budget)
            budget -= take
            step.append((seq, take))
        requests = [StepRequest(seq.pending[:take], seq.past, seq.slot, sampling, seq.rng.random())
                    for seq, take in step]
        tokens = model.infer(requests)
        for (seq, take), token in zip(step, tokens):
            seq.past += take
            del seq.pending[:take]
            if seq.pending:  # prompt not finished: this step's sample is not a real next token
                continue
            seq.generated.append(token)
            yield seq.index, token
            if token in eos or len(seq.generated) >= max_new_tokens:
                seq.done = True
            else:
                seq.pending = [token]
