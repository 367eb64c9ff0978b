"""The output processor (infini_qwen3/output.py) on the real Qwen3 tokenizer: for any text and stop strings, fed token
by token, the output is the text cut at the stop string that completes first; every logprob is delivered once, in
order, on the piece that shows its text; the end is decided once (stop token, stop string, grammar, budget, tool
calls)."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_stop_filter import cut  # tests/ is on sys.path (no package)

from infini_qwen3.chat_output import CONTENT, ChatOutput
from infini_qwen3.constraints import grammar_for, json_answer
from infini_qwen3.grammar import Grammars
from infini_qwen3.logits import TokenLogprobs
from infini_qwen3.output import ChoiceOutput, OutputPiece

IM_END = 151645
alphabet = st.sampled_from(list("ab 你好🙂\n<>/"))


def run(output: ChoiceOutput, tokens: list[int], budget: int | None = None) -> list[OutputPiece]:
    pieces = []
    for i, token in enumerate(tokens):
        piece = output.push(token, TokenLogprobs(token, -float(i)), at_limit=budget is not None and i + 1 >= budget)
        pieces.append(piece)
        if piece.finish_reason:
            break
    return pieces


def joined(pieces: list[OutputPiece]) -> str:
    return "".join(p.content for p in pieces)


@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(alphabet=alphabet, min_size=1, max_size=40),
       stops=st.lists(st.text(alphabet=alphabet, min_size=1, max_size=3), max_size=3))
def test_text_is_cut_at_the_first_stop_string_and_logprobs_arrive_once(tokenizer, text, stops):
    tokens = tokenizer.encode(text)
    output = ChoiceOutput(tokenizer, stop_token_ids=frozenset({IM_END}), stop=stops)
    pieces = run(output, tokens + [IM_END])
    expected, stopped = cut(text, stops)
    assert joined(pieces) == expected
    assert pieces[-1].finish_reason == "stop" and output.finish_reason == "stop"
    delivered = [lp.token for p in pieces for lp in p.logprobs]
    consumed = len(pieces) - (0 if stopped else 1)  # the stop token itself carries no logprob
    assert delivered == tokens[:consumed]
    assert all(p.logprobs == [] or p.content or p.finish_reason for p in pieces), "logprobs ride on shown text"


def test_the_budget_ends_with_length_and_flushes_held_text(tokenizer):
    tokens = tokenizer.encode("hello 你好")
    output = ChoiceOutput(tokenizer, stop_token_ids=frozenset({IM_END}), stop=["你好!"])
    pieces = run(output, tokens, budget=len(tokens))
    assert joined(pieces) == "hello 你好" and pieces[-1].finish_reason == "length"


def test_a_chat_choice_that_called_a_tool_finishes_with_tool_calls(tokenizer):
    text = '<think>\nhm\n</think>\n\nOK<tool_call>\n{"name": "f", "arguments": {"a": 1}}\n</tool_call>'
    output = ChoiceOutput(tokenizer, stop_token_ids=frozenset({IM_END}), parser=ChatOutput("detect", True))
    pieces = run(output, tokenizer.encode(text) + [IM_END])
    assert "".join(p.reasoning for p in pieces) == "hm" and joined(pieces) == "OK"
    (call,) = [c for p in pieces for c in p.tool_calls]
    assert (call.name, call.arguments) == ("f", '{"a": 1}') and pieces[-1].finish_reason == "tool_calls"


def test_a_complete_grammar_ends_the_choice_without_an_end_token(tokenizer):
    grammars = Grammars(tokenizer.fast.to_str(), 151936, (IM_END,))
    matcher = grammars.matcher(grammar_for(json_answer({"type": "object", "properties": {"a": {"type": "integer"}},
                                                        "required": ["a"], "additionalProperties": False}, "x"),
                                           CONTENT))
    output = ChoiceOutput(tokenizer, stop_token_ids=frozenset({IM_END}), grammar=matcher)
    tokens = tokenizer.encode('{"a":12}')
    pieces = run(output, tokens + tokenizer.encode("trailing"))
    assert joined(pieces) == '{"a":12}' and pieces[-1].finish_reason == "stop" and len(pieces) == len(tokens)
