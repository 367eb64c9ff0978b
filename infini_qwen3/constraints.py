"""What a choice's output must look like, as one llguidance grammar.

A request constrains its *answer*: a JSON schema or json_object (response_format, structured_outputs.json), a
regex, a choice of strings, a Lark/GBNF grammar, or tool calls (tool_choice "required" or a named function, and
`strict` tools). Qwen3 may think first: with a reasoning block the grammar lets the block run freely (it cannot
close early, and "</think>" cannot be spelled as plain text) and constrains what follows it, as vLLM does with a
reasoning parser. Tool calls use Qwen3's own format, `<tool_call>\\n{"name": ..., "arguments": {...}}\\n</tool_call>`,
with <tool_call> and </tool_call> as the special tokens they are."""

from __future__ import annotations

import json
from dataclasses import dataclass

from .chat_output import DETECT, REASONING

# Structured outputs are compact JSON (no free whitespace: the model cannot pad forever); tool calls are written
# the way Qwen3's chat template renders them (json.dumps' separators), so the model continues its own format.
JSON_OPTIONS = {"whitespace_flexible": False}
CALL_OPTIONS = {"item_separator": ", ", "key_separator": ": ", "whitespace_flexible": False}

# Free text that does not spell a marker out of plain characters (the markers are single special tokens; the
# text parsers would otherwise see a marker the grammar did not).
THINK_TEXT = r"/(.|\n)*/ & ~/(.|\n)*<\/think>(.|\n)*/"
ANSWER_TEXT = r"/(.|\n)+/ & ~/(.|\n)*<tool_call>(.|\n)*/"
# Between </think> and the answer Qwen3 writes "\n\n"; bounded, so a weak model cannot fill its budget with it.
GAP = r"/[ \n]{0,3}/"


@dataclass(frozen=True)
class Answer:
    """The grammar of the answer: one llguidance grammar entry ({"lark_grammar": ...} or {"json_schema": ...}),
    the request parameter it comes from (named in errors), and the named grammars its Lark refers to (@name)."""

    entry: dict
    param: str
    side: tuple[tuple[str, dict], ...] = ()


# Keywords whose value is one subschema, or a list or map of subschemas (JSON Schema 2020-12 and draft 7).
SUBSCHEMA = ("items", "additionalItems", "contains", "not", "if", "then", "else", "propertyNames",
             "unevaluatedItems", "additionalProperties", "unevaluatedProperties")
SUBSCHEMA_LISTS = ("prefixItems", "anyOf", "oneOf")
SUBSCHEMA_MAPS = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")


def closed_schema(schema):
    """The schema with its objects and tuples closed, as OpenAI's strict structured outputs and xgrammar's strict
    mode (vLLM's default) read a schema: an object that lists properties (or patternProperties) and says nothing
    of others admits only those; an array with prefixItems and no `items` admits only those. An explicit
    additionalProperties / unevaluatedProperties / items keeps its meaning; an object that lists no properties
    stays any object ({"type": "object"}: json_object mode, free-form tool arguments). allOf branches are left open,
    since closing each would refuse the properties the other branches add. Returns a copy."""
    if not isinstance(schema, dict):
        return schema
    out = dict(schema)
    for key in SUBSCHEMA:
        if key in out:
            out[key] = closed_schema(out[key])
    for key in SUBSCHEMA_LISTS:
        if isinstance(out.get(key), list):
            out[key] = [closed_schema(s) for s in out[key]]
    for key in SUBSCHEMA_MAPS:
        if isinstance(out.get(key), dict):
            out[key] = {name: closed_schema(s) for name, s in out[key].items()}
    lists_properties = isinstance(out.get("properties"), dict) or isinstance(out.get("patternProperties"), dict)
    if lists_properties and "additionalProperties" not in out and "unevaluatedProperties" not in out:
        out["additionalProperties"] = False
    if isinstance(out.get("prefixItems"), list) and "items" not in out and "unevaluatedItems" not in out:
        out["items"] = False
    return out


