"""Generation as a library call: a loop over the scheduler (scheduler.py), the same one the server's engine runs,
so chunked prefill, the prefix cache and preemption behave here as they do there."""

from __future__ import annotations

from collections.abc import Iterator

from .model import Qwen3Model, SamplingParams
from .output import TokenOutput
from .scheduler import Event, Request, Scheduler

GREEDY = SamplingParams(temperature=0.0)


class GenerationError(RuntimeError):
    """The model step of a request failed."""


def run(scheduler: Scheduler, requests: list[Request]) -> Iterator[tuple[int, Event]]:
    """Adds the requests and steps the scheduler until they are done, yielding (request index, event) as the
    events come. The requests' own on_event callbacks are replaced."""
    events: list[tuple[int, Event]] = []
    for index, request in enumerate(requests):
        request.on_event = lambda event, index=index: events.append((index, event))
        scheduler.add(request)
    try:
        while scheduler.has_work():
            scheduler.step()
            yield from events
            events.clear()
    finally:  # a consumer that stops early gives the blocks back
        for request in requests:
            scheduler.cancel(request.id)


def generate(model: Qwen3Model, prompts: list[list[int]], *, max_new_tokens: int,
             sampling: SamplingParams | None = None, seed: int | None = None,
             eos_token_ids: tuple[int, ...] | None = None,
             enable_prefix_caching: bool = True) -> Iterator[tuple[int, int]]:
    """Yields (prompt index, token id) as tokens are produced; greedy when sampling is None. Stops a prompt at
    an eos token (which is yielded) or after max_new_tokens."""
    eos = frozenset(model.defaults.eos_token_ids if eos_token_ids is None else eos_token_ids)
    for i, prompt in enumerate(prompts):
        if not prompt:
            raise ValueError(f"prompt {i} is empty")
        if len(prompt) + max_new_tokens > model.max_model_len:
            raise ValueError(f"prompt {i}: {len(prompt)} tokens + {max_new_tokens} new exceed the context of "
                             f"{model.max_model_len} tokens")
    if max_new_tokens <= 0 or not prompts:
        return
    scheduler = Scheduler(model, max_batch=len(prompts), enable_prefix_caching=enable_prefix_caching)
    requests = [Request(prompt, max_new_tokens, sampling or GREEDY, on_event=None, output=TokenOutput(eos),
                        seed=seed, id=str(i), choice_index=i) for i, prompt in enumerate(prompts)]
    for index, event in run(scheduler, requests):
        if event.kind == "error":
            raise GenerationError(f"prompt {index}: {event.message}")
        if event.kind == "token":
            yield index, event.token
