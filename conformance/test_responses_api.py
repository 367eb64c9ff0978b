"""POST /v1/responses through the openai SDK (`client.responses.create`, `client.responses.stream`) and the Agents
SDK: every object and event parses into the SDK's typed models; on the scripted checkpoint the reasoning item,
the message and the function call come out; text.format json_schema answers validate; stateless limits are
clear 400s."""

from __future__ import annotations

import asyncio
import json

import jsonschema
import openai
import pytest
from openai.types.responses import (
    ResponseFunctionToolCall,
    ResponseOutputMessage,
    ResponseReasoningItem,
)

from harness.fixtures.scripted import REASONING_TEXT, TOOL

from .conftest import MODEL
from .test_errors import assert_openai_error

SCRIPTED = "scripted"
FUNCTION_TOOL = {"type": "function", **TOOL["function"]}  # the Responses shape: no nested "function"


def test_plain_response_parses_into_the_typed_models(client):
    response = client.responses.create(model=MODEL, input="Hello", max_output_tokens=6, temperature=0)
    assert response.object == "response" and response.id.startswith("resp-")
    assert response.status == "incomplete" and response.incomplete_details.reason == "max_output_tokens"
    assert any(isinstance(item, ResponseOutputMessage) for item in response.output)
    assert isinstance(response.output_text, str)
    usage = response.usage
    assert usage.output_tokens == 6 and usage.total_tokens == usage.input_tokens + 6
    assert usage.input_tokens_details.cached_tokens >= 0 and usage.output_tokens_details.reasoning_tokens >= 0


def test_stream_events_are_typed_ordered_and_end_with_the_response(client):
    with client.responses.stream(model=MODEL, input=[{"role": "user", "content": "Hi"}], max_output_tokens=5,
                                 temperature=0, reasoning={"effort": "minimal"}) as stream:
        events = list(stream)
        final = stream.get_final_response()
    kinds = [e.type for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"] and kinds[-1] == "response.completed"
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert kinds.index("response.output_item.added") < kinds.index("response.content_part.added") < \
        kinds.index("response.output_text.delta") < kinds.index("response.output_text.done") < \
        kinds.index("response.content_part.done") < kinds.index("response.output_item.done")
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert final.output_text == text and final.usage.output_tokens == 5


def test_text_format_json_schema_answers_validate(client):
    schema = {"type": "object", "properties": {"city": {"type": "string", "maxLength": 10},
                                               "days": {"type": "integer", "minimum": 1, "maximum": 7}},
              "required": ["city", "days"], "additionalProperties": False}
    response = client.responses.create(
        model=MODEL, input="A trip?", max_output_tokens=40, temperature=0, reasoning={"effort": "minimal"},
        text={"format": {"type": "json_schema", "name": "trip", "schema": schema, "strict": True}})
    jsonschema.validate(json.loads(response.output_text), schema)


def test_scripted_reasoning_message_and_function_call(scripted):
    response = scripted.responses.create(model=SCRIPTED, input="What will the weather be?", tools=[FUNCTION_TOOL],
                                         max_output_tokens=60)
    kinds = [type(item) for item in response.output]
    assert kinds == [ResponseReasoningItem, ResponseOutputMessage, ResponseFunctionToolCall]
    reasoning, message, call = response.output
    assert reasoning.content[0].text == REASONING_TEXT and message.content[0].text == "Answer"
    assert (call.name, json.loads(call.arguments)) == ("get_weather", {"days": 3}) and call.call_id
    assert response.status == "completed" and response.usage.output_tokens_details.reasoning_tokens == 8


def test_scripted_stream_has_reasoning_text_and_function_call_events(scripted):
    with scripted.responses.stream(model=SCRIPTED, input="What will the weather be?", tools=[FUNCTION_TOOL],
                                   max_output_tokens=60) as stream:
        events = list(stream)
        final = stream.get_final_response()
    reasoning = "".join(e.delta for e in events if e.type == "response.reasoning_text.delta")
    arguments = [e for e in events if e.type == "response.function_call_arguments.done"]
    assert reasoning == REASONING_TEXT and len(arguments) == 1 and arguments[0].name == "get_weather"
    assert [item.type for item in final.output] == ["reasoning", "message", "function_call"]


def test_a_function_call_output_continues_the_conversation(client):
    """The history items an agent sends back: its own function call, then the tool's output."""
    history = [{"role": "user", "content": "Weather?"},
               {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": '{"days": 2}'},
               {"type": "function_call_output", "call_id": "call_1", "output": "sunny"}]
    response = client.responses.create(model=MODEL, input=history, tools=[FUNCTION_TOOL], max_output_tokens=3,
                                       instructions="Be brief.")
    assert response.usage.input_tokens > 20


@pytest.mark.parametrize("body,param", [
    ({"input": "hi", "previous_response_id": "resp_1"}, "previous_response_id"),
    ({"input": [{"type": "image_generation_call"}]}, "input"),
    ({"input": "hi", "tools": [{"type": "web_search"}]}, "tools"),
    ({"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "x"}]}]}, "input"),
    ({"input": []}, "input"),
])
def test_what_a_stateless_text_server_cannot_do_is_a_clear_400(http, body, param):
    assert_openai_error(http.post("/v1/responses", json={"model": MODEL, **body}), 400, param=param)


@pytest.mark.parametrize("api", ["responses", "chat_completions"])
def test_an_agents_sdk_agent_runs_its_tool_to_the_final_output(scripted_server, api):
    agents = pytest.importorskip("agents")
    client = openai.AsyncOpenAI(base_url=f"{scripted_server.base_url}/v1", api_key="unused", max_retries=0)
    agents.set_tracing_disabled(True)
    calls = []

    @agents.function_tool
    def get_weather(days: int) -> str:
        """Weather forecast for the next days."""
        calls.append(days)
        return f"sunny for {days} days"

    if api == "responses":  # the SDK's default: a model name, resolved by the default client to its Responses model
        agents.set_default_openai_client(client, use_for_tracing=False)
        agents.set_default_openai_api("responses")
        model = SCRIPTED
    else:
        model = agents.OpenAIChatCompletionsModel(SCRIPTED, client)
    agent = agents.Agent(name="forecaster", instructions="Answer with the forecast.", tools=[get_weather],
                         model=model, tool_use_behavior="stop_on_first_tool",
                         model_settings=agents.ModelSettings(max_tokens=60))
    result = asyncio.run(agents.Runner.run(agent, "What will the weather be?"))
    assert len(calls) == 1 and result.final_output == f"sunny for {calls[0]} days"
