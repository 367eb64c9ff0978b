"""Validation of /v1/chat/completions and /v1/completions bodies into typed requests (the field readers are in
body_fields.py, the structured-output constraints in structured.py; /v1/responses maps onto the chat request).

Every malformed field is a 400 in OpenAI's error shape naming the field (`param`); nothing a client sends can
raise anything else. Unknown fields are ignored, as vLLM does. Parameters that belong to features not built
yet are refused by name rather than silently ignored."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from ..constraints import Answer
from ..logits import LogitsOptions
from .body_fields import ASCII_INTEGER, boolean, integer, is_int, model_name, number, token_ids
from .errors import APIError, bad_request
from .structured import answer_of

MAX_N = 16
MAX_STOP = 4
MAX_STOP_CHARS = 512
MAX_LOGPROBS = 20
MAX_LOGIT_BIAS = 300
ROLES = {"system", "developer", "user", "assistant", "tool"}
INT64_MIN, UINT64_MAX = -(2 ** 63), 2 ** 64 - 1


@dataclass
class GenerationParams:
    """What both endpoints share. None means "the checkpoint's generation_config.json decides"."""

    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    n: int = 1
    stop: list[str] = field(default_factory=list)
    stop_token_ids: list[int] = field(default_factory=list)
    seed: int | None = None
    stream: bool = False
    include_usage: bool = False
    logits: LogitsOptions = LogitsOptions()  # penalties, bias, min_p, logprobs (the host logits path)
    answer: Answer | None = None  # structured outputs: what the answer must be (response_format and the like)
    cache_salt: str | None = None  # vLLM's: only requests with the same salt share prefix-cache blocks


@dataclass
class ChatRequest:
    model: str | None
    messages: list[dict]
    template_kwargs: dict
    params: GenerationParams
    tools: list[dict] | None = None  # as the chat template takes them: [{"type": "function", "function": {...}}]
    tool_choice: str | dict = "auto"  # "none", "auto", "required" or {"type": "function", "function": {"name"}}

    @property
    def forced_tool(self) -> str | None:
        """The function a named tool_choice requires, else None."""
        return self.tool_choice["function"]["name"] if isinstance(self.tool_choice, dict) else None


@dataclass
class CompletionRequest:
    model: str | None
    prompts: list[str | list[int]]
    echo: bool
    params: GenerationParams


def _stop(body: dict) -> list[str]:
    value = body.get("stop")
    if value is None:
        return []
    stops = [value] if isinstance(value, str) else value
    if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
        raise bad_request("`stop` must be a string or a list of strings.", "stop")
    if len(stops) > MAX_STOP:
        raise bad_request(f"`stop` may hold at most {MAX_STOP} strings; got {len(stops)}.", "stop")
    if any(not s or len(s) > MAX_STOP_CHARS for s in stops):
        raise bad_request(f"Each stop string must have 1 to {MAX_STOP_CHARS} characters.", "stop")
    return list(dict.fromkeys(stops))


def _refuse_unbuilt(body: dict) -> None:
    """Fields of features this server does not have: refused by name instead of silently ignored."""
    inactive = {
        "functions": lambda v: not v,  # the pre-tools API
        "suffix": lambda v: not v,
    }
    for name, is_inactive in inactive.items():
        if not is_inactive(body.get(name)):
            raise bad_request(f"`{name}` is not supported by this server.", name)


def _logit_bias(body: dict) -> tuple[tuple[int, float], ...]:
    bias = body.get("logit_bias")
    if bias is None:
        return ()
    if not isinstance(bias, dict) or len(bias) > MAX_LOGIT_BIAS:
        raise bad_request(f"`logit_bias` must map at most {MAX_LOGIT_BIAS} token ids to biases.", "logit_bias")
    out = []
    for key, value in bias.items():
        key_ok = isinstance(key, str) and ASCII_INTEGER.fullmatch(key)
        if not key_ok or not (is_int(value) or isinstance(value, float)) or not math.isfinite(value) \
                or not -100 <= value <= 100:
            raise bad_request("`logit_bias` keys must be token ids and values numbers in [-100, 100].", "logit_bias")
        out.append((int(key), float(value)))
    return tuple(sorted(out))


def _logprobs(body: dict, chat: bool) -> int | None:
    """How many alternatives per token, or None when logprobs are not asked for."""
    if chat:
        wanted = boolean(body, "logprobs")
        top = integer(body, "top_logprobs", 0, MAX_LOGPROBS)
        if top is not None and not wanted:
            raise bad_request("`top_logprobs` needs `logprobs: true`.", "top_logprobs")
        return (top or 0) if wanted else None
    return integer(body, "logprobs", 0, MAX_LOGPROBS)


def _logits_options(body: dict, chat: bool) -> LogitsOptions:
    return LogitsOptions(
        presence_penalty=number(body, "presence_penalty", -2, 2) or 0.0,
        frequency_penalty=number(body, "frequency_penalty", -2, 2) or 0.0,
        repetition_penalty=number(body, "repetition_penalty", 0, 10, low_open=True) or 1.0,
        logit_bias=_logit_bias(body),
        min_p=number(body, "min_p", 0, 1) or 0.0,
        logprobs=_logprobs(body, chat),
        prompt_logprobs=integer(body, "prompt_logprobs", 0, MAX_LOGPROBS),  # vLLM's extension
    )


def _generation_params(body: dict, chat: bool) -> GenerationParams:
    _refuse_unbuilt(body)
    max_tokens = integer(body, "max_tokens", 0)  # 0 only where the prompt itself is the answer (echo)
    max_completion_tokens = integer(body, "max_completion_tokens", 1)
    n = integer(body, "n", 1, MAX_N)
    best_of = integer(body, "best_of", 1)
    if best_of is not None and best_of != (n or 1):
        raise bad_request("`best_of` other than `n` is not supported.", "best_of")
    top_k = integer(body, "top_k", -1)
    stream = boolean(body, "stream")
    options = body.get("stream_options")
    if options is not None:
        if not isinstance(options, dict):
            raise bad_request("`stream_options` must be an object.", "stream_options")
        if not stream:
            raise bad_request("`stream_options` is only allowed when `stream` is true.", "stream_options")
    include_usage = boolean(options or {}, "include_usage")
    stop_token_ids = body.get("stop_token_ids")
    seed = integer(body, "seed", INT64_MIN, UINT64_MAX)
    user = body.get("user")
    if user is not None and not isinstance(user, str):
        raise bad_request("`user` must be a string.", "user")
    cache_salt = body.get("cache_salt")
    if cache_salt is not None and (not isinstance(cache_salt, str) or not cache_salt):
        raise bad_request("`cache_salt` must be a non-empty string.", "cache_salt")
    return GenerationParams(
        max_tokens=max_completion_tokens if max_completion_tokens is not None else max_tokens,
        temperature=number(body, "temperature", 0, 2),
        top_p=number(body, "top_p", 0, 1, low_open=True),
        top_k=None if top_k is None else (0 if top_k <= 0 else top_k),  # -1 and 0: no limit (vLLM)
        n=n or 1,
        stop=_stop(body),
        stop_token_ids=[] if stop_token_ids is None else token_ids(stop_token_ids, "stop_token_ids"),
        seed=seed,
        stream=stream,
        include_usage=include_usage,
        logits=_logits_options(body, chat),
        answer=answer_of(body),
        cache_salt=cache_salt,
    )


# -- chat -------------------------------------------------------------------------------------------------------
def content_text(content, where: str, param: str = "messages", part_types: tuple[str, ...] = ("text",)) -> str:
    """A message's content: a string, or a list of text parts (joined with newlines, as vLLM does). `part_types`
    are the part types that carry text (the Responses API adds input_text and output_text)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if not isinstance(part, dict) or not isinstance(part.get("type"), str):
                raise bad_request(f"{where}: each content part must be an object with a `type`.", param)
            if part["type"] not in part_types:
                raise bad_request(f"{where}: content parts of type `{part['type']}` are not supported; only "
                                  f"{', '.join(f'`{t}`' for t in part_types)}.", param)
            if not isinstance(part.get("text"), str):
                raise bad_request(f"{where}: a text part needs a string `text`.", param)
            texts.append(part["text"])
        return "\n".join(texts)
    raise bad_request(f"{where}: `content` must be a string or a list of text parts.", param)


