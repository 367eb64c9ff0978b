"""The faithful Qwen3 tokenizer and the Qwen3 chat format."""

from __future__ import annotations

import unicodedata

from hypothesis import given
from hypothesis import strategies as st


def test_known_qwen_encodings(tokenizer):
    assert tokenizer.encode("Hello, world!") == [9707, 11, 1879, 0]
    assert tokenizer.vocab_size == 151669
    assert tokenizer.token_id("<|im_end|>") == 151645 and tokenizer.token_id("</think>") == 151668


def test_special_tokens_in_text_become_single_ids(tokenizer):
    assert tokenizer.encode("<|im_start|>user\n") == [151644, 872, 198]
    assert tokenizer.encode("<think>\n\n</think>\n\n") == [151667, 271, 151668, 271]


def test_chinese_and_emoji_round_trip(tokenizer):
    text = "你好，世界！今天天气很好。🙂👩‍💻"
    assert tokenizer.decode(tokenizer.encode(text)) == text


@given(st.text(max_size=40))
def test_decode_encode_round_trips_nfc_text(tokenizer, text):
    normalized = unicodedata.normalize("NFC", text)
    assert tokenizer.decode(tokenizer.encode(normalized)) == normalized


def test_chat_prompt_thinking_on_and_off(tokenizer):
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "你好"}]
    on = tokenizer.render_chat(messages)
    off = tokenizer.render_chat(messages, enable_thinking=False)
    assert on == "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n你好<|im_end|>\n<|im_start|>assistant\n"
    assert off == on + "<think>\n\n</think>\n\n"


def test_reasoning_of_earlier_turns_is_dropped(tokenizer):
    messages = [
        {"role": "user", "content": "1+1?"},
        {"role": "assistant", "content": "<think>\nadd them\n</think>\n\n2"},
        {"role": "user", "content": "and 2+2?"},
    ]
    prompt = tokenizer.render_chat(messages)
    assert "add them" not in prompt
    assert "<|im_start|>assistant\n2<|im_end|>\n<|im_start|>user\nand 2+2?" in prompt


def test_text_part_content_is_joined(tokenizer):
    parts = [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]
    assert "<|im_start|>user\nab<|im_end|>" in tokenizer.render_chat([{"role": "user", "content": parts}])
