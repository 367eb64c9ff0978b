"""A repeated event-loop error (accept() out of file descriptors, say) is logged once per interval, with the count
of the ones held back, instead of once per occurrence."""

from __future__ import annotations

from infini_qwen3.server.connections import QuietRepeats


class RecordingLoop:
    def __init__(self):
        self.logged: list[str] = []

    def default_exception_handler(self, context: dict) -> None:
        self.logged.append(context["message"])


def test_a_repeated_message_is_logged_once_per_interval(monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr("infini_qwen3.server.connections.time.monotonic", lambda: clock[0])
    loop, handler = RecordingLoop(), QuietRepeats(interval=10)
    for _ in range(5000):  # a burst within one interval
        handler(loop, {"message": "socket.accept() out of system resource"})
    handler(loop, {"message": "another error"})
    clock[0] += 11
    handler(loop, {"message": "socket.accept() out of system resource"})
    assert loop.logged == ["socket.accept() out of system resource", "another error",
                           "socket.accept() out of system resource (and 4999 more like it in the last 10 s)"]
