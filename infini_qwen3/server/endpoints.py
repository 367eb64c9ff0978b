"""The generating endpoints as data: each is a record of its path, its metric label and how a request body becomes a
started-to-be generation with the renderer of its own wire format (chat completions, completions, responses).
The routes, streaming and collecting in app.py are the same for all of them."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from .generation import Generation
from .protocol import GenerationParams, parse_chat, parse_completion
from .responses import ChatRenderer, CompletionRenderer, LogprobFormat, Renderer
from .service import Service


@dataclass
class Job:
    """A generation (not started yet) and the renderer of its endpoint's responses."""

    generation: Generation
    renderer: Renderer
    stream: bool


@dataclass(frozen=True)
class Endpoint:
    path: str  # under /v1 (and, for jiuge's clients, without it)
    # body -> job: parsing, templating, tokenizing, checks; long for a large body, so it runs in a worker thread
    prepare: Callable[[Service, dict], Job]
    aliases: tuple[str, ...] = ("/v1",)  # the prefixes it is served under

    @property
    def label(self) -> str:
        return "/v1" + self.path  # the metric label


def _scoring(service: Service, body: dict, prompts: list[list[int]], params: GenerationParams) -> dict:
    """The renderer's view of prompt logprobs: each choice's prompt, and vLLM's prompt_logprobs field when the
    request named it (echo + logprobs alone puts them in the legacy shape)."""
    asked = body.get("prompt_logprobs") is not None
    return dict(prompts=[p for p in prompts for _ in range(params.n)],
                prompt_logprobs=LogprobFormat(service.tokenizer) if asked else None)


def _shared(service: Service, generation: Generation, params: GenerationParams) -> tuple:
    return (generation.request_id, int(time.time()), service.info.served_name, params.include_usage,
            len(generation.choices))


def prepare_chat(service: Service, body: dict) -> Job:
    request = parse_chat(body)
    service.check_model(request.model)
    prompt = service.chat_prompt(request)
    params = request.params
    generation = service.generation("chatcmpl", [prompt.ids], params, "messages", chat=prompt)
    logprobs = LogprobFormat(service.tokenizer) if params.logits.logprobs is not None else None
    renderer = ChatRenderer(*_shared(service, generation, params), logprobs=logprobs,
                            reasoning=service.info.reasoning_parser is not None,
                            **_scoring(service, body, [prompt.ids], params))
    return Job(generation, renderer, params.stream)


def prepare_completion(service: Service, body: dict) -> Job:
    request = parse_completion(body)
    service.check_model(request.model)
    prompts = service.completion_prompts(request)
    params = request.params
    generation = service.generation("cmpl", prompts, params, "prompt")
    logprobs = LogprobFormat(service.tokenizer) if params.logits.logprobs is not None else None
    echo = [service.tokenizer.decode(p) for p in prompts for _ in range(params.n)] if request.echo else None
    renderer = CompletionRenderer(*_shared(service, generation, params), logprobs=logprobs, echo_texts=echo,
                                  **_scoring(service, body, prompts, params))
    return Job(generation, renderer, params.stream)


CHAT = Endpoint("/chat/completions", prepare_chat, aliases=("/v1", ""))  # jiuge's clients call it without /v1
COMPLETIONS = Endpoint("/completions", prepare_completion, aliases=("/v1", ""))
