"""FastAPI dependencies as ``Annotated`` aliases. They are ``async`` so they skip the threadpool."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from lnrnn.serve.config import Settings
from lnrnn.serve.engine.gate import InferenceGate
from lnrnn.serve.engine.runtime import Runtime
from lnrnn.serve.engine.sessions import SessionStore
from lnrnn.serve.errors import ModelNotReady, UnsupportedMediaType
from lnrnn.serve.metrics import Metrics


async def get_runtime(request: Request) -> Runtime:
    runtime: Runtime | None = getattr(request.app.state, "runtime", None)
    if runtime is None:
        reason = getattr(request.app.state, "load_error", None) or "the model is still loading"
        raise ModelNotReady(f"model not loaded: {reason}")
    return runtime


async def get_app_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_metrics(request: Request) -> Metrics:
    return request.app.state.metrics


async def get_gate(request: Request) -> InferenceGate:
    gate: InferenceGate | None = getattr(request.app.state, "gate", None)
    if gate is None:
        raise ModelNotReady("the server is starting or shutting down")
    return gate


async def get_store(request: Request) -> SessionStore:
    store: SessionStore | None = getattr(request.app.state, "sessions", None)
    if store is None:
        raise ModelNotReady("the server is starting or shutting down")
    return store


async def require_json(request: Request) -> None:
    """POST bodies must be JSON: 415 for another content type (FastAPI would only say "not a dict")."""
    if request.method != "POST":
        return
    content_type = request.headers.get("content-type", "")
    media = content_type.split(";")[0].strip().lower()
    if media != "application/json" and not (media.startswith("application/") and media.endswith("+json")):
        shown = f"content-type {media!r}" if media else "no content-type"
        raise UnsupportedMediaType(f"{shown}: send the body as JSON with `Content-Type: application/json`")


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
SettingsDep = Annotated[Settings, Depends(get_app_settings)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
GateDep = Annotated[InferenceGate, Depends(get_gate)]
StoreDep = Annotated[SessionStore, Depends(get_store)]
