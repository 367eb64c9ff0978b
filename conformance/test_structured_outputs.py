"""Structured outputs on the demo checkpoint (random weights, sampled at temperature 1.0): every answer constrained
by response_format parses and validates against its schema, streamed and not; openai's chat.completions.parse()
returns the parsed object; a schema the grammar engine cannot compile is a 400."""

from __future__ import annotations

import json

import jsonschema
import pydantic
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .conftest import MODEL
from .test_errors import assert_openai_error

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
                  response_format=schema_format(schema))
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
                                            max_tokens=200, temperature=0,
                                            response_format={"type": "json_object"}).choices[0]
    if choice.finish_reason == "stop":  # an unbounded object may outgrow max_tokens on random weights
        assert isinstance(json.loads(choice.message.content), dict)


class Person(pydantic.BaseModel):
    name: str = pydantic.Field(max_length=12)
    age: int = pydantic.Field(ge=0, le=150)


def test_openai_parse_returns_the_parsed_object(client):
    completion = client.chat.completions.parse(model=MODEL, messages=[{"role": "user", "content": "who?"}],
                                               max_tokens=200, response_format=Person)
    person = completion.choices[0].message.parsed
    assert isinstance(person, Person) and 0 <= person.age <= 150


@pytest.mark.parametrize("response_format", [
    {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "string", "format": "no-such-format"}}},
    {"type": "json_schema", "json_schema": {"name": "x"}},
    {"type": "yaml"},
])
def test_an_unusable_response_format_is_400(http, response_format):
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2,
            "response_format": response_format}
    assert_openai_error(http.post("/v1/chat/completions", json=body), 400, param="response_format")
