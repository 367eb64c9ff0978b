"""Graceful shutdown for a streaming API: on SIGTERM or SIGINT the server stops accepting, lets running requests
finish for up to a timeout, then ends the remaining ones with an error event and [DONE] (so clients see why),
and exits 0 instead of re-raising the signal."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading

import uvicorn

log = logging.getLogger("infini_qwen3.server")

SHUTDOWN_MESSAGE = "The server is shutting down; this response was cut short."


class GracefulServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, state, shutdown_timeout: float):
        super().__init__(config)
        self.state, self.shutdown_timeout = state, shutdown_timeout

    @contextlib.contextmanager
    def capture_signals(self):
        """As uvicorn's, but a signal that was handled by shutting down is not raised again afterwards."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        original = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)

    async def shutdown(self, sockets=None) -> None:
        self.state.draining = True  # requests on open connections get 503
        for listener in self.servers:
            listener.close()  # no new connections
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.shutdown_timeout
        if self.state.live:
            log.info("shutting down: up to %.0f s for %d running request(s)", self.shutdown_timeout,
                     len(self.state.live))
        while self.state.live and loop.time() < deadline and not self.force_exit:
            await asyncio.sleep(0.05)
        for generation in list(self.state.live):
            generation.abort(SHUTDOWN_MESSAGE)
        await super().shutdown(sockets)
