"""Structured outputs on the demo checkpoint (random weights, sampled at temperature 1.0): every answer constrained
by response_format parses and validates against its schema, streamed and not; vLLM's structured_outputs (json,
regex, choice, grammar) and guided_* fields hold; tool_choice "required" and named functions give arguments that
validate against the tool's schema; with thinking on, the constraint starts after the reasoning block; openai's
chat.completions.parse() returns the parsed object; a constraint the grammar engine cannot compile is a 400."""

from __future__ import annotations

import json
import re

import jsonschema
import pydantic
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .conftest import MODEL
from .server_process import ServerProcess
from .test_errors import assert_openai_error

NO_THINKING = {"chat_template_kwargs": {"enable_thinking": False}}  # constrained from the first token
THINK_OPEN, THINK_CLOSE = 151667, 151668

PERSON = {"type": "object", "properties": {"name": {"type": "string", "maxLength": 12},
                                           "age": {"type": "integer", "minimum": 0, "maximum": 150},
                                           "tags": {"type": "array", "items": {"enum": ["a", "b", "c"]},
                                                    "maxItems": 3}},
          "required": ["name", "age"], "additionalProperties": False}


def schema_format(schema: dict) -> dict:
    return {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema, "strict": True}}


def scalar_schemas():
    return st.one_of(
        st.builds(lambda lo, span: {"type": "integer", "minimum": lo, "maximum": lo + span},
                  st.integers(-1000, 1000), st.integers(0, 1000)),
        st.lists(st.sampled_from(["red", "green", "blue", "x y", "中文"]), min_size=1, max_size=4, unique=True)
        .map(lambda values: {"enum": values}),
        st.integers(1, 10).map(lambda n: {"type": "string", "maxLength": n}),
        st.just({"type": "boolean"}),
        st.just({"type": "string", "pattern": "^[a-z]{1,5}$"}),
    )


def object_schemas():
    def build(fields, required_mask):
        names = [f"f{i}" for i in range(len(fields))]
        required = [n for n, keep in zip(names, required_mask) if keep]
        return {"type": "object", "properties": dict(zip(names, fields)), "required": required,
                "additionalProperties": False}

    scalar = scalar_schemas()
    nested = st.one_of(scalar, st.builds(lambda item, n: {"type": "array", "items": item, "maxItems": n}, scalar,
                                         st.integers(0, 3)))
    return st.integers(1, 4).flatmap(
        lambda k: st.builds(build, st.lists(nested, min_size=k, max_size=k),
                            st.lists(st.booleans(), min_size=k, max_size=k)))


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(schema=object_schemas(), stream=st.booleans())
def test_every_answer_validates_against_its_schema(client, schema, stream):
    messages = [{"role": "user", "content": "Give me data."}]
    kwargs = dict(model=MODEL, messages=messages, max_tokens=200, temperature=1.0,
                  response_format=schema_format(schema), extra_body=NO_THINKING)
    if stream:
        chunks = list(client.chat.completions.create(stream=True, **kwargs))
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason][-1]
    else:
        choice = client.chat.completions.create(**kwargs).choices[0]
        text, finish = choice.message.content, choice.finish_reason
    assert finish == "stop", text
    jsonschema.validate(json.loads(text), schema)


def test_completions_take_response_format_too(client):
    completion = client.completions.create(model=MODEL, prompt="data:", max_tokens=200, temperature=1.0,
                                           extra_body={"response_format": schema_format(PERSON)})
    jsonschema.validate(json.loads(completion.choices[0].text), PERSON)


def test_json_object_answers_are_objects(client):
    choice = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "json please"}],
                                            max_tokens=200, temperature=0, extra_body=NO_THINKING,
                                            response_format={"type": "json_object"}).choices[0]
    if choice.finish_reason == "stop":  # an unbounded object may outgrow max_tokens on random weights
        assert isinstance(json.loads(choice.message.content), dict)


