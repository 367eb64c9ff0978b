"""instructor (one of the most used structured-output clients) against the live server on the random-weight demo
checkpoint: its TOOLS mode (a named tool whose parameters are pydantic's schema, no additionalProperties) and
JSON_SCHEMA mode (the same schema as response_format) return the validated object, streamed (create_partial)
and not. This works because objects are closed by default (constraints.closed_schema): the model cannot add
keys of its own until max_tokens."""

from __future__ import annotations

import openai
import pytest
from pydantic import BaseModel, Field

from .conftest import MODEL

instructor = pytest.importorskip("instructor")

MESSAGES = [{"role": "user", "content": "Extract: Ann is 30 years old."}]
NO_THINKING = {"chat_template_kwargs": {"enable_thinking": False}}  # Qwen3's switch, as users send it


class Person(BaseModel):
    name: str = Field(max_length=8)
    age: int = Field(ge=0, le=150)


MODES = [instructor.Mode.TOOLS, instructor.Mode.JSON_SCHEMA]


def patched(server, mode):
    client = openai.OpenAI(base_url=f"{server.base_url}/v1", api_key="unused", max_retries=0, timeout=120)
    return instructor.from_openai(client, mode=mode)


@pytest.mark.parametrize("mode", MODES, ids=lambda m: m.name)
def test_instructor_returns_the_validated_object(server, mode):
    person = patched(server, mode).chat.completions.create(
        model=MODEL, messages=MESSAGES, response_model=Person, max_retries=0, max_tokens=40, temperature=0,
        extra_body=NO_THINKING)
    assert isinstance(person, Person) and len(person.name) <= 8 and 0 <= person.age <= 150


@pytest.mark.parametrize("mode", MODES, ids=lambda m: m.name)
def test_instructor_partial_stream_ends_in_the_validated_object(server, mode):
    partials = list(patched(server, mode).chat.completions.create_partial(
        model=MODEL, messages=MESSAGES, response_model=Person, max_retries=0, max_tokens=40, temperature=0,
        extra_body=NO_THINKING))
    assert partials
    final = Person.model_validate(partials[-1].model_dump())
    assert len(final.name) <= 8 and 0 <= final.age <= 150
