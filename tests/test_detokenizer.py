from __future__ import annotations

import unicodedata

from hypothesis import given
from hypothesis import strategies as st

from infini_qwen3.detokenizer import REPLACEMENT, IncrementalDetokenizer

TEXTS = st.text(alphabet=st.sampled_from(list("你好世界今天天气很好。，！abc 🙂👩‍💻é\n")), max_size=30)


@given(TEXTS)
def test_streamed_pieces_concatenate_to_the_text_without_replacement_chars(tokenizer, text):
    text = unicodedata.normalize("NFC", text)
    detok = IncrementalDetokenizer(tokenizer)
    pieces = [detok.push(t) for t in tokenizer.encode(text)]
    pieces.append(detok.flush())
    assert "".join(pieces) == text
    assert not any(REPLACEMENT in p for p in pieces)


def test_a_character_split_across_tokens_comes_out_whole(tokenizer):
    ids = tokenizer.encode("龘")
    assert len(ids) > 1  # its three UTF-8 bytes span two tokens
    detok = IncrementalDetokenizer(tokenizer)
    assert [detok.push(t) for t in ids] == [""] * (len(ids) - 1) + ["龘"]
