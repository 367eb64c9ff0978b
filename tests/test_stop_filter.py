"""Stop strings over arbitrary chunkings of the same text give the same result as cutting the whole text."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from infini_qwen3.stop import StopFilter

alphabet = st.sampled_from(list("ab你好🙂\n"))
texts = st.text(alphabet=alphabet, max_size=30)
stops = st.lists(st.text(alphabet=alphabet, min_size=1, max_size=4), max_size=4)


def cut(text: str, stop_strings: list[str]) -> tuple[str, bool]:
    """The text up to the stop string that completes first when the text is read from the start."""
    hits = [(i + len(s), i) for s, i in ((s, text.find(s)) for s in stop_strings) if i >= 0]
    return (text[:min(hits)[1]], True) if hits else (text, False)


def chunked(text: str, cuts: list[int]) -> list[str]:
    points = sorted({c % (len(text) + 1) for c in cuts} | {0, len(text)})
    return [text[a:b] for a, b in zip(points, points[1:])]


@settings(max_examples=300)
@given(text=texts, stop_strings=stops, cuts=st.lists(st.integers(0, 40), max_size=8))
def test_any_chunking_gives_the_whole_text_result(text, stop_strings, cuts):
    stop_filter = StopFilter(stop_strings)
    emitted = "".join(stop_filter.push(piece) for piece in chunked(text, cuts))
    emitted += stop_filter.flush()
    assert (emitted, stop_filter.stopped) == cut(text, stop_strings)


@given(text=texts, stop_strings=stops, cuts=st.lists(st.integers(0, 40), max_size=8))
def test_nothing_of_a_stop_string_is_sent_before_the_match_is_decided(text, stop_strings, cuts):
    """Every prefix sent so far is a prefix of the final answer: nothing is ever taken back."""
    stop_filter = StopFilter(stop_strings)
    final, _ = cut(text, stop_strings)
    sent = ""
    for piece in chunked(text, cuts):
        sent += stop_filter.push(piece)
        assert final.startswith(sent)


def test_held_text_is_released_when_the_match_fails():
    stop_filter = StopFilter(["END"])
    assert stop_filter.push("the E") == "the "
    assert stop_filter.push("N") == ""
    assert stop_filter.push("x") == "ENx"
    assert stop_filter.push("yEND!") == "y" and stop_filter.stopped
