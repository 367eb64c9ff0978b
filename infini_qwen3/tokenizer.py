"""The checkpoint's tokenizer (tokenizer.json through `tokenizers`) and its chat template (Jinja, rendered
the way transformers renders it: trim_blocks, lstrip_blocks, a sandbox, `tojson` without ASCII escaping)."""

from __future__ import annotations

import functools
import json
from functools import cached_property
from pathlib import Path

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment
from tokenizers import Tokenizer as FastTokenizer

DEFAULT_TEMPLATE = Path(__file__).parent / "resources" / "qwen3_chat_template.jinja"


class TokenizerError(ValueError):
    pass


class TemplateError(ValueError):
    """The chat template refused the messages (raise_exception) or failed to render."""


def _raise_exception(message: str):
    raise TemplateError(message)


def _tojson(value, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


@functools.cache
def _byte_decoder() -> dict[str, int]:
    """Byte-level BPE's printable stand-ins for the 256 byte values (GPT-2's table), inverted."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    chars, extra = {}, 0
    for byte in range(256):
        if byte in printable:
            chars[chr(byte)] = byte
        else:
            chars[chr(256 + extra)] = byte
            extra += 1
    return chars


# Qwen3's reasoning and tool-call delimiters (single added tokens).
DELIMITERS = ("<think>", "</think>", "<tool_call>", "</tool_call>")


class Tokenizer:
    def __init__(self, fast: FastTokenizer, chat_template: str, config: dict):
        self.fast = fast
        self.chat_template = chat_template
        self.config = config
        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                            extensions=["jinja2.ext.loopcontrols"])
        env.filters["tojson"] = _tojson
        env.globals["raise_exception"] = _raise_exception
        try:
            self._template = env.from_string(chat_template)
        except jinja2.TemplateSyntaxError as exc:
            raise TokenizerError(f"the chat template does not parse: {exc}") from exc

    @classmethod
    def from_dir(cls, model_dir: str | Path) -> "Tokenizer":
        model_dir = Path(model_dir)
        path = model_dir / "tokenizer.json"
        if not path.is_file():
            raise TokenizerError(f"{path} not found: a Qwen3 checkpoint ships tokenizer.json")
        fast = FastTokenizer.from_file(str(path))
        config_path = model_dir / "tokenizer_config.json"
        config = json.loads(config_path.read_text()) if config_path.is_file() else {}
        template = config.get("chat_template")
        if isinstance(template, list):  # named templates: take the default one
            template = next((t["template"] for t in template if t.get("name") == "default"), None)
        if template is None and (model_dir / "chat_template.jinja").is_file():
            template = (model_dir / "chat_template.jinja").read_text()
        if template is None:
            template = DEFAULT_TEMPLATE.read_text()
        return cls(fast, template, config)

    @property
    def vocab_size(self) -> int:
        return self.fast.get_vocab_size(with_added_tokens=True)

    def token_id(self, token: str) -> int | None:
        return self.fast.token_to_id(token)

    @cached_property
    def special_ids(self) -> frozenset[int]:
        return frozenset(t_id for t_id, tok in self.fast.get_added_tokens_decoder().items() if tok.special)

    @cached_property
    def delimiter_ids(self) -> frozenset[int]:
        """The reasoning and tool-call delimiters, by id: Qwen's own tokenizer.json marks them non-special, some
        converted checkpoints mark them special; either way the output parsers must see them."""
        ids = (self.token_id(text) for text in DELIMITERS)
        return frozenset(i for i in ids if i is not None)

    @cached_property
    def hidden_ids(self) -> frozenset[int]:
        """Special tokens that stay out of generated text (<|im_end|> and the like), the delimiters excepted."""
        return self.special_ids - self.delimiter_ids

    def encode(self, text: str) -> list[int]:
        """Plain text to ids; special-token text in it becomes the special token, no BOS is added (Qwen)."""
        return self.fast.encode(text, add_special_tokens=False).ids

    @cached_property
    def max_token_bytes(self) -> int:
        """Bytes of the longest token: a text of B bytes has at least B / max_token_bytes tokens."""
        return max(1, max(len(self.token_bytes(i)) for i in range(self.fast.get_vocab_size())))

    def token_bytes(self, token_id: int) -> bytes:
        """The exact bytes of one token (a byte-level BPE piece may hold part of a UTF-8 character)."""
        piece = self.fast.id_to_token(token_id)
        if piece is None:
            return b""
        if token_id in self._added_ids:
            return piece.encode()
        decoder = _byte_decoder()
        if all(ch in decoder for ch in piece):
            return bytes(decoder[ch] for ch in piece)
        return piece.encode()

    @cached_property
    def _added_ids(self) -> frozenset[int]:
        return frozenset(self.fast.get_added_tokens_decoder())

    def decode(self, ids: list[int], skip_special_tokens: bool = False) -> str:
        return self.fast.decode(list(ids), skip_special_tokens=skip_special_tokens)

    def render_chat(self, messages: list[dict], add_generation_prompt: bool = True, tools: list | None = None,
                    **template_kwargs) -> str:
        try:
            return self._template.render(messages=messages, add_generation_prompt=add_generation_prompt,
                                         tools=tools, **template_kwargs)
        except TemplateError:
            raise
        except (jinja2.TemplateError, TypeError, AttributeError, KeyError, IndexError) as exc:
            raise TemplateError(f"the chat template failed on these messages: {exc}") from exc

    @cached_property
    def chat_tokens(self):
        from .chat_tokens import ChatTokens

        return ChatTokens(self)

    def encode_chat(self, messages: list[dict], special_tokens: str = "text", **kwargs) -> list[int]:
        """The chat's prompt ids. special_tokens "text": control tokens only where the template writes them, the
        request's strings always text (chat_tokens.py); "parse": the rendered text encoded as a whole, so
        control-token strings in the data become control tokens too."""
        if special_tokens == "parse":
            return self.encode(self.render_chat(messages, **kwargs))
        return self.chat_tokens.encode(self.chat_tokens.render(messages, **kwargs))