def _is_call(call) -> bool:
    function = call.get("function") if isinstance(call, dict) else None
    return (isinstance(function, dict) and isinstance(function.get("name"), str)
            and isinstance(function.get("arguments", "{}"), (str, dict)))


def _message(index: int, message) -> dict:
    where = f"messages[{index}]"
    if not isinstance(message, dict):
        raise bad_request(f"{where} must be an object.", "messages")
    role = message.get("role")
    if not isinstance(role, str) or role not in ROLES:
        raise bad_request(f"{where}: `role` must be one of {sorted(ROLES)}; got {role!r}.", "messages")
    out: dict = {"role": "system" if role == "developer" else role}
    tool_calls = message.get("tool_calls") if role == "assistant" else None
    content = message.get("content")
    if content is None and not tool_calls:
        raise bad_request(f"{where}: `content` is required.", "messages")
    out["content"] = "" if content is None else content_text(content, where)
    if tool_calls:
        if not isinstance(tool_calls, list) or not all(_is_call(c) for c in tool_calls):
            raise bad_request(f"{where}: `tool_calls` must be a list of {{\"type\": \"function\", \"function\": "
                              f"{{\"name\", \"arguments\"}}}} objects.", "messages")
        out["tool_calls"] = tool_calls
    if role == "assistant" and isinstance(message.get("reasoning_content"), str):
        out["reasoning_content"] = message["reasoning_content"]
    if role == "tool" and isinstance(message.get("tool_call_id"), str):
        out["tool_call_id"] = message["tool_call_id"]
    return out


