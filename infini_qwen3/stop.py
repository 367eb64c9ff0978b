"""Stop strings over streamed text: the matched string and everything after it are never returned, and text
that could still be the start of a stop string is held back until the next piece decides it."""

from __future__ import annotations

from .textmatch import partial_suffix_length


class StopFilter:
    def __init__(self, stops: list[str]):
        self.stops = [s for s in stops if s]
        self.held = ""
        self.stopped = False

    def push(self, text: str) -> str:
        """Adds decoded text; returns what may be sent now. After a match, `stopped` is True and nothing more
        is returned."""
        if self.stopped:
            return ""
        if not self.stops:
            return text
        buffer = self.held + text
        # The stop string that completes first (as if read one character at a time), so that the result does not
        # depend on how the text was split into pieces; of two completing together, the one that starts first.
        matches = [(i + len(s), i) for s, i in ((s, buffer.find(s)) for s in self.stops) if i >= 0]
        if matches:
            _, start = min(matches)
            self.stopped, self.held = True, ""
            return buffer[:start]
        keep = partial_suffix_length(buffer, self.stops)
        self.held = buffer[len(buffer) - keep:] if keep else ""
        return buffer[:len(buffer) - keep]

    def flush(self) -> str:
        """Generation ended without a match: the held text is plain output."""
        held, self.held = self.held, ""
        return "" if self.stopped else held
