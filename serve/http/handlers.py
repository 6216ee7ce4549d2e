"""The one place that maps every error to ``{"error": {"code", "message"}}`` (/v2: ``{"error": str}``)."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from lnrnn.serve.errors import ApiError

log = logging.getLogger("lnrnn.serve")

CODES = {
    400: "bad_request",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    429: "too_many_sessions",
    503: "model_not_ready",
    504: "timeout",
}


class BodyTooLarge(StarletteHTTPException):
    """Raised from the body-size guard while the body streams in (FastAPI re-raises HTTPExceptions)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body exceeds {limit} bytes; send less text (LNRNN_MAX_TEXT_BYTES)")


V2_PREFIX = "/v2"  # the Open Inference Protocol's clients read a plain string: {"error": "<message>"}


def error_body(code: str, message: str, path: str = "") -> dict[str, Any]:
    if path == V2_PREFIX or path.startswith(V2_PREFIX + "/"):
        return {"error": message}
    return {"error": {"code": code, "message": message}}


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None, path: str = ""
) -> JSONResponse:
    return JSONResponse(error_body(code, message, path), status_code=status, headers=headers)


def _parse_failure(exc: BaseException) -> str:
    """FastAPI answers 400 "error parsing the body" for any non-JSONDecodeError; say which."""
    cause = exc.__cause__
    if isinstance(cause, UnicodeDecodeError):
        return f"the body is not valid UTF-8 (byte 0x{cause.object[cause.start]:02x} at offset {cause.start})"
    if isinstance(cause, RecursionError):
        return "the JSON body is nested too deeply; send a flat JSON object"
    return "the body could not be parsed as JSON"


def _validation_message(err: RequestValidationError) -> str:
    parts = []
    for item in err.errors()[:5]:
        loc = ".".join(str(p) for p in item.get("loc", ()) if p != "body")
        msg = str(item.get("msg", "invalid"))
        msg = msg.removeprefix("Value error, ")
        if item.get("type") == "json_invalid":
            msg = f"the body is not valid JSON ({item.get('ctx', {}).get('error', 'decode error')})"
            loc = ""
        elif item.get("type") == "extra_forbidden":
            msg = "unknown field; remove it (see /docs for the accepted fields)"
        parts.append(f"{loc}: {msg}" if loc else msg)
    return "; ".join(parts) or "invalid request"


def add_exception_handlers(app: FastAPI) -> None:
    """Register every handler: domain errors, validation (422), HTTP errors (400, 404, 405, 413), else 500."""

    async def api_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        return error_response(exc.status, exc.code, exc.message, exc.headers, request.url.path)

    async def validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return error_response(422, "invalid_request", _validation_message(exc), path=request.url.path)

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        code = CODES.get(exc.status_code, "http_error")
        message = str(exc.detail)
        where = f"{request.method} {request.url.path}"
        if exc.status_code == 400 and exc.__cause__ is not None:
            message = _parse_failure(exc)
        elif exc.status_code == 404:
            message = f"no route {where}; see /docs for the endpoints"
        elif exc.status_code == 405:
            allowed = (exc.headers or {}).get("Allow", "")
            message = f"{where} is not allowed; use {allowed or 'another method'}"
        body = error_body(code, message, request.url.path)
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)

    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=exc)
        message = "internal server error; see the server log"
        return error_response(500, "internal_error", message, path=request.url.path)

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, unexpected)
