"""vLLM's /tokenize, /detokenize and /tokenizer_info: the token ids the server would run for a completion prompt
or a chat (`messages`, templated exactly as /v1/chat/completions templates them), the text of token ids, and
the tokenizer's settings (lm-evaluation-harness's remote tokenizer reads its special tokens and chat template).
Qwen3's tokenizer adds no special tokens of its own, so `add_special_tokens` changes nothing and is accepted."""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .body_fields import parse_json
from .errors import APIError, bad_request
from .plumbing import accept_get, accept_post
from .protocol import parse_chat, parse_completion, parse_detokenize
from .service import Service
from .state import ServerState


def tokenize(service: Service, raw: bytes) -> dict:
    body = parse_json(raw)
    if "messages" in body:
        request = parse_chat(body)
        service.check_model(request.model)
        ids = service.chat_prompt(request).ids
    else:
        request = parse_completion(body)
        service.check_model(request.model)
        if len(request.prompts) != 1:
            raise bad_request("/tokenize takes one `prompt` (or `messages`).", "prompt")
        ids = service.completion_prompts(request)[0]
    return {"count": len(ids), "max_model_len": service.context_length, "tokens": ids, "token_strs": None}


def tokenizer_info(service: Service) -> dict:
    """As vLLM: the checkpoint's tokenizer_config.json (less its added-token table), the chat template this
    server renders, and the context length."""
    config = {k: v for k, v in service.tokenizer.config.items() if k != "added_tokens_decoder"}

    def token_text(value):
        return value.get("content") if isinstance(value, dict) else value

    return {**config, "eos_token": token_text(config.get("eos_token")),
            "bos_token": token_text(config.get("bos_token")), "pad_token": token_text(config.get("pad_token")),
            "chat_template": service.tokenizer.chat_template, "model_max_length": service.context_length,
            "tokenizer_class": config.get("tokenizer_class", "Qwen2TokenizerFast")}


def detokenize(service: Service, raw: bytes) -> dict:
    model, ids = parse_detokenize(parse_json(raw))
    service.check_model(model)
    service.check_vocabulary(ids, "tokens")
    return {"prompt": service.tokenizer.decode(ids)}


def _route(state: ServerState, work):
    async def handler(request: Request) -> Response:
        try:
            service, raw = await accept_post(state, request)
            result = await asyncio.get_running_loop().run_in_executor(state.prompt_workers, work, service, raw)
        except APIError as exc:
            return exc.response()
        return JSONResponse(result)

    return handler


def tokenizer_info_route(state: ServerState):
    async def handler(request: Request) -> Response:
        try:
            service = accept_get(state, request)
        except APIError as exc:
            return exc.response()
        return JSONResponse(tokenizer_info(service))

    return handler


def tokenize_route(state: ServerState):
    return _route(state, tokenize)


def detokenize_route(state: ServerState):
    return _route(state, detokenize)
