"""POST /v1/responses, the subset vLLM serves, stateless: the request becomes a chat (input items -> messages, function
tools, tool_choice, text.format -> the structured-output constraint, reasoning -> Qwen3's thinking switch), runs on
the same chat pipeline, and is rendered as a Response object with output items (reasoning, message,
function_call) or as the typed event stream the openai SDK and the Agents SDK consume.

Nothing is stored: `store` is accepted, and `previous_response_id` / `conversation` / `background` are refused by
name. A stream ends with `response.completed` whose response says `status: "incomplete"` when max_output_tokens
cut it (as vLLM; the SDK's stream helpers read the final response from that event)."""

from __future__ import annotations

import json
import time
import uuid

from .endpoints import Endpoint, Job
from .errors import bad_request
from .protocol import content_text, parse_chat, shape_errors_are_bad_requests
from .responses import Renderer
from .service import Service

ITEM_TEXT_PARTS = ("input_text", "output_text", "text")
REFUSED = {"previous_response_id": "this server keeps no responses (it is stateless); send the whole input",
           "conversation": "this server keeps no conversations (it is stateless); send the whole input",
           "background": "background responses are not supported"}
NO_THINKING_EFFORTS = ("none", "minimal")


# -- the request --------------------------------------------------------------------------------------------------
def _field(item: dict, name: str, index: int) -> str:
    value = item.get(name)
    if not isinstance(value, str):
        raise bad_request(f"`input[{index}].{name}` must be a string.", "input")
    return value


def messages_from(body: dict) -> list[dict]:
    """instructions + input (a string, or message / function_call / function_call_output / reasoning items) as
    chat messages. Consecutive function calls join one assistant message; reasoning items of the history are
    dropped, as Qwen3's chat template drops the reasoning of earlier turns."""
    messages: list[dict] = []
    instructions = body.get("instructions")
    if instructions is not None:
        system = content_text(instructions, "instructions", "instructions", ITEM_TEXT_PARTS)
        messages.append({"role": "system", "content": system})
    items = body.get("input")
    if isinstance(items, str):
        return messages + [{"role": "user", "content": items}]
    if not isinstance(items, list) or not items:
        raise bad_request("`input` must be a string or a non-empty list of input items.", "input")
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise bad_request(f"`input[{index}]` must be an object.", "input")
        kind = item.get("type", "message")
        if kind == "message":
            content = content_text(item.get("content"), f"input[{index}]", "input", ITEM_TEXT_PARTS)
            messages.append({"role": item.get("role"), "content": content})
        elif kind == "function_call":
            call = {"id": _field(item, "call_id", index), "type": "function",
                    "function": {"name": _field(item, "name", index), "arguments": _field(item, "arguments", index)}}
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "assistant":
                last.setdefault("tool_calls", []).append(call)
            else:
                messages.append({"role": "assistant", "content": "", "tool_calls": [call]})
        elif kind == "function_call_output":
            output = content_text(item.get("output"), f"input[{index}]", "input", ITEM_TEXT_PARTS)
            messages.append({"role": "tool", "tool_call_id": _field(item, "call_id", index), "content": output})
        elif kind != "reasoning":
            raise bad_request(f"Input items of type {kind!r} are not supported.", "input")
    return messages


def _tools(body: dict) -> list[dict] | None:
    tools = body.get("tools")
    if tools is None:
        return None
    if not isinstance(tools, list):
        raise bad_request("`tools` must be a list.", "tools")
    out = []
    for tool in tools:
        if not isinstance(tool, dict) or tool.get("type") != "function":
            kind = tool.get("type") if isinstance(tool, dict) else None
            raise bad_request(f"Only function tools are supported, not {kind!r}.", "tools")
        function = {k: tool[k] for k in ("name", "description", "parameters", "strict") if k in tool}
        out.append({"type": "function", "function": function})
    return out


def _tool_choice(value):
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, dict) and value.get("type") == "function" and isinstance(value.get("name"), str):
        return {"type": "function", "function": {"name": value["name"]}}
    raise bad_request("`tool_choice` must be \"none\", \"auto\", \"required\" or {\"type\": \"function\", "
                      "\"name\": ...}.", "tool_choice")


def _response_format(text) -> dict | None:
    if text is None:
        return None
    fmt = text.get("format") if isinstance(text, dict) else None
    if fmt is None:
        return None
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind == "text":
        return None
    if kind == "json_object":
        return {"type": "json_object"}
    if kind == "json_schema":
        spec = {k: fmt[k] for k in ("name", "schema", "strict", "description") if k in fmt}
        return {"type": "json_schema", "json_schema": spec}
    raise bad_request("`text.format.type` must be \"text\", \"json_object\" or \"json_schema\".", "text")


