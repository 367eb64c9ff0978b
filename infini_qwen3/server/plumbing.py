"""Request plumbing shared by the routes that take a body: auth, content type, body limits and timeouts."""

from __future__ import annotations

import asyncio
import hmac

from starlette.requests import Request

from . import errors
from .service import Service
from .state import ServerConfig, ServerState


def check_auth(request: Request, config: ServerConfig) -> None:
    if config.api_key is None:
        return
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), config.api_key.encode()):
        raise errors.unauthorized()


async def read_body(request: Request, limit: int, timeout: float) -> bytes:
    """The body, at most `limit` bytes, each chunk within `timeout` seconds (a Content-Length larger than what is
    sent would otherwise hold the request open forever)."""
    if "content-length" in request.headers and "transfer-encoding" in request.headers:
        raise errors.ambiguous_length()  # RFC 9112 6.1: a request smuggling vector; answered and closed
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise errors.body_too_large(limit)
    chunks, size = [], 0
    stream = request.stream().__aiter__()
    while True:
        try:
            chunk = await asyncio.wait_for(stream.__anext__(), timeout)
        except StopAsyncIteration:
            break
        except asyncio.TimeoutError:
            raise errors.body_timeout(timeout) from None
        size += len(chunk)
        if size > limit:
            raise errors.body_too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)



def check_json_content_type(request: Request) -> None:
    """Only JSON bodies: a browser page can send a "simple" text/plain or form POST to a server on localhost
    without a CORS preflight, and must not be able to start generations that way."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/json":
        raise errors.unsupported_media_type(media_type)


def accept_get(state: ServerState, request: Request) -> Service:
    """The checks every authenticated GET passes (a loading server answers 503): the service that answers it."""
    check_auth(request, state.config)
    return state.ready()


async def accept_post(state: ServerState, request: Request) -> tuple[Service, bytes]:
    """The checks every POST passes, in order (a loading server answers 503 before the body is read), and its body."""
    check_auth(request, state.config)
    check_json_content_type(request)
    if state.draining:
        raise errors.shutting_down()
    service = state.ready()
    return service, await read_body(request, state.config.max_body_bytes, state.config.body_timeout)