class Person(pydantic.BaseModel):
    name: str = pydantic.Field(max_length=12)
    age: int = pydantic.Field(ge=0, le=150)


def test_openai_parse_returns_the_parsed_object(client):
    completion = client.chat.completions.parse(model=MODEL, messages=[{"role": "user", "content": "who?"}],
                                               max_tokens=200, response_format=Person, extra_body=NO_THINKING)
    person = completion.choices[0].message.parsed
    assert isinstance(person, Person) and 0 <= person.age <= 150


def test_with_thinking_the_schema_applies_after_the_reasoning_block(client):
    """Thinking on: the model may reason freely first. logit_bias makes it open and at once close its think block
    (a random model would otherwise think past any budget); the answer after it follows the schema."""
    choice = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "who?"}],
                                            max_tokens=200, temperature=1.0, response_format=schema_format(PERSON),
                                            logit_bias={str(THINK_OPEN): 100, str(THINK_CLOSE): 100}).choices[0]
    assert choice.finish_reason == "stop"
    assert not choice.message.model_extra.get("reasoning_content")
    jsonschema.validate(json.loads(choice.message.content), PERSON)


def structured(client, constraint: dict, **kwargs):
    return client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "go"}],
                                          max_tokens=60, temperature=1.0,
                                          extra_body={**NO_THINKING, **constraint}, **kwargs).choices[0]


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pattern=st.sampled_from([r"[0-9]{3}-[a-z]{2,4}", r"(yes|no|maybe)!?", r"[0-9]{4}-[0-9]{2}-[0-9]{2}",
                                 r"[A-Z][a-z]{0,8}( [A-Z][a-z]{0,8}){0,2}", r"中文[0-9]{1,3}"]),
       alias=st.booleans())
def test_regex_outputs_match(client, pattern, alias):
    constraint = {"guided_regex": pattern} if alias else {"structured_outputs": {"regex": pattern}}
    choice = structured(client, constraint)
    assert choice.finish_reason == "stop" and re.fullmatch(pattern, choice.message.content)


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(choices=st.lists(st.text(st.characters(codec="utf-8", exclude_categories=["Cs", "Cc"]), min_size=1,
                                max_size=8), min_size=1, max_size=5, unique=True), alias=st.booleans())
def test_choice_outputs_are_one_of_the_choices(client, choices, alias):
    constraint = {"guided_choice": choices} if alias else {"structured_outputs": {"choice": choices}}
    choice = structured(client, constraint)
    assert choice.finish_reason == "stop" and choice.message.content in choices


@pytest.mark.parametrize("grammar, check", [
    ('start: "cost: " NUMBER " " UNIT\nNUMBER: /[1-9][0-9]{0,3}/\nUNIT: "EUR" | "USD"',
     r"cost: [1-9][0-9]{0,3} (EUR|USD)"),
    ('root ::= "answer=" ("yes" | "no")', r"answer=(yes|no)"),  # GBNF, llama.cpp's grammar format
])
def test_grammar_outputs_parse(client, grammar, check):
    for constraint in ({"structured_outputs": {"grammar": grammar}}, {"guided_grammar": grammar}):
        choice = structured(client, constraint)
        assert choice.finish_reason == "stop" and re.fullmatch(check, choice.message.content)


def test_structured_outputs_json_and_guided_json(client):
    for constraint in ({"structured_outputs": {"json": PERSON}}, {"guided_json": json.dumps(PERSON)}):
        choice = structured(client, constraint, stream=False)
        assert choice.finish_reason == "stop"
        jsonschema.validate(json.loads(choice.message.content), PERSON)


@pytest.fixture(scope="module")
def roomy_client(tmp_path_factory, server, rank_args):  # after `server`: the demo checkpoint is already built
    """A server whose context holds Qwen3's tool-use system prompt (about 200 tokens) and the calls."""
    import openai

    with ServerProcess("--max-batch", "4", "--max-model-len", "1024", "--dtype", "f32", *rank_args,
                       log_path=tmp_path_factory.mktemp("server") / "tools.log") as process:
        yield openai.OpenAI(base_url=f"{process.base_url}/v1", api_key="unused", max_retries=0, timeout=120)


