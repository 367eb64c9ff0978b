"""Response bodies and stream chunks in the OpenAI wire format: one renderer per endpoint (chat, completions)."""

from __future__ import annotations

import json


def usage(counts) -> dict:
    """Chat and completions usage from a generation.Usage; cached_tokens: prompt tokens whose KV came from the
    prefix cache instead of being computed."""
    return {"prompt_tokens": counts.prompt_tokens, "completion_tokens": counts.completion_tokens,
            "total_tokens": counts.prompt_tokens + counts.completion_tokens,
            "prompt_tokens_details": {"cached_tokens": counts.cached_tokens}}


def sse(data: dict | str) -> bytes:
    payload = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return f"data: {payload}\n\n".encode()


SSE_DONE = sse("[DONE]")


class Renderer:
    """One response's wire format: what every chunk of a stream shares (the same id, created time and model
    throughout), the usage chunk, and the non-streamed body. ChatRenderer and CompletionRenderer fill in what
    their endpoint's choices look like."""

    object_name = chunk_object = ""

    def __init__(self, request_id: str, created: int, model: str, include_usage: bool, choices: int,
                 logprobs: "LogprobFormat | None", prompts: list[list[int]] | None = None,
                 prompt_logprobs: "LogprobFormat | None" = None):
        self.request_id, self.created, self.model = request_id, created, model
        self.include_usage, self.logprobs = include_usage, logprobs
        self.choices = choices
        self.prompts = prompts  # each choice's prompt ids
        self.prompt_format = prompt_logprobs  # vLLM's `prompt_logprobs` field was asked for
        self.scored: list[list | None] = [None] * choices  # each choice's prompt logprobs, once they arrive

    def _chunk(self, choices: list[dict]) -> dict:
        chunk = {"id": self.request_id, "object": self.chunk_object, "created": self.created, "model": self.model,
                 "choices": choices}
        if self.include_usage:
            chunk["usage"] = None
        return chunk

    def usage_chunk(self, counts) -> dict:
        chunk = self._chunk([])
        chunk["usage"] = usage(counts)
        return chunk

    # -- the stream's framing (chat and completions: data-only SSE chunks, then [DONE]) --------------------------
    def stream_opening(self) -> list[bytes]:
        return [sse(chunk) for index in range(self.choices) for chunk in self.opening(index)]

    def stream_delta(self, index: int, piece, prompt_logprobs: list | None = None) -> list[bytes]:
        return [sse(chunk) for chunk in self.chunks(index, piece, prompt_logprobs)]

    def stream_end(self, counts) -> list[bytes]:
        return ([sse(self.usage_chunk(counts))] if self.include_usage else []) + [SSE_DONE]

    def stream_failure(self, error, counts) -> list[bytes]:
        """An error mid-stream: OpenAI's error body as a data event, then [DONE]."""
        return [sse(error.body()), SSE_DONE]

    def chunks(self, index: int, piece, prompt_logprobs: list | None = None) -> list[dict]:
        """The chunks for one piece of a choice's output (an output.OutputPiece): its text, then the finish chunk
        when it ends the choice; the piece's logprobs ride on its first chunk. The choice's first piece brings the
        prompt's logprobs when they were asked for (the echoed prompt with them, vLLM's prompt_logprobs field)."""
        opening = []
        if prompt_logprobs is not None:
            self.scored[index] = prompt_logprobs
            opening = self._scored_chunks(index)
        chunks = self._piece_chunks(index, piece)
        if piece.finish_reason:
            chunks.append(self._finish_chunk(index, piece.finish_reason))
        if self.logprobs is not None and piece.logprobs and chunks:
            chunks[0]["choices"][0]["logprobs"] = self._logprobs(index, piece.logprobs)
        chunks = opening + chunks
        if prompt_logprobs is not None and self.prompt_format is not None and chunks:
            self._attach_prompt_logprobs(chunks[0]["choices"][0], chunks[0], index)
        return chunks

    def _scored_chunks(self, index: int) -> list[dict]:
        return []

    def _attach_prompt_logprobs(self, choice: dict, response: dict, index: int) -> None:
        """vLLM puts prompt_logprobs on the choice (completions) or the response (chat)."""
        choice["prompt_logprobs"] = self._prompt_logprobs(index)

    def _prompt_logprobs(self, index: int) -> list | None:
        scored = self.scored[index]
        return None if scored is None else self.prompt_format.vllm_prompt(self.prompts[index], scored)

    def body(self, wholes: list, counts) -> dict:
        """The non-streamed response from each choice's whole output (OutputPieces accumulated)."""
        choices = []
        for index, whole in enumerate(wholes):
            choice = {"index": index, **self._output(index, whole), "logprobs": None,
                      "finish_reason": whole.finish_reason}
            if self.logprobs is not None:
                choice["logprobs"] = self._whole_logprobs(index, whole.logprobs)
            choices.append(choice)
        body = {"id": self.request_id, "object": self.object_name, "created": self.created, "model": self.model,
                "choices": choices, "usage": usage(counts)}
        if self.prompt_format is not None:
            for index in range(self.choices):
                self._attach_prompt_logprobs(choices[index], body, index)
        return body

    def _whole_logprobs(self, index: int, entries: list) -> dict:
        return self._logprobs(index, entries)


