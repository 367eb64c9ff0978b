"""Text that may still turn into a marker: shared by the stop-string filter and the chat output parsers."""

from __future__ import annotations


def partial_suffix_length(buffer: str, patterns: list[str]) -> int:
    """Length of the longest suffix of buffer that is a proper prefix of one of the patterns: the text that
    must be held back until the next piece says whether a pattern starts there."""
    longest = 0
    for pattern in patterns:
        for length in range(min(len(pattern) - 1, len(buffer)), longest, -1):
            if buffer.endswith(pattern[:length]):
                longest = length
                break
    return longest
