"""Qwen3's chat output, split the way vLLM's `--reasoning-parser qwen3` and `--tool-call-parser hermes` do:
text inside <think>...</think> is reasoning_content, <tool_call>{json}</tool_call> blocks become tool_calls,
the rest is content. Both parsers work on streamed text pieces and give the same result for any chunking of
the same text; a marker split across pieces is held back until it is decided, so tags never leak."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field

from .textmatch import partial_suffix_length

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
CALL_OPEN, CALL_CLOSE = "<tool_call>", "</tool_call>"
DETECT, REASONING, CONTENT = "detect", "reasoning", "content"


def reasoning_state_after(prompt_text: str) -> str:
    """Where generation starts, from the prompt's last assistant turn: inside an open think block (templates
    that put <think> in the prompt), after a closed one (enable_thinking=false: all output is content), or
    not yet known (the model may open a block itself)."""
    turn = prompt_text.rsplit("<|im_start|>assistant", 1)[-1]
    if THINK_OPEN in turn and THINK_CLOSE not in turn.rsplit(THINK_OPEN, 1)[-1]:
        return REASONING
    return CONTENT if THINK_CLOSE in turn else DETECT


class ReasoningSplitter:
    """push(text) -> (reasoning, content). Newlines right inside the tags and right after </think> are dropped,
    as Qwen3 writes "<think>\\n...\\n</think>\\n\\n"."""

    def __init__(self, state: str = DETECT):
        self.state = state
        self.held = ""
        self.trim_next = state != DETECT  # drop newlines at the start of the next reasoning/content text

    def push(self, text: str) -> tuple[str, str]:
        reasoning, content = "", ""
        buffer, self.held = self.held + text, ""
        while buffer:
            if self.state == DETECT:
                if buffer.startswith(THINK_OPEN):
                    buffer, self.state, self.trim_next = buffer[len(THINK_OPEN):], REASONING, True
                elif THINK_OPEN.startswith(buffer):
                    self.held, buffer = buffer, ""
                else:
                    self.state = CONTENT
            elif self.state == REASONING:
                end = buffer.find(THINK_CLOSE)
                if end >= 0:
                    reasoning += self._trimmed(buffer[:end].rstrip("\n"))
                    buffer, self.state, self.trim_next = buffer[end + len(THINK_CLOSE):], CONTENT, True
                    continue
                keep = partial_suffix_length(buffer, [THINK_CLOSE])
                keep += len(buffer[:len(buffer) - keep]) - len(buffer[:len(buffer) - keep].rstrip("\n"))
                self.held, buffer = buffer[len(buffer) - keep:], buffer[:len(buffer) - keep]
                reasoning += self._trimmed(buffer)
                buffer = ""
            else:
                content += self._trimmed(buffer)
                buffer = ""
        return reasoning, content

    def flush(self) -> tuple[str, str]:
        """The end: a think block that never closed keeps its text as reasoning."""
        held, self.held = self.held, ""
        if self.state == REASONING:
            return self._trimmed(held), ""
        return "", held

    def _trimmed(self, text: str) -> str:
        if self.trim_next:
            stripped = text.lstrip("\n")
            if stripped:
                self.trim_next = False
            return stripped
        return text


@dataclass
class ToolCall:
    name: str
    arguments: str  # a JSON object, as a string (OpenAI's wire format)
    id: str = field(default_factory=lambda: f"call_{uuid.uuid4().hex[:24]}")

    def as_message_part(self) -> dict:
        return {"id": self.id, "type": "function", "function": {"name": self.name, "arguments": self.arguments}}


def parse_tool_call(body: str) -> ToolCall | None:
    """The JSON inside one <tool_call> block, or None when it is not {"name": str, "arguments": object}."""
    try:
        call = json.loads(body)
    except (json.JSONDecodeError, RecursionError):
        return None
    if not isinstance(call, dict) or not isinstance(call.get("name"), str) or not call["name"]:
        return None
    arguments = call.get("arguments", {})
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except json.JSONDecodeError:
            return None
    if not isinstance(arguments, dict):
        return None
    return ToolCall(call["name"], json.dumps(arguments, ensure_ascii=False))


class ToolCallParser:
    """push(content) -> (content, tool calls). A block whose JSON is not a call stays content, verbatim;
    whitespace around tool calls is dropped."""

    def __init__(self):
        self.held = ""  # a possible start of <tool_call>, or a whole block waiting for </tool_call>
        self.pending_space = ""  # trailing whitespace: content only if more content follows
        self.calls = 0
        self.after_call = False

    def push(self, text: str) -> tuple[str, list[ToolCall]]:
        content, calls = "", []
        buffer, self.held = self.held + text, ""
        while buffer:
            start = buffer.find(CALL_OPEN)
            if start < 0:
                keep = partial_suffix_length(buffer, [CALL_OPEN])
                content += self._content(buffer[:len(buffer) - keep])
                self.held = buffer[len(buffer) - keep:]
                break
            content += self._content(buffer[:start])
            end = buffer.find(CALL_CLOSE, start)
            if end < 0:
                self.held = buffer[start:]
                break
            block = buffer[start:end + len(CALL_CLOSE)]
            buffer = buffer[end + len(CALL_CLOSE):]
            call = parse_tool_call(block[len(CALL_OPEN):-len(CALL_CLOSE)].strip())
            if call is None:
                content += self._content(block)
            else:
                self.pending_space, self.after_call = "", True
                self.calls += 1
                calls.append(call)
        return content, calls

    def flush(self) -> str:
        """The end: an unclosed block is content; whitespace after the last word is kept only when there were
        no tool calls (then content is the text exactly)."""
        held, self.held = self.held, ""
        out = self._content(held)
        tail, self.pending_space = self.pending_space, ""
        return out + ("" if self.calls else tail)

    def _content(self, text: str) -> str:
        """Trailing whitespace waits for what follows (a word: it is content; a call: it is separation);
        whitespace right after a call is separation too."""
        combined = self.pending_space + text
        body = combined.rstrip()
        self.pending_space = combined[len(body):]
        if body and self.after_call:
            body, self.after_call = body.lstrip(), False
        return body


@dataclass
class ChatPiece:
    reasoning: str = ""
    content: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.reasoning or self.content or self.tool_calls)


class ChatOutput:
    """One chat choice's output parser: reasoning split (optional), then tool calls (when tools were given)."""

    def __init__(self, reasoning_state: str | None, parse_tools: bool):
        self.reasoning = ReasoningSplitter(reasoning_state) if reasoning_state else None
        self.tools = ToolCallParser() if parse_tools else None

    def push(self, text: str) -> ChatPiece:
        reasoning, content = self.reasoning.push(text) if self.reasoning else ("", text)
        return self._content_piece(reasoning, content, final=False)

    def flush(self) -> ChatPiece:
        reasoning, content = self.reasoning.flush() if self.reasoning else ("", "")
        return self._content_piece(reasoning, content, final=True)

    def feed(self, text: str, final: bool) -> list[ChatPiece]:
        """The non-empty pieces for one text delta; the last delta of the choice also flushes what was held."""
        pieces = [self.push(text), self.flush() if final else ChatPiece()]
        return [piece for piece in pieces if piece]

    def _content_piece(self, reasoning: str, content: str, final: bool) -> ChatPiece:
        if self.tools is None:
            return ChatPiece(reasoning, content)
        content, calls = self.tools.push(content)
        if final:
            content += self.tools.flush()
        return ChatPiece(reasoning, content, calls)

    @property
    def called_tools(self) -> bool:
        return self.tools is not None and self.tools.calls > 0
