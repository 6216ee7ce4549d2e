"""The errors the server raises, each with an HTTP status, a stable code and a message that says what to
change. Plain exceptions (no web framework): the engine raises them too; http/handlers.py renders them."""

from __future__ import annotations


class ApiError(Exception):
    """An error with an HTTP status, a stable code and a message that says what to change."""

    status = 500
    code = "internal_error"
    headers: dict[str, str] | None = None

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(ApiError):
    status, code = 422, "invalid_request"


class PayloadTooLarge(ApiError):
    status, code = 413, "payload_too_large"


class ModelNotReady(ApiError):
    status, code = 503, "model_not_ready"


class Unauthorized(ApiError):
    status, code = 401, "unauthorized"
    headers = {"WWW-Authenticate": "Bearer"}


class UnsupportedMediaType(ApiError):
    status, code = 415, "unsupported_media_type"


class NotFound(ApiError):
    status, code = 404, "not_found"


class TooManySessions(ApiError):
    """Every session slot holds a session that is busy right now (idle ones are evicted instead)."""

    status, code = 429, "too_many_sessions"
    headers = {"Retry-After": "1"}


class Overloaded(ApiError):
    """Every inference slot is busy and the wait queue is full: retry later."""

    status, code = 503, "overloaded"
    headers = {"Retry-After": "1"}


class RequestTimeout(ApiError):
    """The request did not finish within LNRNN_REQUEST_TIMEOUT_S (queue wait included)."""

    status, code = 504, "timeout"
