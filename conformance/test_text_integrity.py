"""Chinese and emoji stream intact: on the scripted checkpoint a completion after <|endoftext|> is
"你好，龘𠜎🦙世界", where 龘 and 𠜎 each arrive as several byte-level tokens. No delta may carry U+FFFD or half a
character, and the streamed pieces must add up to exactly the non-streamed text, with and without a stop string."""

from __future__ import annotations

from harness.fixtures.scripted import CHINESE_SCRIPT, CHINESE_TEXT, END_OF_TEXT

MODEL = "scripted"
PROMPT = [END_OF_TEXT]


def test_split_characters_are_held_until_whole(scripted):
    whole = scripted.completions.create(model=MODEL, prompt=PROMPT, max_tokens=20)
    assert whole.choices[0].text == CHINESE_TEXT and whole.choices[0].finish_reason == "stop"
    assert whole.usage.completion_tokens == len(CHINESE_SCRIPT)  # <|im_end|> counts, as in vLLM
    deltas = [c.choices[0].text for c in scripted.completions.create(model=MODEL, prompt=PROMPT, max_tokens=20,
                                                                      stream=True) if c.choices]
    assert "".join(deltas) == CHINESE_TEXT
    assert all("\ufffd" not in d for d in deltas)
    assert "龘" in deltas and "𠜎" in deltas  # each came out whole, in one piece, after its last byte


def test_stop_string_inside_multibyte_text(scripted):
    r = scripted.completions.create(model=MODEL, prompt=PROMPT, max_tokens=20, stop=["🦙"])
    assert r.choices[0].text == "你好，龘𠜎" and r.choices[0].finish_reason == "stop"
    deltas = [c.choices[0].text for c in scripted.completions.create(model=MODEL, prompt=PROMPT, max_tokens=20,
                                                                      stop=["𠜎🦙"], stream=True) if c.choices]
    assert "".join(deltas) == "你好，龘"


def test_token_budget_ending_inside_a_character(scripted):
    """max_tokens ends after the first byte token of 龘: the bytes that never became a character come out once,
    at the very end, as one U+FFFD (as a byte-level decoder does), in the stream as in the whole text."""
    r = scripted.completions.create(model=MODEL, prompt=PROMPT, max_tokens=3)
    assert r.choices[0].finish_reason == "length" and r.choices[0].text == "你好，\ufffd"
    deltas = [c.choices[0].text for c in scripted.completions.create(model=MODEL, prompt=PROMPT, max_tokens=3,
                                                                      stream=True) if c.choices]
    assert "".join(deltas) == "你好，\ufffd" and deltas[-2:] == ["\ufffd", ""]
