"""The FastAPI app factory. The model loads in the lifespan; a broken model leaves the server up, unready."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI

from lnrnn import __version__
from lnrnn.serve.config import Settings, get_settings
from lnrnn.serve.engine.batcher import BatchedScorer, Batcher
from lnrnn.serve.engine.gate import InferenceGate
from lnrnn.serve.engine.runtime import ModelLoadError, Runtime
from lnrnn.serve.engine.sessions import SessionStore
from lnrnn.serve.http import health
from lnrnn.serve.http.handlers import add_exception_handlers
from lnrnn.serve.http.middleware import GuardMiddleware
from lnrnn.serve.http.security import ApiKeyMiddleware, add_cors, bearer_scheme
from lnrnn.serve.metrics import Metrics
from lnrnn.serve.page import route as page
from lnrnn.serve.v1 import complete as complete_routes
from lnrnn.serve.v1 import compress as compress_routes
from lnrnn.serve.v1 import routes, surprisal
from lnrnn.serve.v1 import sessions as session_routes
from lnrnn.serve.v2 import routes as v2_routes

log = logging.getLogger("lnrnn.serve")

DESCRIPTION = """Next-character prediction, bits-per-byte scoring and generation with a byte-level
layer-norm RNN on ONNX Runtime. Errors are `{"error": {"code": str, "message": str}}`;
request bodies reject unknown fields. With `LNRNN_API_KEY` set, `/v1` needs `Authorization: Bearer <key>`;
`/health/*`, `/metrics` and the docs stay open."""


def load_runtime(settings: Settings) -> Runtime:
    return Runtime.load(
        settings.model_dir,
        device=settings.device,
        threads=settings.threads,
        precision=settings.precision,
        chunk_tokens=settings.chunk_tokens,
        cache_size=settings.cache_size,
    )


def create_app(settings: Settings | None = None, runtime: Runtime | None = None) -> FastAPI:
    """Build the app. ``runtime`` (already loaded, e.g. by the CLI) skips loading in the lifespan."""
    settings = settings or get_settings()
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        loaded = runtime
        if loaded is None:
            try:
                loaded = load_runtime(settings)
            except ModelLoadError as err:
                app.state.load_error = str(err)
                log.error("model not loaded, /health/ready will answer 503: %s", err)
        gate = InferenceGate(settings.inflight, settings.max_queue, settings.request_timeout_s, metrics)
        batcher = None
        if loaded is not None:
            cfg = loaded.meta.config
            name = loaded.model_dir.resolve().name
            labels = (name, cfg.cell, str(cfg.layers), str(cfg.hidden), loaded.precision, loaded.provider)
            metrics.model_info.labels(*labels).set(1)
            metrics.model_ready.set(1)
            scorer = loaded.scorer
            if settings.batch_streams > 1:
                batcher = Batcher(
                    loaded.sequence_session,
                    max_streams=settings.batch_streams,
                    wait_s=settings.batch_wait_ms / 1000,
                    chunk_tokens=loaded.chunk_tokens,
                    lanes=settings.batch_lanes,
                    metrics=metrics,
                    busy_requests=lambda: gate.running,
                )
                scorer = BatchedScorer(loaded.scorer, batcher)
            # this app's own view: its scorer and a prefix cache that counts into its metrics
            loaded = loaded.view(scorer, lambda outcome: metrics.cache_lookups.labels(outcome).inc())
            log.info("model %s loaded (%s)", name, loaded.describe())
        app.state.runtime = loaded
        app.state.sessions = SessionStore(settings.max_sessions, settings.session_ttl_s, metrics)
        app.state.gate = gate
        yield
        gate.close()  # uvicorn has already waited for in-flight requests
        if batcher is not None:
            batcher.close()
        app.state.gate = None
        app.state.sessions = None
        app.state.runtime = None
        metrics.model_ready.set(0)

    app = FastAPI(title="lnrnn", version=__version__, description=DESCRIPTION, lifespan=lifespan)
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.runtime = None
    app.state.load_error = None
    app.state.gate = None
    app.state.sessions = None
    add_exception_handlers(app)
    key = settings.api_key.get_secret_value() if settings.api_key else ""
    if key:  # innermost: runs after the body cap has looked at Content-Length, before the body is read
        app.add_middleware(ApiKeyMiddleware, api_key=key)
    app.add_middleware(GuardMiddleware, limit=settings.body_limit, metrics=metrics)
    add_cors(app, settings.cors_origin_list)  # outermost, so error responses carry CORS headers too
    app.include_router(health.router)
    # The bearer dependency only documents the scheme in OpenAPI; ApiKeyMiddleware enforces it.
    protected = [Depends(bearer_scheme)] if key else []
    app.include_router(routes.router, dependencies=protected)
    app.include_router(session_routes.router, dependencies=protected)
    app.include_router(compress_routes.router, dependencies=protected)
    app.include_router(surprisal.router, dependencies=protected)
    app.include_router(complete_routes.router, dependencies=protected)
    app.include_router(v2_routes.health_router)
    app.include_router(v2_routes.router, dependencies=protected)
    app.include_router(page.router, dependencies=[Depends(bearer_scheme)] if key else [])
    return app
