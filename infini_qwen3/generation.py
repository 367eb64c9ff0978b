"""Batch generation over a Qwen3Model: every prompt gets a KV slot, prompts are prefilled in chunks that fit
the step budget, then all unfinished requests decode together, one token per request per step."""

from __future__ import annotations

from collections.abc import Iterator

from .model import Qwen3Model, SamplingParams
from .sequence import Sequence, plan_step, request_rng


def generate(model: Qwen3Model, prompts: list[list[int]], *, max_new_tokens: int,
             sampling: SamplingParams | None = None, seed: int | None = None,
             eos_token_ids: tuple[int, ...] | None = None) -> Iterator[tuple[int, int]]:
    """Yields (prompt index, token id) as tokens are produced; greedy when sampling is None."""
    if len(prompts) > model.kv_slots:
        raise ValueError(f"{len(prompts)} prompts but the model has {model.kv_slots} KV slots")
    eos = set(model.defaults.eos_token_ids if eos_token_ids is None else eos_token_ids)
    for i, prompt in enumerate(prompts):
        if not prompt:
            raise ValueError(f"prompt {i} is empty")
        if len(prompt) + max_new_tokens > model.kv_slot_tokens:
            raise ValueError(f"prompt {i}: {len(prompt)} tokens + {max_new_tokens} new exceed the KV slot "
                             f"capacity of {model.kv_slot_tokens}")
    if max_new_tokens <= 0:
        return
    active = {i: Sequence(slot=i, pending=list(prompt), rng=request_rng(seed, i)) for i, prompt in enumerate(prompts)}
    while active:
        plan = plan_step(list(active.values()), model.max_step_tokens)
        tokens = model.infer([seq.step_request(take, sampling) for seq, take in plan])
        for (seq, take), token in zip(plan, tokens):
            if not seq.advance(take, token):
                continue
            yield seq.slot, token
            if token in eos or seq.generated >= max_new_tokens:
                del active[seq.slot]
            else:
                seq.continue_with(token)
