"""One pure-ASGI middleware (cheap per request): request-body cap, then request metrics."""

from __future__ import annotations

import time

from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lnrnn.serve.http.handlers import BodyTooLarge, error_response
from lnrnn.serve.metrics import Metrics


class GuardMiddleware:
    """Rejects a body over ``limit`` bytes before parsing (Content-Length) or while it streams in."""

    def __init__(self, app: ASGIApp, limit: int, metrics: Metrics) -> None:
        self.app = app
        self.limit = limit
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500
        limit = self.limit

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            declared = _content_length(scope)
            if declared is not None and declared > limit:
                message = f"request body is {declared} bytes, over the {limit}-byte limit; send less text"
                response = error_response(413, "payload_too_large", message, path=scope["path"])
                await response(scope, receive, send_status)
                return
            received = 0

            async def capped_receive() -> Message:
                nonlocal received
                message = await receive()
                if message["type"] == "http.request":
                    received += len(message.get("body", b""))
                    if received > limit:
                        raise BodyTooLarge(limit)
                return message

            await self.app(scope, capped_receive, send_status)
        finally:
            route = scope.get("route")
            endpoint = route.path if isinstance(route, Route) else "unmatched"
            self.metrics.requests.labels(endpoint, scope["method"], str(status)).inc()
            self.metrics.latency.labels(endpoint).observe(time.perf_counter() - start)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
