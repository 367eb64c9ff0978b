"""Structured outputs in a request: response_format, vLLM's structured_outputs and its older guided_* names, each
read into one constraint (constraints.Answer) or a 400 naming the field."""

from __future__ import annotations

import json

from ..constraints import Answer, choice_answer, grammar_answer, json_answer, regex_answer
from .errors import bad_request


def _response_format(body: dict) -> Answer | None:
    """OpenAI's response_format: a JSON schema the answer follows (json_object: any object), or None for text."""
    value = body.get("response_format")
    if value is None:
        return None
    kind = value.get("type") if isinstance(value, dict) else None
    if kind == "text":
        return None
    if kind == "json_object":
        return json_answer({"type": "object"}, "response_format")
    if kind == "json_schema":
        spec = value.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, dict) else None
        if not isinstance(schema, dict):
            raise bad_request("`response_format.json_schema.schema` must be a JSON Schema object.", "response_format")
        return json_answer(schema, "response_format")
    raise bad_request("`response_format.type` must be \"text\", \"json_object\" or \"json_schema\".", "response_format")


# vLLM's structured outputs: `structured_outputs: {json | regex | choice | grammar | json_object}`, and the older
# top-level guided_* fields for the same. Whitespace options are accepted and moot (the JSON is always compact).
STRUCTURED_KINDS = ("json", "regex", "choice", "grammar", "json_object")
GUIDED_FIELDS = {"guided_json": "json", "guided_regex": "regex", "guided_choice": "choice",
                 "guided_grammar": "grammar"}
STRUCTURED_MOOT = {"disable_any_whitespace", "whitespace_pattern", "disable_fallback", "backend"}


def _structured(kind: str, value, param: str) -> Answer:
    try:
        if kind == "json":
            schema = json.loads(value) if isinstance(value, str) else value
            if not isinstance(schema, dict):
                raise ValueError("it must be a JSON Schema object (or its JSON text)")
            return json_answer(schema, param)
        if kind == "json_object":
            if value is not True:
                raise ValueError("it must be true")
            return json_answer({"type": "object"}, param)
        if kind == "choice":
            if not isinstance(value, list) or not value or not all(isinstance(c, str) and c for c in value):
                raise ValueError("it must be a non-empty list of non-empty strings")
            return choice_answer(value, param)
        if not isinstance(value, str) or not value:
            raise ValueError("it must be a non-empty string")
        return regex_answer(value, param) if kind == "regex" else grammar_answer(value, param)
    except (ValueError, RecursionError) as exc:
        raise bad_request(f"`{param}` cannot be used: {exc}", param) from None


def answer_of(body: dict) -> Answer | None:
    """What the answer must be: response_format, structured_outputs or a guided_* field (at most one)."""
    found = []
    answer = _response_format(body)
    if answer is not None:
        found.append(answer)
    options = body.get("structured_outputs")
    if options is not None:
        if not isinstance(options, dict):
            raise bad_request("`structured_outputs` must be an object.", "structured_outputs")
        for key, value in options.items():
            if key in STRUCTURED_KINDS:
                if value is not None and value is not False:
                    found.append(_structured(key, value, f"structured_outputs.{key}"))
            elif key not in STRUCTURED_MOOT and value not in (None, False):
                raise bad_request(f"`structured_outputs.{key}` is not supported by this server.", "structured_outputs")
    for name, kind in GUIDED_FIELDS.items():
        if body.get(name) is not None:
            found.append(_structured(kind, body[name], name))
    if len(found) > 1:
        raise bad_request(f"Give one constraint; this request has {len(found)} ({', '.join(a.param for a in found)}).",
                          found[1].param)
    return found[0] if found else None
