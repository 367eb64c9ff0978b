"""Response bodies and stream chunks in the OpenAI wire format (see shared/reference/openai-api.md)."""

from __future__ import annotations

import json


def usage(prompt_tokens: int, completion_tokens: int) -> dict:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


def sse(data: dict | str) -> bytes:
    payload = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return f"data: {payload}\n\n".encode()


SSE_DONE = sse("[DONE]")


class ChunkMaker:
    """Fields every chunk of one stream shares: the same id, created time and model throughout."""

    def __init__(self, request_id: str, created: int, model: str, chat: bool, include_usage: bool):
        self.request_id, self.created, self.model, self.chat = request_id, created, model, chat
        self.include_usage = include_usage

    def _chunk(self, choices: list[dict]) -> dict:
        chunk = {"id": self.request_id, "object": "chat.completion.chunk" if self.chat else "text_completion",
                 "created": self.created, "model": self.model, "choices": choices}
        if self.include_usage:
            chunk["usage"] = None
        return chunk

    def choice(self, index: int, text: str | None = None, finish_reason: str | None = None,
               role: bool = False) -> dict:
        if self.chat:
            delta = {"role": "assistant", "content": ""} if role else ({"content": text} if text else {})
            choice = {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        else:
            choice = {"index": index, "text": text or "", "logprobs": None, "finish_reason": finish_reason}
        return self._chunk([choice])

    def chat_piece(self, index: int, piece, first_call_index: int) -> list[dict]:
        """Chunks for one parsed piece of chat output: reasoning, content, then each tool call as two deltas
        (id, type and name with empty arguments; then the arguments), the way OpenAI streams them."""
        chunks = []
        if piece.reasoning:
            chunks.append(self._delta(index, {"reasoning_content": piece.reasoning}))
        if piece.content:
            chunks.append(self._delta(index, {"content": piece.content}))
        for offset, call in enumerate(piece.tool_calls):
            position = first_call_index + offset
            chunks.append(self._delta(index, {"tool_calls": [{"index": position, "id": call.id, "type": "function",
                                                             "function": {"name": call.name, "arguments": ""}}]}))
            chunks.append(self._delta(index, {"tool_calls": [{"index": position,
                                                             "function": {"arguments": call.arguments}}]}))
        return chunks

    def _delta(self, index: int, delta: dict) -> dict:
        return self._chunk([{"index": index, "delta": delta, "logprobs": None, "finish_reason": None}])

    def usage_chunk(self, prompt_tokens: int, completion_tokens: int) -> dict:
        chunk = self._chunk([])
        chunk["usage"] = usage(prompt_tokens, completion_tokens)
        return chunk


def chat_message(content: str, reasoning: str | None = None, tool_calls: list | None = None) -> dict:
    """The assistant message of a non-streamed choice. reasoning None: no reasoning split was asked for."""
    message = {"role": "assistant", "content": content if content or not tool_calls else None}
    if reasoning is not None:
        message["reasoning_content"] = reasoning or None
    if tool_calls:
        message["tool_calls"] = [call.as_message_part() for call in tool_calls]
    return message


def completion_body(request_id: str, created: int, model: str, chat: bool, outputs: list, reasons: list[str],
                    prompt_tokens: int, completion_tokens: int) -> dict:
    """A non-streamed response: chat.completion (outputs are messages) or text_completion (outputs are texts)."""
    key = "message" if chat else "text"
    return {
        "id": request_id, "object": "chat.completion" if chat else "text_completion", "created": created,
        "model": model,
        "choices": [{"index": i, key: output, "logprobs": None, "finish_reason": reason}
                    for i, (output, reason) in enumerate(zip(outputs, reasons))],
        "usage": usage(prompt_tokens, completion_tokens),
    }


class LogprobFormat:
    """Token logprobs in OpenAI's two shapes: chat ({"content": [{token, logprob, bytes, top_logprobs}]}) and
    legacy completions ({tokens, token_logprobs, top_logprobs, text_offset})."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer

    def _text(self, token: int) -> tuple[str, list[int]]:
        raw = self.tokenizer.token_bytes(token)
        return raw.decode("utf-8", errors="replace"), list(raw)

    def _entry(self, token: int, logprob: float) -> dict:
        text, raw = self._text(token)
        return {"token": text, "logprob": logprob, "bytes": raw}

    def chat(self, entries: list) -> dict:
        return {"content": [{**self._entry(e.token, e.logprob),
                             "top_logprobs": [self._entry(t, lp) for t, lp in e.top]} for e in entries]}

    def completion(self, entries: list, offset: int) -> tuple[dict, int]:
        """The legacy shape, with text offsets counted from `offset`; returns it and the offset after it."""
        out = {"tokens": [], "token_logprobs": [], "top_logprobs": [], "text_offset": []}
        for e in entries:
            text, _ = self._text(e.token)
            out["tokens"].append(text)
            out["token_logprobs"].append(e.logprob)
            out["top_logprobs"].append({self._text(t)[0]: lp for t, lp in e.top})
            out["text_offset"].append(offset)
            offset += len(text)
        return out, offset