class ChatRenderer(Renderer):
    """chat.completion: the role chunk first, then reasoning_content / content / tool_calls deltas."""

    object_name, chunk_object = "chat.completion", "chat.completion.chunk"

    def __init__(self, *args, reasoning: bool, **kwargs):
        super().__init__(*args, **kwargs)
        self.reasoning = reasoning  # messages carry reasoning_content (a reasoning parser is on)
        self.calls_sent = [0] * self.choices  # tool calls streamed so far: the index of the next one

    def opening(self, index: int) -> list[dict]:
        return [self._delta(index, {"role": "assistant", "content": ""})]

    def _piece_chunks(self, index: int, piece) -> list[dict]:
        """Reasoning, content, then each tool call as two deltas (id, type and name with empty arguments; then
        the arguments), the way OpenAI streams them."""
        chunks = []
        if piece.reasoning:
            chunks.append(self._delta(index, {"reasoning_content": piece.reasoning}))
        if piece.content:
            chunks.append(self._delta(index, {"content": piece.content}))
        for call in piece.tool_calls:
            position = self.calls_sent[index]
            self.calls_sent[index] += 1
            chunks.append(self._delta(index, {"tool_calls": [{"index": position, "id": call.id, "type": "function",
                                                             "function": {"name": call.name, "arguments": ""}}]}))
            chunks.append(self._delta(index, {"tool_calls": [{"index": position,
                                                             "function": {"arguments": call.arguments}}]}))
        return chunks

    def _finish_chunk(self, index: int, reason: str) -> dict:
        return self._chunk([{"index": index, "delta": {}, "logprobs": None, "finish_reason": reason}])

    def _delta(self, index: int, delta: dict) -> dict:
        return self._chunk([{"index": index, "delta": delta, "logprobs": None, "finish_reason": None}])

    def _logprobs(self, index: int, entries: list) -> dict:
        return self.logprobs.chat(entries)

    def _attach_prompt_logprobs(self, choice: dict, response: dict, index: int) -> None:
        response["prompt_logprobs"] = self._prompt_logprobs(index)  # one prompt: on the response, as vLLM

    def _output(self, index: int, whole) -> dict:
        message = {"role": "assistant", "content": whole.content if whole.content or not whole.tool_calls else None}
        if self.reasoning:
            message["reasoning_content"] = whole.reasoning or None
        if whole.tool_calls:
            message["tool_calls"] = [call.as_message_part() for call in whole.tool_calls]
        return {"message": message}


class CompletionRenderer(Renderer):
    """text_completion: the echoed prompt first (echo), then text; legacy logprobs with text offsets."""

    object_name = chunk_object = "text_completion"

    def __init__(self, *args, echo_texts: list[str] | None, **kwargs):
        super().__init__(*args, **kwargs)
        self.echo_texts = echo_texts  # with echo: each choice's prompt text
        self.offsets = [len(echo_texts[i]) if echo_texts else 0 for i in range(self.choices)]  # next text_offset

    @property
    def _echo_scored(self) -> bool:
        """The echoed prompt carries its tokens' logprobs, so it is sent when they arrive."""
        return bool(self.echo_texts) and self.logprobs is not None

    def opening(self, index: int) -> list[dict]:
        return [self._text(index, self.echo_texts[index])] if self.echo_texts and not self._echo_scored else []

    def _scored_chunks(self, index: int) -> list[dict]:
        if not self._echo_scored:
            return []
        chunk = self._text(index, self.echo_texts[index])
        chunk["choices"][0]["logprobs"], self.offsets[index] = self.logprobs.prompt_completion(
            self.prompts[index], self.scored[index])
        return [chunk]

    def _whole_logprobs(self, index: int, entries: list) -> dict:
        """With echo, the prompt's tokens first (the first with no logprob), then the generated ones."""
        if not self._echo_scored or self.scored[index] is None:
            return self._logprobs(index, entries)
        prompt, self.offsets[index] = self.logprobs.prompt_completion(self.prompts[index], self.scored[index])
        generated = self._logprobs(index, entries)
        return {key: prompt[key] + generated[key] for key in prompt}

    def _piece_chunks(self, index: int, piece) -> list[dict]:
        return [self._text(index, piece.content)] if piece.content else []

    def _finish_chunk(self, index: int, reason: str) -> dict:
        return self._chunk([{"index": index, "text": "", "logprobs": None, "finish_reason": reason}])

    def _text(self, index: int, text: str) -> dict:
        return self._chunk([{"index": index, "text": text, "logprobs": None, "finish_reason": None}])

    def _logprobs(self, index: int, entries: list) -> dict:
        value, self.offsets[index] = self.logprobs.completion(entries, self.offsets[index])
        return value

    def _output(self, index: int, whole) -> dict:
        return {"text": (self.echo_texts[index] if self.echo_texts else "") + whole.content}


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

    def prompt_completion(self, prompt: list[int], scored: list) -> tuple[dict, int]:
        """The legacy shape for an echoed prompt: every prompt token, its logprob (None for the first: nothing
        predicts it) and top tokens, text offsets from 0; returns it and the offset after the prompt."""
        out = {"tokens": [], "token_logprobs": [], "top_logprobs": [], "text_offset": []}
        offset = 0
        for token, entry in zip(prompt, scored):
            text, _ = self._text(token)
            out["tokens"].append(text)
            out["token_logprobs"].append(None if entry is None else entry.logprob)
            out["top_logprobs"].append(None if entry is None else {self._text(t)[0]: lp for t, lp in entry.top})
            out["text_offset"].append(offset)
            offset += len(text)
        return out, offset

    def vllm_prompt(self, prompt: list[int], scored: list) -> list:
        """vLLM's prompt_logprobs: None for the first token, then {token id: {logprob, rank, decoded_token}} with
        the prompt token and the top ones."""
        out: list = []
        for token, entry in zip(prompt, scored):
            if entry is None:
                out.append(None)
                continue
            ranked = {token: (entry.logprob, entry.rank)}
            for rank, (t, lp) in enumerate(entry.top, start=1):
                ranked.setdefault(t, (lp, rank))
            out.append({str(t): {"logprob": lp, "rank": r, "decoded_token": self._text(t)[0]}
                        for t, (lp, r) in ranked.items()})
        return out

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
