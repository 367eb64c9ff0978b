"""The grammars of constraints.py on the real Qwen3 tokenizer: what each constraint lets through and what it stops,
including the reasoning block before the answer and Qwen3's tool-call format."""

from __future__ import annotations

import llguidance
import pytest

from infini_qwen3.chat_output import CONTENT, DETECT, REASONING
from infini_qwen3.constraints import (
    choice_answer,
    grammar_answer,
    grammar_for,
    json_answer,
    regex_answer,
    tool_calls_answer,
)

IM_END = 151645
LOOKUP = {"type": "function", "function": {"name": "lookup", "parameters": {
    "type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"], "additionalProperties": False}}}
ADD = {"type": "function", "function": {"name": "add", "strict": True, "parameters": {
    "type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"], "additionalProperties": False}}}
OBJECT_X = json_answer({"type": "object", "properties": {"x": {"type": "integer"}}, "required": ["x"],
                        "additionalProperties": False}, "response_format")


def call(name: str, arguments: str) -> str:
    return f'<tool_call>\n{{"name": "{name}", "arguments": {arguments}}}\n</tool_call>'


@pytest.fixture(scope="module")
def ll_tokenizer(tokenizer):
    return llguidance.LLTokenizer(tokenizer.fast.to_str(), n_vocab=151936, eos_token=[IM_END])


def accepts(ll_tokenizer, tokenizer, grammar: str, text: str, complete: bool = True) -> bool:
    """The grammar takes the text's tokens (and, when `complete`, may end after them)."""
    matcher = llguidance.LLMatcher(ll_tokenizer, grammar)
    assert not matcher.is_error(), matcher.get_error()
    tokens = tokenizer.encode(text)
    return matcher.try_consume_tokens(tokens) == len(tokens) and (matcher.is_accepting() or not complete)


CASES = [
    ("json, no reasoning", grammar_for(OBJECT_X, CONTENT), '{"x":12}', True),
    ("json is compact", grammar_for(OBJECT_X, CONTENT), '{"x": 12}', False),
    ("json after an open reasoning block", grammar_for(OBJECT_X, REASONING), 'so</think>\n\n{"x":1}', True),
    ("the model may think first", grammar_for(OBJECT_X, DETECT), '<think>\nhm</think>\n\n{"x":1}', True),
    ("or answer at once", grammar_for(OBJECT_X, DETECT), '{"x":1}', True),
    ("no free text instead of the answer", grammar_for(OBJECT_X, REASONING), 'so</think>\n\nhello', False),
    ("required: one call", grammar_for(tool_calls_answer([LOOKUP, ADD], "required"), CONTENT),
     call("lookup", '{"q": "x"}'), True),
    ("required: two calls", grammar_for(tool_calls_answer([LOOKUP, ADD], "required"), CONTENT),
     call("lookup", '{"q": "x"}') + "\n" + call("add", '{"a": 3}'), True),
    ("required: arguments follow the schema", grammar_for(tool_calls_answer([LOOKUP, ADD], "required"), CONTENT),
     call("add", '{"a": "3"}'), False),
    ("required: no text", grammar_for(tool_calls_answer([LOOKUP, ADD], "required"), CONTENT), "Sure.", False),
    ("named: that function", grammar_for(tool_calls_answer([LOOKUP, ADD], {"function": {"name": "add"}}), CONTENT),
     call("add", '{"a": 3}'), True),
    ("named: not another", grammar_for(tool_calls_answer([LOOKUP, ADD], {"function": {"name": "add"}}), CONTENT),
     call("lookup", '{"q": "x"}'), False),
    ("auto + strict: text then a call", grammar_for(tool_calls_answer([LOOKUP, ADD], "auto"), DETECT),
     "Let me add.\n\n" + call("add", '{"a": 3}'), True),
    ("auto + strict: strict arguments checked", grammar_for(tool_calls_answer([LOOKUP, ADD], "auto"), CONTENT),
     call("add", '{"b": 3}'), False),
    ("auto + strict: other tools take any object", grammar_for(tool_calls_answer([LOOKUP, ADD], "auto"), CONTENT),
     call("lookup", '{"other": [1]}'), True),
    ("auto + response_format: the JSON", grammar_for(tool_calls_answer([LOOKUP], "auto", OBJECT_X), CONTENT),
     '{"x":5}', True),
    ("auto + response_format: or calls", grammar_for(tool_calls_answer([LOOKUP], "auto", OBJECT_X), CONTENT),
     call("lookup", '{"q": "x"}'), True),
    ("regex", grammar_for(regex_answer(r"\d{3}-[a-z]+/x", "r"), CONTENT), "123-abc/x", True),
    ("regex refuses", grammar_for(regex_answer(r"\d{3}", "r"), CONTENT), "12a", False),
    ("choice", grammar_for(choice_answer(["是", "no"], "c"), CONTENT), "是", True),
    ("choice refuses", grammar_for(choice_answer(["是", "no"], "c"), CONTENT), "maybe", False),
    ("GBNF", grammar_for(grammar_answer('root ::= "yes" | "no"', "g"), CONTENT), "no", True),
    ("Lark", grammar_for(grammar_answer('start: "a" /[0-9]+/', "g"), CONTENT), "a12", True),
]


