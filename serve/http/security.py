"""API-key check for /v1 (pure ASGI, before the body is read) and the optional CORS middleware."""

from __future__ import annotations

import hmac

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.security import HTTPBearer
from starlette.types import ASGIApp, Receive, Scope, Send

from lnrnn.serve.errors import Unauthorized
from lnrnn.serve.http.handlers import error_response

PROTECTED_PREFIX = "/v1/"  # health, metrics and docs stay open: probes and scrapers carry no key
V2_OPEN_PREFIX = "/v2/health/"  # the v2 routes are protected like /v1, except their health probes
bearer_scheme = HTTPBearer(
    auto_error=False, description="LNRNN_API_KEY; checked before the body is read (401 otherwise)"
)


def bearer_token(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header (scheme case-insensitive), else None."""
    for name, value in headers:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").strip().partition(" ")
            return token.strip() if scheme.lower() == "bearer" and token.strip() else None
    return None


def protected(path: str) -> bool:
    """Does ``path`` need the API key? /v1/* and /v2, /v2/* except the v2 health probes."""
    v2 = path == "/v2" or (path.startswith("/v2/") and not path.startswith(V2_OPEN_PREFIX))
    return path.startswith(PROTECTED_PREFIX) or v2


class ApiKeyMiddleware:
    """401 ``unauthorized`` for a protected request without the right bearer token (constant-time compare)."""

    def __init__(self, app: ASGIApp, api_key: str) -> None:
        self.app = app
        self.key = api_key.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and protected(scope["path"]):
            token = bearer_token(scope["headers"])
            if token is None or not hmac.compare_digest(token.encode(), self.key):
                reason = "missing or not a Bearer token" if token is None else "wrong API key"
                message = f"{reason}: send `Authorization: Bearer <LNRNN_API_KEY>`"
                response = error_response(
                    401, Unauthorized.code, message, Unauthorized.headers, scope["path"]
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def add_cors(app: FastAPI, origins: list[str]) -> None:
    """CORS only for the configured origins; nothing at all (no headers, no preflight) when empty."""
    if origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type"],
            max_age=600,
        )
