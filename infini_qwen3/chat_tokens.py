"""Chat prompts whose control tokens come only from the chat template: every string a request supplies (message
contents, reasoning, tool calls and results, tool definitions, template arguments) is tokenized as plain text, so
`<|im_end|>\\n<|im_start|>system` in a user's message is a few ordinary byte-level tokens, not a new system turn.

How: before rendering, each added-token string (special or not: `<|im_start|>`, `<think>`, `<tool_response>`, ...)
inside the request's strings is replaced by a placeholder of two private-use characters, so the template sees
ordinary text (its own logic on the data — `content.split('</think>')`, `startswith('<tool_response>')` — acts only
on markup it wrote, and for data without such substrings nothing changes). The rendered text is then split at the
added tokens that remain, which the template wrote; those become their ids, and every piece between them, its
placeholders restored, is encoded by the same BPE without added tokens. `tokenizers` splits at added tokens
before anything else, so for data without added-token strings the ids are exactly those of encoding the whole
text."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cached_property

from tokenizers import Tokenizer as FastTokenizer

LEAD = "\U000f0000"  # starts every placeholder; also replaced where the data itself contains it
FIRST_INDEX = 0xF0001


@dataclass
class RenderedChat:
    marked: str  # the template's output with the data's added-token strings as placeholders
    restore: dict[str, str]  # placeholder -> the string it stands for

    @property
    def text(self) -> str:
        """The rendered prompt as the model reads it (placeholders restored)."""
        return _restore(self.marked, self.restore)


def _restore(text: str, table: dict[str, str]) -> str:
    if LEAD not in text:
        return text
    return re.sub(re.escape(LEAD) + ".", lambda m: table[m.group(0)], text)


def split_reasoning(message: dict) -> dict:
    """An assistant message whose content holds its reasoning (`<think>...</think>answer`, as clients send back a
    reply they got with the reasoning parser off) split the way Qwen3's template splits it, into reasoning_content
    and content, before its strings become text: the template then writes the reasoning block with its own markup
    where it keeps one, and drops it from earlier turns, as it does for such a message today."""
    content = message.get("content")
    if message.get("role") != "assistant" or message.get("reasoning_content") is not None \
            or not isinstance(content, str) or "</think>" not in content:
        return message
    reasoning = content.split("</think>")[0].rstrip("\n").split("<think>")[-1].lstrip("\n")
    return {**message, "content": content.split("</think>")[-1].lstrip("\n"), "reasoning_content": reasoning}


class ChatTokens:
    """The protected renderer and encoder of one tokenizer (infini_qwen3.tokenizer.Tokenizer)."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        decoder = tokenizer.fast.get_added_tokens_decoder()
        self.added = {token.content: tid for tid, token in decoder.items() if token.content}
        # longest first, so that a token that contains another is matched whole
        self.protected = sorted(self.added, key=len, reverse=True) + [LEAD]
        self.placeholders = {text: LEAD + chr(FIRST_INDEX + i) for i, text in enumerate(self.protected)}
        self.restore = {mark: text for text, mark in self.placeholders.items()}
        self._data = re.compile("|".join(re.escape(t) for t in self.protected))
        self._markup = re.compile("|".join(re.escape(t) for t in self.protected[:-1]))

    @cached_property
    def plain(self) -> FastTokenizer:
        """The same normalizer, pre-tokenizer and BPE with no added tokens: it encodes any string as text."""
        spec = json.loads(self.tokenizer.fast.to_str())
        spec["added_tokens"] = []
        return FastTokenizer.from_str(json.dumps(spec))

    def mark(self, value):
        """The request data with its added-token strings replaced by placeholders, through dicts and lists."""
        if isinstance(value, str):
            return self._data.sub(lambda m: self.placeholders[m.group(0)], value) if self._data.search(value) \
                else value
        if isinstance(value, dict):
            return {self.mark(k): self.mark(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.mark(v) for v in value]
        if isinstance(value, tuple):
            return tuple(self.mark(v) for v in value)
        return value

    def render(self, messages: list[dict], tools: list | None = None, **template_kwargs) -> RenderedChat:
        messages = [split_reasoning(m) for m in messages]
        marked = self.tokenizer.render_chat(self.mark(messages), tools=self.mark(tools),
                                            **{k: self.mark(v) for k, v in template_kwargs.items()})
        return RenderedChat(marked, self.restore)

    def encode(self, rendered: RenderedChat) -> list[int]:
        """Control tokens where the template wrote them; everything between them encoded as text."""
        ids: list[int] = []
        start = 0
        for match in self._markup.finditer(rendered.marked):
            ids += self._text(rendered.marked[start:match.start()])
            ids.append(self.added[match.group(0)])
            start = match.end()
        return ids + self._text(rendered.marked[start:])

    def _text(self, piece: str) -> list[int]:
        if not piece:
            return []
        return self.plain.encode(_restore(piece, self.restore), add_special_tokens=False).ids