def weather_tool(name: str, parameters: dict, strict: bool = False) -> dict:
    return {"type": "function", "function": {"name": name, "description": "a tool", "parameters": parameters,
                                             "strict": strict}}


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(parameters=object_schemas(), named=st.booleans(), stream=st.booleans())
def test_forced_tool_calls_have_arguments_that_validate(roomy_client, parameters, named, stream):
    client = roomy_client
    tools = [weather_tool("lookup", parameters), weather_tool("other", {"type": "object", "properties": {
        "q": {"type": "string", "maxLength": 5}}, "required": ["q"], "additionalProperties": False})]
    tool_choice = {"type": "function", "function": {"name": "lookup"}} if named else "required"
    kwargs = dict(model=MODEL, messages=[{"role": "user", "content": "call it"}], max_tokens=300, temperature=1.0,
                  tools=tools, tool_choice=tool_choice, extra_body=NO_THINKING)
    if stream:
        calls, finish = {}, None
        for chunk in client.chat.completions.create(stream=True, **kwargs):
            for call in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
                slot = calls.setdefault(call.index, {"name": "", "arguments": ""})
                slot["name"] += call.function.name or ""
                slot["arguments"] += call.function.arguments or ""
            finish = (chunk.choices[0].finish_reason if chunk.choices else None) or finish
        made = [(c["name"], c["arguments"]) for _, c in sorted(calls.items())]
    else:
        choice = client.chat.completions.create(**kwargs).choices[0]
        finish = choice.finish_reason
        made = [(c.function.name, c.function.arguments) for c in choice.message.tool_calls or []]
    if finish == "length":  # several required calls may outgrow the budget; the ones made still validate
        made = made[:-1] if made else made
    else:
        assert finish == "tool_calls" and made
    if named:
        assert [name for name, _ in made] == ["lookup"] * len(made) and len(made) <= 1
    schemas = {t["function"]["name"]: t["function"]["parameters"] for t in tools}
    for name, arguments in made:
        jsonschema.validate(json.loads(arguments), schemas[name])


@pytest.mark.parametrize("response_format", [
    {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "string", "format": "no-such-format"}}},
    {"type": "json_schema", "json_schema": {"name": "x"}},
    {"type": "yaml"},
])
def test_an_unusable_response_format_is_400(http, response_format):
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2,
            "response_format": response_format}
    assert_openai_error(http.post("/v1/chat/completions", json=body), 400, param="response_format")


@pytest.mark.parametrize("fields, param", [
    ({"structured_outputs": {"regex": "[a-z"}}, "structured_outputs.regex"),
    ({"guided_regex": ""}, "guided_regex"),
    ({"structured_outputs": {"grammar": "start: undefined_rule"}}, "structured_outputs.grammar"),
    ({"structured_outputs": {"choice": []}}, "structured_outputs.choice"),
    ({"structured_outputs": {"json": "{not json"}}, "structured_outputs.json"),
    ({"structured_outputs": {"structural_tag": "{}"}}, "structured_outputs"),
    ({"structured_outputs": "regex"}, "structured_outputs"),
    ({"guided_choice": ["a"], "guided_regex": "a"}, "guided_choice"),  # the second found is named
    ({"tools": [weather_tool("f", {"type": "object", "properties": {"d": {"type": "string", "format": "bogus"}}})],
      "tool_choice": "required"}, "tools"),
    ({"tools": [{**weather_tool("f", {"type": "object"}), "function": {"name": "f", "strict": "yes"}}]}, "tools"),
])
def test_an_unusable_constraint_is_400_naming_it(http, fields, param):
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2, **fields}
    assert_openai_error(http.post("/v1/chat/completions", json=body), 400, param=param)
