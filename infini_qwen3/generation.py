"""Batch generation over a Qwen3Model: every prompt gets the KV blocks for its prompt and new tokens up front,
prompts are prefilled in chunks that fit the step budget, then all unfinished requests decode together, one
token per request per step."""

from __future__ import annotations

from collections.abc import Iterator

from .kv_blocks import BlockPool
from .model import Qwen3Model, SamplingParams
from .sequence import Sequence, plan_step, request_rng


def generate(model: Qwen3Model, prompts: list[list[int]], *, max_new_tokens: int,
             sampling: SamplingParams | None = None, seed: int | None = None,
             eos_token_ids: tuple[int, ...] | None = None) -> Iterator[tuple[int, int]]:
    """Yields (prompt index, token id) as tokens are produced; greedy when sampling is None."""
    eos = set(model.defaults.eos_token_ids if eos_token_ids is None else eos_token_ids)
    for i, prompt in enumerate(prompts):
        if not prompt:
            raise ValueError(f"prompt {i} is empty")
        if len(prompt) + max_new_tokens > model.max_model_len:
            raise ValueError(f"prompt {i}: {len(prompt)} tokens + {max_new_tokens} new exceed the context of "
                             f"{model.max_model_len} tokens")
    pool = BlockPool(model.kv_blocks, model.block_size)
    needed = sum(pool.blocks_for(len(p) + max_new_tokens) for p in prompts)
    if needed > pool.num_blocks:
        raise ValueError(f"{len(prompts)} prompts with {max_new_tokens} new tokens each need {needed} KV blocks; "
                         f"the pool has {pool.num_blocks}")
    if max_new_tokens <= 0:
        return
    active = {i: Sequence(pending=list(prompt), rng=request_rng(seed, i)) for i, prompt in enumerate(prompts)}
    for i, seq in active.items():
        pool.grow(seq.blocks, len(prompts[i]) + max_new_tokens)
    index = {id(seq): i for i, seq in active.items()}
    while active:
        plan = plan_step(list(active.values()), model.max_step_tokens)
        tokens = model.infer([seq.step_request(take, sampling) for seq, take in plan])
        for (seq, take), token in zip(plan, tokens):
            if not seq.advance(take, token):
                continue
            i = index[id(seq)]
            yield i, token
            if token in eos or seq.generated >= max_new_tokens:
                del active[i]
            else:
                seq.continue_with(token)
