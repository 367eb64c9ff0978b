"""Clients that never finish a request: idle and half-sent connections are closed after the head timeout, a body
that stops is answered 408, a request with both Content-Length and Transfer-Encoding is refused and closed."""

from __future__ import annotations

import socket
import time

import pytest

from .server_process import ServerProcess

HEAD_TIMEOUT, BODY_TIMEOUT = 1.0, 1.0


@pytest.fixture(scope="module")
def strict_server(tmp_path_factory, server):  # after `server`: the demo checkpoint is already built
    with ServerProcess("--max-model-len", "256", "--request-head-timeout", str(HEAD_TIMEOUT),
                       "--request-body-timeout", str(BODY_TIMEOUT),
                       log_path=tmp_path_factory.mktemp("server") / "strict.log") as process:
        yield process


def connect(server) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    return sock


def closed_within(sock: socket.socket, seconds: float) -> bool:
    """True when the server closes the connection (recv returns b"") within `seconds`."""
    sock.settimeout(seconds)
    try:
        data = sock.recv(65536)
        while data:
            data = sock.recv(65536)
        return True
    except TimeoutError:
        return False


def read_until(sock: socket.socket, marker: bytes) -> bytes:
    data = b""
    while marker not in data:
        chunk = sock.recv(65536)
        assert chunk, f"closed after {data!r}"
        data += chunk
    return data


@pytest.mark.parametrize("sent", [b"", b"POST /v1/chat/comp", b"GET /health HTTP/1.1\r\nHost: x\r\n"])
def test_a_connection_without_a_complete_head_is_closed(strict_server, sent):
    with connect(strict_server) as sock:
        sock.sendall(sent)
        start = time.monotonic()
        assert closed_within(sock, HEAD_TIMEOUT + 5)
        assert time.monotonic() - start >= HEAD_TIMEOUT * 0.5


def test_a_keep_alive_connection_still_serves_requests(strict_server):
    with connect(strict_server) as sock:
        for _ in range(2):
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            assert read_until(sock, b'{"status":"ok"}').startswith(b"HTTP/1.1 200 OK")


def test_a_body_shorter_than_its_content_length_is_408(strict_server):
    with connect(strict_server) as sock:
        sock.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 100\r\n\r\n{\"prompt\":")
        sock.settimeout(BODY_TIMEOUT + 10)
        answer = read_until(sock, b"\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 408") and b"connection: close" in answer.lower()
        assert closed_within(sock, 5)


def test_content_length_with_transfer_encoding_is_refused_and_closed(strict_server):
    with connect(strict_server) as sock:
        body = b'{"prompt": "hi", "max_tokens": 1}'
        sock.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n"
                     % (len(body), len(body), body))
        sock.settimeout(10)
        answer = read_until(sock, b"\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 400") and b"connection: close" in answer.lower()
        assert closed_within(sock, 5)
