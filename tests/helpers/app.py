"""The app under test: FastAPI's TestClient, settings with overrides, and the /v1 error envelope."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import httpx
from starlette.exceptions import StarletteDeprecationWarning

with warnings.catch_warnings():  # starlette 1.10 prefers httpx2; this is the only warning silenced
    warnings.filterwarnings(
        "ignore", "Using `httpx` with `starlette.testclient`", StarletteDeprecationWarning
    )
    from fastapi.testclient import TestClient

from lnrnn.serve.config import Settings

__all__ = ["TestClient", "error", "settings_for"]


def settings_for(model_dir: Path | str, **kw: Any) -> Settings:
    return Settings(model_dir=Path(model_dir), **kw)


def error(response: httpx.Response, status: int, code: str | None = None) -> str:
    """Assert the error envelope ``{"error": {"code", "message"}}`` and return the message."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    if code is not None:
        assert body["error"]["code"] == code, body
    return body["error"]["message"]