@shape_errors_are_bad_requests
def chat_body(body: dict) -> dict:
    """The chat completions request this Responses request is."""
    for name, why in REFUSED.items():
        if body.get(name) not in (None, False):
            raise bad_request(f"`{name}` is not supported: {why}.", name)
    chat = {"messages": messages_from(body), "model": body.get("model")}
    for name in ("temperature", "top_p", "top_k", "seed", "user", "stream", "cache_salt"):
        if name in body:
            chat[name] = body[name]
    if body.get("max_output_tokens") is not None:
        chat["max_completion_tokens"] = body["max_output_tokens"]
    tools = _tools(body)
    if tools is not None:
        chat["tools"] = tools
    if body.get("tool_choice") is not None:
        chat["tool_choice"] = _tool_choice(body["tool_choice"])
    response_format = _response_format(body.get("text"))
    if response_format is not None:
        chat["response_format"] = response_format
    reasoning = body.get("reasoning")
    if reasoning is not None:
        if not isinstance(reasoning, dict):
            raise bad_request("`reasoning` must be an object.", "reasoning")
        if reasoning.get("effort") is not None:  # Qwen3 thinks or not; there are no degrees
            chat["chat_template_kwargs"] = {"enable_thinking": reasoning["effort"] not in NO_THINKING_EFFORTS}
    for name, kind in (("metadata", dict), ("parallel_tool_calls", bool), ("store", bool)):
        if body.get(name) is not None and not isinstance(body[name], kind):
            raise bad_request(f"`{name}` must be of type {kind.__name__}.", name)
    return chat


def prepare_response(service: Service, body: dict) -> Job:
    request = parse_chat(chat_body(body))
    service.check_model(request.model)
    prompt = service.chat_prompt(request)
    generation = service.generation("resp", [prompt.ids], request.params, "input", chat=prompt)
    renderer = ResponsesRenderer(generation.request_id, int(time.time()), service.info.served_name, body,
                                 tools=request.tools or [], tool_choice=request.tool_choice)
    return Job(generation, renderer, request.params.stream)


RESPONSES = Endpoint("/responses", prepare_response)


# -- the response -------------------------------------------------------------------------------------------------
def _item_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def usage_object(counts) -> dict:
    return {"input_tokens": counts.prompt_tokens, "input_tokens_details": {"cached_tokens": counts.cached_tokens},
            "output_tokens": counts.completion_tokens,
            "output_tokens_details": {"reasoning_tokens": counts.reasoning_tokens},
            "total_tokens": counts.prompt_tokens + counts.completion_tokens}


def reasoning_item(text: str, item_id: str | None = None, status: str = "completed") -> dict:
    return {"id": item_id or _item_id("rs"), "type": "reasoning", "summary": [],
            "content": [{"type": "reasoning_text", "text": text}] if status == "completed" else [], "status": status}


def message_item(text: str, item_id: str | None = None, status: str = "completed") -> dict:
    content = [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}] if status == "completed" \
        else []
    return {"id": item_id or _item_id("msg"), "type": "message", "role": "assistant", "status": status,
            "content": content}


def call_item(call, item_id: str | None = None, status: str = "completed") -> dict:
    return {"id": item_id or _item_id("fc"), "type": "function_call", "call_id": call.id, "name": call.name,
            "arguments": call.arguments if status == "completed" else "", "status": status}


