"""Qwen3's own API surface through the openai SDK, end to end on the scripted checkpoint
(harness/fixtures/scripted.py), which answers
"<think>Let me check the forecast.</think>Answer<tool_call>{...}</tool_call>"."""

from __future__ import annotations

import json

from harness.fixtures.scripted import REASONING_TEXT, TOOL

MODEL = "scripted"
ASK = [{"role": "user", "content": "What will the weather be?"}]
CALL_TEXT = '<tool_call>{"name":"get_weather","arguments":{"days":3}}</tool_call>'
# The tool with a closed schema: under a constraint, greedy decoding of the scripted model's all-equal logits takes
# the lowest token ids, which in an open object would be an endless property name of "!".
CLOSED_TOOL = {"type": "function", "function": {**TOOL["function"], "parameters": {
    "type": "object", "properties": {"days": {"type": "integer"}}, "required": ["days"],
    "additionalProperties": False}}}


def collect_stream(stream):
    """Accumulates a streamed chat choice the way SDK users do; returns (reasoning, content, calls, finish)."""
    reasoning, content, calls, finish = "", "", {}, None
    for chunk in stream:
        if not chunk.choices:
            continue
        choice = chunk.choices[0]
        delta = choice.delta
        reasoning += (delta.model_extra or {}).get("reasoning_content") or ""
        content += delta.content or ""
        for call in delta.tool_calls or []:
            slot = calls.setdefault(call.index, {"id": None, "name": "", "arguments": ""})
            slot["id"] = call.id or slot["id"]
            if call.function:
                slot["name"] += call.function.name or ""
                slot["arguments"] += call.function.arguments or ""
        finish = choice.finish_reason or finish
    return reasoning, content, [calls[i] for i in sorted(calls)], finish


def test_thinking_goes_to_reasoning_content(scripted):
    r = scripted.chat.completions.create(model=MODEL, messages=ASK)
    message = r.choices[0].message
    assert message.model_extra["reasoning_content"] == REASONING_TEXT
    assert message.content == "Answer" + CALL_TEXT  # no tools in the request: the call text is plain content
    assert message.tool_calls is None and r.choices[0].finish_reason == "stop"


def test_thinking_split_over_stream_chunks(scripted):
    stream = list(scripted.chat.completions.create(model=MODEL, messages=ASK, stream=True))
    assert collect_stream(stream) == (REASONING_TEXT, "Answer" + CALL_TEXT, [], "stop")
    pieces = [c.choices[0].delta.model_extra.get("reasoning_content") for c in stream if c.choices]
    assert len([p for p in pieces if p]) == 6, "one reasoning delta per reasoning token"


def test_enable_thinking_false_makes_everything_content(scripted):
    r = scripted.chat.completions.create(model=MODEL, messages=ASK,
                                         extra_body={"chat_template_kwargs": {"enable_thinking": False}})
    assert r.choices[0].message.content == "Answer" + CALL_TEXT
    assert r.choices[0].message.model_extra["reasoning_content"] is None


def test_unclosed_think_block_is_reasoning_and_finishes_with_length(scripted):
    r = scripted.chat.completions.create(model=MODEL, messages=ASK, max_tokens=4)
    assert r.choices[0].message.model_extra["reasoning_content"] == "Let me check"
    assert r.choices[0].message.content in ("", None) and r.choices[0].finish_reason == "length"


def test_tool_calls_non_stream(scripted):
    r = scripted.chat.completions.create(model=MODEL, messages=ASK, tools=[TOOL])
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == "Answer" and choice.message.model_extra["reasoning_content"] == REASONING_TEXT
    (call,) = choice.message.tool_calls
    assert call.type == "function" and call.id.startswith("call_") and call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"days": 3}


def test_tool_calls_stream_as_deltas(scripted):
    stream = scripted.chat.completions.create(model=MODEL, messages=ASK, tools=[TOOL], stream=True)
    reasoning, content, calls, finish = collect_stream(stream)
    assert (reasoning, content, finish) == (REASONING_TEXT, "Answer", "tool_calls")
    assert len(calls) == 1 and calls[0]["name"] == "get_weather" and calls[0]["id"].startswith("call_")
    assert json.loads(calls[0]["arguments"]) == {"days": 3}


def test_tool_choice_none_leaves_the_text_alone(scripted):
    r = scripted.chat.completions.create(model=MODEL, messages=ASK, tools=[TOOL], tool_choice="none")
    assert r.choices[0].message.tool_calls is None and CALL_TEXT in r.choices[0].message.content


def test_history_with_tool_calls_and_tool_results_renders(scripted):
    messages = ASK + [
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"days": 3}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": '{"forecast": "sunny"}'},
    ]
    r = scripted.chat.completions.create(model=MODEL, messages=messages, tools=[TOOL])
    assert r.choices[0].finish_reason == "tool_calls" and r.usage.prompt_tokens > 100


def test_named_tool_choice_is_a_valid_call_after_the_reasoning(scripted):
    """A named tool_choice constrains the answer to one call of that function, after the reasoning block. The
    scripted model thinks, then wants to write "Answer" and a call in its own compact format; the grammar allows
    neither, so the call is built from what the grammar allows (greedy over all-equal logits: the lowest ids).
    Whatever the model wants, the arguments parse and follow the schema."""
    r = scripted.chat.completions.create(model=MODEL, messages=ASK, tools=[CLOSED_TOOL], max_tokens=40,
                                         temperature=0,
                                         tool_choice={"type": "function", "function": {"name": "get_weather"}})
    choice = r.choices[0]
    assert choice.message.model_extra["reasoning_content"] == REASONING_TEXT
    assert choice.finish_reason == "tool_calls" and not choice.message.content
    (call,) = choice.message.tool_calls
    arguments = json.loads(call.function.arguments)
    assert call.function.name == "get_weather" and set(arguments) == {"days"} and isinstance(arguments["days"], int)


def test_required_tool_choice_without_thinking_starts_with_the_call(scripted):
    r = scripted.chat.completions.create(model=MODEL, messages=ASK, tools=[CLOSED_TOOL], max_tokens=40,
                                         temperature=0, tool_choice="required",
                                         extra_body={"chat_template_kwargs": {"enable_thinking": False}})
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls" and not choice.message.content
    assert [c.function.name for c in choice.message.tool_calls] == ["get_weather"]


def test_a_strict_tool_under_auto_keeps_the_text_and_constrains_the_call(scripted):
    """strict: true under tool_choice auto: the scripted "Answer" stays content; its compact call is not
    Qwen3's format, so the grammar rewrites it into a valid call."""
    strict = {**CLOSED_TOOL, "function": {**CLOSED_TOOL["function"], "strict": True}}
    stream = scripted.chat.completions.create(model=MODEL, messages=ASK, tools=[strict], max_tokens=60,
                                              temperature=0, stream=True)
    reasoning, content, calls, finish = collect_stream(stream)
    assert (reasoning, content, finish) == (REASONING_TEXT, "Answer", "tool_calls")
    (call,) = calls
    assert call["name"] == "get_weather" and set(json.loads(call["arguments"])) == {"days"}
