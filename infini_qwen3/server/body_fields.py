"""A request body as JSON, and typed readers of its fields: every malformed field is a 400 in OpenAI's error shape
naming the field (`param`); nothing a client sends can raise anything else."""

from __future__ import annotations

import json
import math
import re

from .errors import bad_request

LONE_SURROGATE = re.compile("[\ud800-\udfff]")
ASCII_INTEGER = re.compile(r"[0-9]+")


def parse_json(raw: bytes) -> dict:
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise bad_request(f"The body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise bad_request("The body must be a JSON object.")
    _refuse_lone_surrogates(body)
    return body


def _refuse_lone_surrogates(body: dict) -> None:
    """JSON's \\uD800-\\uDFFF escapes decode to lone surrogates, which no UTF-8 text (and no tokenizer) accepts."""
    pending = [body]
    while pending:
        value = pending.pop()
        if isinstance(value, dict):
            pending += value.keys()
            pending += value.values()
        elif isinstance(value, list):
            pending += value
        # isascii is one fast pass: a megabyte prompt of plain text skips the regex scan, which holds the GIL
        elif isinstance(value, str) and not value.isascii() and LONE_SURROGATE.search(value):
            raise bad_request("The body contains a lone UTF-16 surrogate (\\ud800-\\udfff): not valid Unicode.")


# -- typed field readers ----------------------------------------------------------------------------------------
def is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def number(body: dict, name: str, low: float, high: float, *, low_open: bool = False) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    if not (is_int(value) or isinstance(value, float)) or not math.isfinite(value):
        raise bad_request(f"`{name}` must be a number.", name)
    if value < low or value > high or (low_open and value == low):
        interval = f"{'(' if low_open else '['}{low:g}, {high:g}]"
        raise bad_request(f"`{name}` must be in {interval}; got {value}.", name)
    return float(value)


def integer(body: dict, name: str, low: int, high: int | None = None) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if not is_int(value):
        raise bad_request(f"`{name}` must be an integer.", name)
    if value < low or (high is not None and value > high):
        bound = f"at least {low}" if high is None else f"between {low} and {high}"
        raise bad_request(f"`{name}` must be {bound}; got {value}.", name)
    return value


def boolean(body: dict, name: str, default: bool = False) -> bool:
    value = body.get(name)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise bad_request(f"`{name}` must be true or false.", name)
    return value


def model_name(body: dict) -> str | None:
    value = body.get("model")
    if value is not None and not isinstance(value, str):
        raise bad_request("`model` must be a string.", "model")
    return value


def token_ids(value, name: str) -> list[int]:
    if not isinstance(value, list) or not all(is_int(t) and t >= 0 for t in value):
        raise bad_request(f"`{name}` must be a list of non-negative token ids.", name)
    return value
