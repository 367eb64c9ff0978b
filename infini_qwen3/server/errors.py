"""OpenAI's error shape: {"error": {"message", "type", "param", "code"}} with the matching HTTP status."""

from __future__ import annotations

from starlette.responses import JSONResponse

INVALID_REQUEST = "invalid_request_error"
SERVER_ERROR = "server_error"


class APIError(Exception):
    def __init__(self, status: int, message: str, *, type: str = INVALID_REQUEST, param: str | None = None,
                 code: str | None = None, close: bool = False):
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type, param, code
        self.close = close  # the connection is closed after this answer

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    def response(self) -> JSONResponse:
        headers = {"connection": "close"} if self.close else None
        return JSONResponse(self.body(), status_code=self.status, headers=headers)


def bad_request(message: str, param: str | None = None, code: str | None = None) -> APIError:
    return APIError(400, message, param=param, code=code)


def context_length_exceeded(message: str, param: str) -> APIError:
    return APIError(400, message, param=param, code="context_length_exceeded")


def model_not_found(name: str, served: str) -> APIError:
    return APIError(404, f"The model `{name}` does not exist; this server serves `{served}`.", param="model",
                    code="model_not_found")


def server_busy(message: str) -> APIError:
    return APIError(429, f"The server is busy: {message}. Retry later.", type="rate_limit_error", code="server_busy")


def unauthorized() -> APIError:
    return APIError(401, "Incorrect or missing API key: send `Authorization: Bearer <key>`.",
                    code="invalid_api_key")


def shutting_down(message: str = "The server is shutting down.") -> APIError:
    return APIError(503, message, type="server_error", code="server_shutting_down")


def unsupported_media_type(media_type: str) -> APIError:
    return APIError(415, f"The body must be JSON (Content-Type: application/json), not {media_type or 'untyped'}.")


def ambiguous_length() -> APIError:
    return APIError(400, "A request may not carry both Content-Length and Transfer-Encoding.", close=True)


def body_timeout(seconds: float) -> APIError:
    return APIError(408, f"The request body did not arrive within {seconds:g} s.", close=True)


def body_too_large(limit: int) -> APIError:
    return APIError(413, f"The request body is larger than {limit} bytes.", code="request_too_large")


def not_ready() -> APIError:
    return APIError(503, "The model is still loading.", type=SERVER_ERROR, code="model_loading")


def internal(message: str) -> APIError:
    return APIError(500, message, type=SERVER_ERROR, code="internal_error")
