"""Connections that never finish a request: uvicorn's HTTP/1.1 protocol closes an idle keep-alive connection only
after a response, so a client that connects and sends nothing (or half a request line) holds its socket forever.
Here a request head must be complete within head_timeout seconds of the connection (or of the previous response);
the body's pace is the application's concern (plumbing.read_body). Also: repeated accept() errors (out of file
descriptors) are logged once per interval, not once per attempt."""

from __future__ import annotations

import asyncio
import logging
import time

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger("infini_qwen3.server")

DEFAULT_HEAD_TIMEOUT = 10.0
REPEATED_ERROR_INTERVAL = 10.0


class HeadTimeoutProtocol(H11Protocol):
    head_timeout = DEFAULT_HEAD_TIMEOUT
    _head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._arm_head_timer()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:  # the head is complete: a request is being served
            self._cancel_head_timer()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
            self._arm_head_timer()

    def connection_lost(self, exc) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def _arm_head_timer(self) -> None:
        self._cancel_head_timer()
        self._head_timer = self.loop.call_later(self.head_timeout, self._head_timed_out)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if not self.transport.is_closing():
            self.transport.close()


def protocol_with_head_timeout(seconds: float) -> type[HeadTimeoutProtocol]:
    return type("HeadTimeoutProtocol", (HeadTimeoutProtocol,), {"head_timeout": seconds})


class QuietRepeats:
    """An event loop exception handler that reports a repeated message once per interval (with the count of the
    ones it held back), so a condition such as running out of file descriptors cannot flood the log."""

    def __init__(self, interval: float = REPEATED_ERROR_INTERVAL):
        self.interval = interval
        self._last: dict[str, tuple[float, int]] = {}

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict) -> None:
        message = context.get("message", "")
        now = time.monotonic()
        last, held = self._last.get(message, (float("-inf"), 0))
        if now - last < self.interval:
            self._last[message] = (last, held + 1)
            return
        self._last[message] = (now, 0)
        if held:
            context = {**context, "message": f"{message} (and {held} more like it in the last {self.interval:.0f} s)"}
        loop.default_exception_handler(context)
