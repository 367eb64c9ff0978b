"""SIGTERM and SIGINT: the server stops accepting, lets running requests finish within --shutdown-timeout, ends
the rest with an error event and [DONE], and exits 0 without a traceback."""

from __future__ import annotations

import json
import signal

import httpx
import pytest

from .conftest import MODEL
from .server_process import ServerProcess


def stream_body(max_tokens: int) -> dict:
    return {"model": MODEL, "messages": [{"role": "user", "content": "go on"}], "max_tokens": max_tokens,
            "stream": True}


def data_lines(lines) -> list[str]:
    return [line[len("data: "):] for line in lines if line.startswith("data: ")]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_stream_longer_than_the_timeout_ends_with_an_error_and_done(tmp_path, server, sig):
    process = ServerProcess("--max-model-len", "4096", "--shutdown-timeout", "1", log_path=tmp_path / "s.log").start()
    try:
        with httpx.Client(base_url=process.base_url, timeout=60) as http:
            with http.stream("POST", "/v1/chat/completions", json=stream_body(3000)) as response:
                lines = response.iter_lines()
                next(lines)  # streaming
                process.process.send_signal(sig)
                rest = data_lines(lines)
        assert rest[-1] == "[DONE]"
        error = json.loads(rest[-2])["error"]
        assert error["code"] == "server_shutting_down" and error["type"] == "server_error"
        assert process.process.wait(timeout=60) == 0
        assert "Traceback" not in process.log()
    finally:
        process.stop()


def test_a_stream_that_ends_within_the_timeout_completes(tmp_path, server):
    process = ServerProcess("--max-model-len", "4096", "--shutdown-timeout", "60", log_path=tmp_path / "s.log").start()
    try:
        with httpx.Client(base_url=process.base_url, timeout=60) as http:
            with http.stream("POST", "/v1/chat/completions", json=stream_body(40)) as response:
                lines = response.iter_lines()
                next(lines)
                process.process.send_signal(signal.SIGTERM)
                rest = data_lines(lines)
        assert rest[-1] == "[DONE]"
        assert json.loads(rest[-2])["choices"][0]["finish_reason"] == "length"
        assert process.process.wait(timeout=60) == 0
        assert "Traceback" not in process.log()
    finally:
        process.stop()
