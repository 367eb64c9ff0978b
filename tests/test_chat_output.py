"""The reasoning and tool-call parsers: any chunking of the same text gives the same result as the whole text,
tags never leak into the output, malformed tool calls stay content."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from infini_qwen3.chat_output import (
    CONTENT,
    DETECT,
    REASONING,
    ChatOutput,
    ReasoningSplitter,
    ToolCallParser,
    reasoning_state_after,
)

words = st.sampled_from(["思考", "answer", " ", "\n", "\n\n", "<", "think", ">", "</", "tool_call", "{", "}",
                         '"name"', ":", '"f"', "😀", "x"])
free_text = st.lists(words, max_size=12).map("".join)
call_json = st.fixed_dictionaries({"name": st.sampled_from(["get_weather", "search"]),
                                   "arguments": st.dictionaries(st.sampled_from(["city", "q", "n"]),
                                                                st.text(max_size=5) | st.integers(), max_size=2)})
block = st.one_of(call_json.map(lambda c: f"<tool_call>\n{json.dumps(c, ensure_ascii=False)}\n</tool_call>"),
                  free_text.map(lambda t: f"<tool_call>{t}</tool_call>"))
outputs = st.tuples(st.booleans(), free_text, st.booleans(), free_text, st.lists(block, max_size=2), free_text).map(
    lambda p: ("<think>" if p[0] else "") + p[1] + ("</think>" if p[2] else "") + p[3] + "".join(p[4]) + p[5])


def split_points(text: str, cuts: list[int]) -> list[str]:
    points = sorted({c % (len(text) + 1) for c in cuts} | {0, len(text)})
    return [text[a:b] for a, b in zip(points, points[1:])]


def run(text: str, pieces: list[str], state: str = DETECT, tools: bool = True):
    output = ChatOutput(state, tools)
    parts = [output.push(p) for p in pieces] + [output.flush()]
    return ("".join(p.reasoning for p in parts), "".join(p.content for p in parts),
            [(c.name, c.arguments) for p in parts for c in p.tool_calls])


@settings(max_examples=400)
@given(text=outputs, cuts=st.lists(st.integers(0, 80), max_size=10),
       state=st.sampled_from([DETECT, REASONING, CONTENT]), tools=st.booleans())
def test_any_chunking_gives_the_whole_text_result(text, cuts, state, tools):
    assert run(text, split_points(text, cuts), state, tools) == run(text, [text], state, tools)


@given(text=outputs, cuts=st.lists(st.integers(0, 80), max_size=10))
def test_sent_text_is_never_taken_back(text, cuts):
    """Streaming: the reasoning and content sent so far are prefixes of the final ones."""
    final_reasoning, final_content, _ = run(text, [text])
    output, reasoning, content = ChatOutput(DETECT, True), "", ""
    for piece in split_points(text, cuts):
        part = output.push(piece)
        reasoning, content = reasoning + part.reasoning, content + part.content
        assert final_reasoning.startswith(reasoning) and final_content.startswith(content)


def test_qwen3_thinking_output():
    text = "<think>\nThe user greets me.\n</think>\n\nHello! 你好！"
    assert run(text, list(text)) == ("The user greets me.", "Hello! 你好！", [])


def test_unclosed_think_block_stays_reasoning():
    assert run("<think>\nstill thinking about", ["<think>\nstill ", "thinking about"]) == \
        ("still thinking about", "", [])


def test_prompt_that_closed_the_block_makes_everything_content():
    prompt = "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
    assert reasoning_state_after(prompt) == CONTENT
    assert run("plain answer", ["plain ", "answer"], reasoning_state_after(prompt)) == ("", "plain answer", [])
    assert reasoning_state_after("<|im_start|>assistant\n<think>\n") == REASONING
    assert reasoning_state_after("<|im_start|>assistant\n") == DETECT


def test_tool_calls_are_parsed_and_malformed_ones_stay_content():
    text = ('Let me check. <tool_call>\n{"name": "get_weather", "arguments": {"city": "北京"}}\n</tool_call>\n'
            '<tool_call>\n{not json}\n</tool_call>')
    reasoning, content, calls = run(text, split_points(text, [5, 17, 30, 61, 90]))
    assert calls == [("get_weather", '{"city": "北京"}')]
    assert content == "Let me check.<tool_call>\n{not json}\n</tool_call>"


def test_tags_never_leak_when_split_at_every_character():
    text = "<think>a</think>b<tool_call>\n{\"name\": \"f\", \"arguments\": {}}\n</tool_call>"
    reasoning, content, calls = run(text, list(text))
    assert (reasoning, content, calls) == ("a", "b", [("f", "{}")])


def test_reasoning_splitter_alone_keeps_text_verbatim_outside_tags():
    splitter = ReasoningSplitter(CONTENT)
    assert splitter.push("no <think> tags here") == ("", "no <think> tags here")
    parser = ToolCallParser()
    assert parser.push("a <tool_call") == ("a", [])
    assert parser.flush() == " <tool_call"


def test_empty_think_block_of_a_no_think_answer():
    """Qwen3 answers "/no_think" with an empty think block: no reasoning, the rest is content."""
    text = "<think>\n\n</think>\n\nHi there."
    assert run(text, split_points(text, [3, 9, 12, 17])) == ("", "Hi there.", [])
