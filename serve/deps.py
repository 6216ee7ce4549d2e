"""FastAPI dependencies as ``Annotated`` aliases. They are ``async`` so they skip the threadpool."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from lnrnn.serve.config import Settings
from lnrnn.serve.errors import ModelNotReady
from lnrnn.serve.metrics import Metrics
from lnrnn.serve.runtime import Runtime


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


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
SettingsDep = Annotated[Settings, Depends(get_app_settings)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