def json_answer(schema: dict, param: str) -> Answer:
    schema = closed_schema(schema)
    guidance = {**schema.get("x-guidance", {}), **JSON_OPTIONS} if isinstance(schema.get("x-guidance"), dict) \
        else JSON_OPTIONS
    return Answer({"json_schema": {**schema, "x-guidance": guidance}}, param)


def regex_answer(regex: str, param: str) -> Answer:
    import llguidance

    compiled = json.loads(llguidance.grammar_from("regex", regex))["grammars"][0]
    return Answer({"lark_grammar": compiled["lark_grammar"]}, param)


def choice_answer(choices: list[str], param: str) -> Answer:
    return Answer({"lark_grammar": "start: " + " | ".join(json.dumps(c, ensure_ascii=False) for c in choices)},
                  param)


def grammar_answer(text: str, param: str) -> Answer:
    """A Lark grammar (llguidance's dialect) or a GBNF grammar (llama.cpp's, converted by llguidance)."""
    import llguidance

    return Answer({"lark_grammar": llguidance.grammar_from("grammar", text)}, param)


def _call_schema(tool: dict, enforce_arguments: bool) -> dict:
    function = tool["function"]
    arguments = closed_schema(function.get("parameters") or {"type": "object"}) if enforce_arguments \
        else {"type": "object"}
    return {"type": "object", "properties": {"name": {"const": function["name"]}, "arguments": arguments},
            "required": ["name", "arguments"], "additionalProperties": False, "x-guidance": CALL_OPTIONS}


def is_strict(tool: dict) -> bool:
    return tool["function"].get("strict") is True


def tool_calls_answer(tools: list[dict], tool_choice: str | dict, alternative: Answer | None = None) -> Answer | None:
    """The answer under tool_choice. "required": one or more calls of the tools, arguments following their
    parameter schemas; a named function: exactly one call of it; "auto": free text and calls, constrained only
    when a tool is `strict` (its arguments follow its schema, other tools' arguments are any object) or when
    `alternative` (a response_format) constrains the text instead. None: nothing to constrain."""
    if isinstance(tool_choice, dict):
        name = tool_choice["function"]["name"]
        tools = [t for t in tools if t["function"]["name"] == name]
    elif tool_choice == "auto" and alternative is None and not any(is_strict(t) for t in tools):
        return None
    enforce_all = tool_choice != "auto"
    calls = [f"call_{i}: %json {json.dumps(_call_schema(t, enforce_all or is_strict(t)), ensure_ascii=False)}"
             for i, t in enumerate(tools)]
    lines = ["call: " + " | ".join(f"call_{i}" for i in range(len(tools))), *calls,
             'block: <tool_call> "\\n" call "\\n" </tool_call>']
    if isinstance(tool_choice, dict):
        lines.insert(0, "start: block")
    elif tool_choice == "required":
        lines.insert(0, 'start: block ("\\n" block)*')
    elif alternative is not None:
        lines.insert(0, 'start: @alternative | block ("\\n" block)*')
    else:
        lines += [f"TEXT: {ANSWER_TEXT}"]
        lines.insert(0, 'start: TEXT | TEXT? block ("\\n" block)* TEXT?')
    side = (("alternative", alternative.entry),) if alternative is not None and tool_choice == "auto" else ()
    return Answer({"lark_grammar": "\n".join(lines) + "\n"}, "tools", side)


def grammar_for(answer: Answer, reasoning_state: str | None) -> str:
    """The whole output's llguidance grammar: the answer, after a reasoning block when the prompt leaves one
    open (REASONING) or lets the model open one (DETECT)."""
    if reasoning_state == REASONING:
        top = f"start: THINK </think> GAP @answer\nTHINK: {THINK_TEXT}\nGAP: {GAP}\n"
    elif reasoning_state == DETECT:
        top = f"start: (<think> THINK </think> GAP)? @answer\nTHINK: {THINK_TEXT}\nGAP: {GAP}\n"
    else:
        top = "start: @answer\n"
    grammars = [{"name": "top", "lark_grammar": top}, {"name": "answer", **answer.entry}]
    grammars += [{"name": name, **entry} for name, entry in answer.side]
    return json.dumps({"grammars": grammars}, ensure_ascii=False)
