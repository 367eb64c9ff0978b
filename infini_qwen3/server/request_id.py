"""Every response carries an `x-request-id` header: the client's own when it sent one (so it can match logs),
else a new one. A plain ASGI middleware, so streamed responses pass through untouched."""

from __future__ import annotations

import re
import uuid

HEADER = b"x-request-id"
ACCEPTED = re.compile(rb"[A-Za-z0-9._:\-]{1,128}")  # echoed back only when it cannot break a header


class RequestIdMiddleware:
    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        given = next((value for name, value in scope["headers"] if name == HEADER), None)
        request_id = given if given is not None and ACCEPTED.fullmatch(given) else uuid.uuid4().hex.encode()

        async def send_with_id(message):
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), (HEADER, request_id)]}
            await send(message)

        await self.app(scope, receive, send_with_id)