class ResponsesRenderer(Renderer):
    """One Response: its object (non-streamed) or its typed events, each with a sequence_number. Items open as
    their first text arrives (reasoning, then the message) and close when another kind starts or the output
    ends; a function call is one item of its own."""

    object_name = "response"

    def __init__(self, request_id: str, created: int, model: str, body: dict, *, tools: list, tool_choice):
        super().__init__(request_id, created, model, False, 1, None)
        self.request = body
        self.tools = [{"type": "function", **t["function"]} for t in tools]
        self.tool_choice = tool_choice if not isinstance(tool_choice, dict) else \
            {"type": "function", "name": tool_choice["function"]["name"]}
        self.sequence = 0
        self.items: list[dict] = []  # finished output items
        self.open: dict | None = None  # the item being streamed: {"kind", "id", "text"}
        self.finish_reason: str | None = None

    # -- the Response object ---------------------------------------------------------------------------------------
    def response(self, status: str, output: list[dict], counts=None, error: dict | None = None) -> dict:
        body = self.request
        incomplete = {"reason": "max_output_tokens"} if status == "incomplete" else None
        return {"id": self.request_id, "object": "response", "created_at": self.created, "status": status,
                "error": error, "incomplete_details": incomplete, "instructions": body.get("instructions"),
                "max_output_tokens": body.get("max_output_tokens"), "model": self.model, "output": output,
                "parallel_tool_calls": body.get("parallel_tool_calls", True),
                "previous_response_id": None, "reasoning": body.get("reasoning"),
                "store": bool(body.get("store", False)), "temperature": body.get("temperature"),
                "text": body.get("text") or {"format": {"type": "text"}}, "tool_choice": self.tool_choice or "auto",
                "tools": self.tools, "top_p": body.get("top_p"), "truncation": "disabled",
                "usage": usage_object(counts) if counts is not None else None, "user": body.get("user"),
                "metadata": body.get("metadata") or {}}

    def _status(self, finish_reason: str | None) -> str:
        return "incomplete" if finish_reason == "length" else "completed"

    def body(self, wholes: list, counts) -> dict:
        whole = wholes[0]
        output = []
        if whole.reasoning:
            output.append(reasoning_item(whole.reasoning))
        if whole.content or not (whole.reasoning or whole.tool_calls):
            output.append(message_item(whole.content))
        output += [call_item(call) for call in whole.tool_calls]
        return self.response(self._status(whole.finish_reason), output, counts)

    # -- the event stream ------------------------------------------------------------------------------------------
    def _event(self, kind: str, **fields) -> bytes:
        payload = {"type": kind, "sequence_number": self.sequence, **fields}
        self.sequence += 1
        return f"event: {kind}\ndata: {json.dumps(payload, ensure_ascii=False, separators=(',', ':'))}\n\n".encode()

    def stream_opening(self) -> list[bytes]:
        started = self.response("in_progress", [])
        return [self._event("response.created", response=started),
                self._event("response.in_progress", response=started)]

    def stream_delta(self, index: int, piece, prompt_logprobs: list | None = None) -> list[bytes]:
        events = []
        if piece.reasoning:
            events += self._text("reasoning", piece.reasoning)
        if piece.content:
            events += self._text("message", piece.content)
        for call in piece.tool_calls:
            events += self._close() + self._call(call)
        self.finish_reason = piece.finish_reason or self.finish_reason
        return events

    def _text(self, kind: str, text: str) -> list[bytes]:
        events = []
        if self.open is None or self.open["kind"] != kind:
            events += self._close()
            item_id = _item_id("rs" if kind == "reasoning" else "msg")
            self.open = {"kind": kind, "id": item_id, "text": ""}
            empty = reasoning_item("", item_id, "in_progress") if kind == "reasoning" else \
                message_item("", item_id, "in_progress")
            part = {"type": "reasoning_text", "text": ""} if kind == "reasoning" else \
                {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
            events += [self._event("response.output_item.added", output_index=len(self.items), item=empty),
                       self._event("response.content_part.added", item_id=item_id, output_index=len(self.items),
                                   content_index=0, part=part)]
        self.open["text"] += text
        where = dict(item_id=self.open["id"], output_index=len(self.items), content_index=0)
        if kind == "reasoning":
            return events + [self._event("response.reasoning_text.delta", delta=text, **where)]
        return events + [self._event("response.output_text.delta", delta=text, logprobs=[], **where)]

    def _close(self) -> list[bytes]:
        if self.open is None:
            return []
        kind, item_id, text = self.open["kind"], self.open["id"], self.open["text"]
        where = dict(item_id=item_id, output_index=len(self.items), content_index=0)
        if kind == "reasoning":
            item = reasoning_item(text, item_id)
            events = [self._event("response.reasoning_text.done", text=text, **where)]
        else:
            item = message_item(text, item_id)
            events = [self._event("response.output_text.done", text=text, logprobs=[], **where)]
        events += [self._event("response.content_part.done", part=item["content"][0], **where),
                   self._event("response.output_item.done", output_index=len(self.items), item=item)]
        self.items.append(item)
        self.open = None
        return events

    def _call(self, call) -> list[bytes]:
        item = call_item(call)
        where = dict(item_id=item["id"], output_index=len(self.items))
        events = [self._event("response.output_item.added", output_index=len(self.items),
                              item=call_item(call, item["id"], "in_progress")),
                  self._event("response.function_call_arguments.delta", delta=call.arguments, **where),
                  self._event("response.function_call_arguments.done", arguments=call.arguments, name=call.name,
                              **where),
                  self._event("response.output_item.done", output_index=len(self.items), item=item)]
        self.items.append(item)
        return events

    def stream_end(self, counts) -> list[bytes]:
        events = self._close()
        if not self.items:  # nothing was said: an empty message, as the non-streamed body has
            events += self._text("message", "") + self._close()
        final = self.response(self._status(self.finish_reason), self.items, counts)
        return events + [self._event("response.completed", response=final)]

    def stream_failure(self, error, counts) -> list[bytes]:
        failed = self.response("failed", self.items, counts, error={"code": error.code or "server_error",
                                                                     "message": error.message})
        return [self._event("response.failed", response=failed)]
