"""A real uvicorn process on a free port, queried over HTTP with httpx."""

from __future__ import annotations

import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.helpers import TinyModel, free_port, serve_argv, server

pytestmark = pytest.mark.slow


def test_real_server_scores_and_survives_concurrency(tiny: TinyModel) -> None:
    port = free_port()
    argv = serve_argv(tiny.dir, port)
    with server(argv, port) as (url, _), httpx.Client(base_url=url, timeout=30) as http:
        assert http.get("/health/ready").json() == {"status": "ready", "provider": "CPUExecutionProvider"}
        text = "real process, real HTTP: ünïcödé " * 4
        body = http.post("/v1/score", json={"text": text}).json()
        assert body["bits"] == pytest.approx(tiny.bits(text.encode()), abs=1e-3)
        texts = [text[: 10 + 3 * i] for i in range(32)]
        serial = [http.post("/v1/score", json={"text": t}).json()["bits"] for t in texts]
        with ThreadPoolExecutor(32) as pool:
            parallel = list(
                pool.map(lambda t: http.post("/v1/score", json={"text": t}).json()["bits"], texts)
            )
        assert parallel == pytest.approx(serial, abs=1e-6)
        assert (
            'lnrnn_requests_total{endpoint="/v1/score",method="POST",status="200"} 65.0'
            in http.get("/metrics").text
        )


def test_real_server_without_model_is_live_but_not_ready(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "LNRNN_MODEL_DIR": str(tmp_path / "missing")}
    argv = [sys.executable, "-m", "uvicorn", "--factory", "lnrnn.serve.app:create_app", "--port", str(port)]
    with server(argv + ["--log-level", "critical"], port, env=env) as (url, _):
        response = httpx.get(f"{url}/health/ready")
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "model_not_ready"