def _template_kwargs(body: dict) -> dict:
    kwargs = body.get("chat_template_kwargs")
    if kwargs is None:
        return {}
    if not isinstance(kwargs, dict):
        raise bad_request("`chat_template_kwargs` must be an object.", "chat_template_kwargs")
    if "enable_thinking" in kwargs and not isinstance(kwargs["enable_thinking"], bool):
        raise bad_request("`chat_template_kwargs.enable_thinking` must be true or false.", "chat_template_kwargs")
    reserved = {"messages", "tools", "add_generation_prompt"} & set(kwargs)
    if reserved:
        raise bad_request(f"`chat_template_kwargs` may not set {sorted(reserved)}.", "chat_template_kwargs")
    return dict(kwargs)


def _tools(body: dict) -> list[dict] | None:
    tools = body.get("tools")
    if tools is None or tools == []:
        return None
    if not isinstance(tools, list):
        raise bad_request("`tools` must be a list.", "tools")
    for i, tool in enumerate(tools):
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(tool, dict) or tool.get("type") != "function" or not isinstance(function, dict):
            raise bad_request(f"tools[{i}] must be {{\"type\": \"function\", \"function\": {{...}}}}.", "tools")
        if not isinstance(function.get("name"), str) or not function["name"]:
            raise bad_request(f"tools[{i}].function needs a non-empty string `name`.", "tools")
        if "parameters" in function and not isinstance(function["parameters"], dict):
            raise bad_request(f"tools[{i}].function.parameters must be a JSON Schema object.", "tools")
        if "description" in function and not isinstance(function["description"], str):
            raise bad_request(f"tools[{i}].function.description must be a string.", "tools")
        if function.get("strict") not in (None, True, False):
            raise bad_request(f"tools[{i}].function.strict must be true or false.", "tools")
    return tools


