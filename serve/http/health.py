"""Operational routes: liveness, readiness (KServe style) and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from lnrnn.serve.http.deps import MetricsDep, get_runtime
from lnrnn.serve.http.schemas import ErrorResponse, Health

router = APIRouter(tags=["operations"])


@router.get("/health/live", response_model=Health, summary="the process is up (always 200)")
async def live() -> Health:
    return Health(status="live")


@router.get(
    "/health/ready",
    response_model=Health,
    responses={503: {"model": ErrorResponse, "description": "model missing, broken or still loading"}},
    summary="200 once the model is loaded, else 503",
)
async def ready(request: Request) -> Health:
    runtime = await get_runtime(request)  # raises ModelNotReady -> 503
    return Health(status="ready", provider=runtime.provider)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(metrics: MetricsDep) -> Response:
    return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)