@pytest.mark.parametrize("name, grammar, text, accepted", CASES, ids=[c[0] for c in CASES])
def test_constraint(ll_tokenizer, tokenizer, name, grammar, text, accepted):
    assert accepts(ll_tokenizer, tokenizer, grammar, text) == accepted


def test_auto_without_strict_tools_is_not_constrained():
    assert tool_calls_answer([LOOKUP], "auto") is None


def test_reasoning_cannot_spell_the_closing_tag_as_plain_text(ll_tokenizer, tokenizer):
    """"</think>" written with ordinary tokens would end the reasoning for the text parser but not for the grammar."""
    matcher = llguidance.LLMatcher(ll_tokenizer, grammar_for(OBJECT_X, REASONING))
    spelled = [t for piece in ("</", "think", ">") for t in tokenizer.encode(piece)]
    assert tokenizer.decode(spelled) == "</think>"
    assert matcher.try_consume_tokens(spelled) < len(spelled)


def test_reasoning_cannot_end_the_answer(ll_tokenizer, tokenizer):
    matcher = llguidance.LLMatcher(ll_tokenizer, grammar_for(OBJECT_X, REASONING))
    matcher.consume_tokens(tokenizer.encode("thinking"))
    assert not matcher.is_accepting()


def test_objects_that_list_properties_are_closed_unless_they_say_otherwise():
    from infini_qwen3.constraints import closed_schema

    person = {"type": "object", "properties": {"name": {"type": "string"},
                                               "pets": {"type": "array", "items": {"type": "object", "properties": {
                                                   "kind": {"type": "string"}}}}},
              "$defs": {"Tag": {"type": "object", "properties": {"t": {"type": "string"}}}},
              "anyOf": [{"type": "object", "properties": {"x": {}}}]}
    closed = closed_schema(person)
    assert closed["additionalProperties"] is False
    assert closed["properties"]["pets"]["items"]["additionalProperties"] is False
    assert closed["$defs"]["Tag"]["additionalProperties"] is False
    assert closed["anyOf"][0]["additionalProperties"] is False
    assert "additionalProperties" not in person, "the request's schema is not changed"
    assert closed_schema({"type": "object"}) == {"type": "object"}, "no properties listed: any object"
    assert closed_schema({"type": "object", "properties": {}, "additionalProperties": True})["additionalProperties"]
    assert closed_schema({"properties": {"a": {}}, "additionalProperties": {"type": "integer"}})[
        "additionalProperties"] == {"type": "integer"}
    assert closed_schema({"type": "array", "prefixItems": [{"type": "integer"}]})["items"] is False
    both = {"allOf": [{"type": "object", "properties": {"a": {}}}, {"type": "object", "properties": {"b": {}}}]}
    assert closed_schema(both) == both, "allOf branches stay open"


PERSON = {"properties": {"name": {"title": "Name", "type": "string", "maxLength": 8},
                         "age": {"title": "Age", "type": "integer", "minimum": 0, "maximum": 150}},
          "required": ["name", "age"], "title": "Person", "type": "object"}  # pydantic's, as instructor sends it
OPEN_TOOL = {"type": "function", "function": {"name": "person", "parameters": PERSON}}


@pytest.mark.parametrize("grammar", [grammar_for(json_answer(PERSON, "response_format"), CONTENT),
                                     grammar_for(tool_calls_answer([OPEN_TOOL], "required"), CONTENT)],
                         ids=["response_format", "tool parameters"])
def test_a_schema_without_additional_properties_admits_no_other_key(ll_tokenizer, tokenizer, grammar):
    body = '{"name":"Ann","age":30' if "tool_call" not in grammar else '{"name": "Ann", "age": 30'
    wrap = (lambda args: call("person", args)) if "tool_call" in grammar else (lambda args: args)
    assert accepts(ll_tokenizer, tokenizer, grammar, wrap(body + "}"))
    extra = ',"x":1}' if "tool_call" not in grammar else ', "x": 1}'
    assert not accepts(ll_tokenizer, tokenizer, grammar, wrap(body + extra))
    assert accepts(ll_tokenizer, tokenizer, grammar_for(json_answer({"type": "object"}, "response_format"), CONTENT),
                   '{"anything":[1,2]}'), "json_object stays any object"