def _tool_choice(body: dict, tools: list[dict] | None) -> str | dict:
    choice = body.get("tool_choice")
    if choice is None:
        return "auto" if tools else "none"
    if choice in ("none", "auto", "required"):
        if choice == "required" and not tools:
            raise bad_request("`tool_choice` \"required\" needs `tools`.", "tool_choice")
        return choice if tools else "none"
    function = choice.get("function") if isinstance(choice, dict) else None
    name = function.get("name") if isinstance(function, dict) else None
    if not isinstance(choice, dict) or choice.get("type") != "function" or not isinstance(name, str):
        raise bad_request("`tool_choice` must be \"none\", \"auto\", \"required\" or "
                          "{\"type\": \"function\", \"function\": {\"name\": ...}}.", "tool_choice")
    if name not in {t["function"]["name"] for t in tools or []}:
        raise bad_request(f"`tool_choice` names `{name}`, which is not among `tools`.", "tool_choice")
    return {"type": "function", "function": {"name": name}}


def shape_errors_are_bad_requests(parse):
    """A parser reads only the body: whatever it trips over (a nested value of an unexpected type that a reader
    does not check) is the request's fault, answered 400, never 500."""

    def parse_body(body: dict):
        try:
            return parse(body)
        except APIError:
            raise
        except (TypeError, AttributeError, KeyError, IndexError, ValueError, OverflowError) as exc:
            raise bad_request(f"The request body has a value of the wrong shape: {type(exc).__name__}: {exc}") \
                from exc

    return parse_body


@shape_errors_are_bad_requests
def parse_chat(body: dict) -> ChatRequest:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise bad_request("`messages` must be a non-empty list.", "messages")
    tools = _tools(body)
    return ChatRequest(
        model=model_name(body),
        messages=[_message(i, m) for i, m in enumerate(messages)],
        template_kwargs=_template_kwargs(body),
        params=_without_zero_max_tokens(_generation_params(body, chat=True)),
        tools=tools,
        tool_choice=_tool_choice(body, tools),
    )


# -- completions ------------------------------------------------------------------------------------------------
def _prompts(value) -> list[str | list[int]]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value:
        if all(isinstance(p, str) for p in value):
            return list(value)
        if all(is_int(t) for t in value):
            return [token_ids(value, "prompt")]
        if all(isinstance(p, list) for p in value):
            return [token_ids(p, "prompt") for p in value]
    raise bad_request("`prompt` must be a string, a list of strings, a list of token ids or a list of such "
                      "lists, and not empty.", "prompt")


@shape_errors_are_bad_requests
def parse_completion(body: dict) -> CompletionRequest:
    if "prompt" not in body:
        raise bad_request("`prompt` is required.", "prompt")
    echo = boolean(body, "echo")
    params = _generation_params(body, chat=False)
    if echo and params.logits.logprobs is not None:  # the echoed prompt comes with its tokens' logprobs, as vLLM
        wanted = max(params.logits.prompt_logprobs or 0, params.logits.logprobs)
        params = replace(params, logits=replace(params.logits, prompt_logprobs=wanted))
    return CompletionRequest(model=model_name(body), prompts=_prompts(body["prompt"]), echo=echo,
                             params=params if echo else _without_zero_max_tokens(params))


def _without_zero_max_tokens(params: GenerationParams) -> GenerationParams:
    if params.max_tokens == 0:
        raise bad_request("`max_tokens` must be at least 1 (0 is only allowed with `echo` on /v1/completions).",
                          "max_tokens")
    return params


@shape_errors_are_bad_requests
def parse_detokenize(body: dict) -> tuple[str | None, list[int]]:
    """/detokenize: (model, token ids)."""
    return model_name(body), token_ids(body.get("tokens"), "tokens")


__all__ = ["APIError", "ChatRequest", "CompletionRequest", "GenerationParams", "parse_chat", "parse_completion",
           "parse_detokenize", "shape_errors_are_bad_requests"]
