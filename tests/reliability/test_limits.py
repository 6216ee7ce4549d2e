"""Deadline and bounded queue (made deterministic with a blocking runtime), API key, CORS, safe defaults."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from lnrnn.cli import main
from lnrnn.serve.app import create_app
from lnrnn.serve.config import Settings
from lnrnn.serve.engine.cancel import Cancelled, checkpoint, run_cancellable
from lnrnn.serve.engine.runtime import Runtime, Scored
from tests.helpers import REPO, TestClient, error, settings_for

pytestmark = pytest.mark.timeout(120)


class Blocker:
    """Wraps ``Runtime.score``: each call signals ``started`` and waits until ``release`` is set."""

    def __init__(self, runtime: Runtime) -> None:
        self.score = runtime.score
        self.started = threading.Semaphore(0)
        self.release = threading.Event()
        runtime.score = self  # type: ignore[method-assign]

    def __call__(self, data: bytes, **kw: Any) -> Scored:
        self.started.release()
        assert self.release.wait(30), "never released"
        return self.score(data, **kw)


def blocked_client(model_dir: Path, **kw: Any) -> tuple[TestClient, Blocker, Any]:
    runtime = Runtime.load(model_dir)
    blocker = Blocker(runtime)
    app = create_app(settings_for(model_dir, **kw), runtime)
    return TestClient(app), blocker, app


def test_queue_full_is_503_overloaded(model_dir: Path) -> None:
    client, blocker, app = blocked_client(model_dir, max_inflight=1, max_queue=1, request_timeout_s=30)
    with client, ThreadPoolExecutor(2) as pool:
        running = pool.submit(client.post, "/v1/score", json={"text": "running"})
        assert blocker.started.acquire(timeout=10)  # 1 running
        queued = pool.submit(client.post, "/v1/score", json={"text": "queued"})
        deadline = time.monotonic() + 10
        while app.state.gate.pending < 2:  # 1 queued
            assert time.monotonic() < deadline
            time.sleep(0.01)
        refused = client.post("/v1/score", json={"text": "refused"})
        assert "retry" in error(refused, 503, "overloaded")
        assert refused.headers["retry-after"] == "1"
        blocker.release.set()
        assert running.result(10).status_code == 200 and queued.result(10).status_code == 200
        assert client.post("/v1/score", json={"text": "after"}).status_code == 200
        metrics = client.get("/metrics").text
        assert 'lnrnn_rejected_total{reason="overloaded"} 1.0' in metrics
        assert "lnrnn_inference_pending 0.0" in metrics


def test_deadline_is_504_and_running_work_keeps_its_slot_until_it_stops(model_dir: Path) -> None:
    client, blocker, app = blocked_client(model_dir, max_inflight=1, max_queue=1, request_timeout_s=0.3)
    with client:
        start = time.monotonic()
        message = error(client.post("/v1/score", json={"text": "slow"}), 504, "timeout")
        assert "LNRNN_REQUEST_TIMEOUT_S" in message and time.monotonic() - start < 5
        assert app.state.gate.pending == 1, "the abandoned call still runs and still holds its slot"
        # A second request waits in the queue, times out too, and is cancelled there (never runs).
        error(client.post("/v1/score", json={"text": "queued"}), 504, "timeout")
        assert app.state.gate.pending == 1
        blocker.release.set()
        deadline = time.monotonic() + 10
        while app.state.gate.pending:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert client.post("/v1/score", json={"text": "fast"}).status_code == 200
        assert blocker.started.acquire(timeout=0) and blocker.started.acquire(timeout=0)
        assert not blocker.started.acquire(timeout=0), "the cancelled queued call must never have run"


def test_a_timed_out_long_score_stops_at_its_next_chunk(model_dir: Path) -> None:
    """The deadline cancels running work too: the worker stops between two graph calls, not at the end.
    (Without batching, where the worker runs its own calls; tests/serve/test_batching.py has the other.)"""
    runtime = Runtime.load(model_dir, chunk_tokens=8)
    runs: list[int] = []
    started, release = threading.Event(), threading.Event()
    run = runtime.sequence_session.run

    def first_call_blocks(outputs: list[str], feeds: dict[str, Any]) -> Any:
        runs.append(feeds["tokens"].shape[1])
        if len(runs) == 1:
            started.set()
            assert release.wait(30), "never released"
        return run(outputs, feeds)

    runtime.sequence_session.run = first_call_blocks  # type: ignore[method-assign]
    settings = settings_for(model_dir, max_inflight=1, request_timeout_s=0.3, batch_streams=1)
    app = create_app(settings, runtime)
    with TestClient(app) as client:
        error(client.post("/v1/score", json={"text": "long " * 160}), 504, "timeout")  # 100 chunks of 8
        assert started.is_set() and app.state.gate.pending == 1
        release.set()
        deadline = time.monotonic() + 10
        while app.state.gate.pending:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert runs == [8], "after the deadline no further chunk may run"
        assert client.post("/v1/score", json={"text": "next"}).status_code == 200


def test_checkpoint_is_inert_outside_the_gate() -> None:
    checkpoint()  # CLI, bench and library calls are never cancelled
    event = threading.Event()
    assert run_cancellable(lambda: checkpoint() or "ran", event) == "ran"
    event.set()
    with pytest.raises(Cancelled):
        run_cancellable(checkpoint, event)
    checkpoint()  # the thread forgets the event afterwards


# --- API key ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def keyed(model_dir: Path) -> Iterator[TestClient]:
    with TestClient(create_app(settings_for(model_dir, api_key="s3cret-key"))) as c:
        yield c


@pytest.mark.parametrize(
    ("header", "fragment"),
    [
        (None, "missing"),
        ("Basic czNjcmV0LWtleQ==", "missing or not a Bearer"),
        ("Bearer", "missing"),
        ("Bearer wrong-key", "wrong API key"),
        ("Bearer s3cret-key-and-more", "wrong API key"),
        ("Token s3cret-key", "not a Bearer"),
    ],
)
def test_v1_needs_the_bearer_key(keyed: TestClient, header: str | None, fragment: str) -> None:
    headers = {} if header is None else {"Authorization": header}
    for method, path in (("POST", "/v1/score"), ("POST", "/v1/predict"), ("GET", "/v1/models")):
        response = keyed.request(method, path, json={"text": "a"}, headers=headers)
        assert fragment in error(response, 401, "unauthorized")
        assert response.headers["www-authenticate"] == "Bearer"


def test_right_key_passes_and_ops_routes_stay_open(keyed: TestClient) -> None:
    auth = {"Authorization": "Bearer s3cret-key"}
    assert keyed.post("/v1/score", json={"text": "a"}, headers=auth).status_code == 200
    lower = {"Authorization": "bearer s3cret-key"}  # the scheme is case-insensitive (RFC 7235)
    assert keyed.post("/v1/score", json={"text": "a"}, headers=lower).status_code == 200
    assert keyed.get("/v1/models", headers=auth).status_code == 200
    for path in ("/health/live", "/health/ready", "/metrics", "/openapi.json"):
        assert keyed.get(path).status_code == 200, path
    # Checked before the body is parsed: no key + broken JSON is 401, not 422.
    bad = keyed.post("/v1/score", content=b"{", headers={"content-type": "application/json"})
    error(bad, 401, "unauthorized")
    schema = keyed.get("/openapi.json").json()
    assert schema["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"


def test_no_key_configured_means_open(client: TestClient) -> None:
    assert client.post("/v1/score", json={"text": "a"}).status_code == 200
    assert "securitySchemes" not in client.get("/openapi.json").json().get("components", {})


# --- the request surface names no file, path or model ----------------------------------------------


def _names(node: Any, schema: dict) -> Iterator[str]:
    if isinstance(node, dict):
        if "$ref" in node:
            ref = node["$ref"].removeprefix("#/").split("/")
            target: Any = schema
            for part in ref:
                target = target[part]
            yield from _names(target, schema)
        for name, sub in node.get("properties", {}).items():
            yield name
            yield from _names(sub, schema)
        for key in ("items", "additionalProperties", "anyOf", "oneOf", "allOf"):
            if key in node:
                yield from _names(node[key], schema)
    elif isinstance(node, list):
        for item in node:
            yield from _names(item, schema)


def test_no_request_field_names_a_path(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    names: set[str] = set()
    for item in schema["paths"].values():
        for operation in item.values():
            names |= {p["name"] for p in operation.get("parameters", [])}
            for media in operation.get("requestBody", {}).get("content", {}).values():
                names |= set(_names(media["schema"], schema))
    assert {"text", "texts", "prompt", "top_k", "temperature", "max_chars"} <= names
    bad = [n for n in names if re.search("path|file|dir|model", n, re.IGNORECASE)]
    assert not bad, f"request fields that could name a file: {bad}"


# --- CORS -------------------------------------------------------------------------------------------

PREFLIGHT = {"Origin": "https://app.example", "Access-Control-Request-Method": "POST"}


def test_cors_off_by_default(client: TestClient) -> None:
    response = client.options("/v1/score", headers=PREFLIGHT)
    assert "access-control-allow-origin" not in response.headers
    assert response.status_code == 405
    plain = client.post("/v1/score", json={"text": "a"}, headers={"Origin": "https://app.example"})
    assert "access-control-allow-origin" not in plain.headers


def test_cors_allows_only_configured_origins(model_dir: Path) -> None:
    origins = " https://app.example , https://other.example"
    with TestClient(create_app(settings_for(model_dir, cors_origins=origins))) as c:
        ok = c.options("/v1/score", headers={**PREFLIGHT, "Access-Control-Request-Headers": "authorization"})
        assert ok.status_code == 200
        assert ok.headers["access-control-allow-origin"] == "https://app.example"
        post = c.post("/v1/score", json={"text": "a"}, headers={"Origin": "https://other.example"})
        assert post.headers["access-control-allow-origin"] == "https://other.example"
        evil = c.options("/v1/score", headers={**PREFLIGHT, "Origin": "https://evil.example"})
        assert evil.status_code == 400 and "access-control-allow-origin" not in evil.headers
        too_big = c.post(
            "/v1/score", json={"text": "a" * 2_000_000}, headers={"Origin": "https://app.example"}
        )
        assert too_big.status_code == 413 and "access-control-allow-origin" in too_big.headers


# --- safe defaults: loopback outside the image, non-root numeric user inside it ----------------------


def test_settings_bind_loopback_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LNRNN_HOST", raising=False)
    monkeypatch.delenv("LNRNN_API_KEY", raising=False)
    monkeypatch.delenv("LNRNN_CORS_ORIGINS", raising=False)
    settings = Settings()
    assert settings.host == "127.0.0.1" and settings.api_key is None and settings.cors_origin_list == []


def test_cli_binds_loopback_by_default(model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LNRNN_HOST", raising=False)
    seen: list[uvicorn.Config] = []
    monkeypatch.setattr(uvicorn.Server, "run", lambda self, sockets=None: seen.append(self.config))
    assert main(["serve", str(model_dir)]) == 0
    assert main(["serve", str(model_dir), "--host", "0.0.0.0", "--port", "9"]) == 0
    assert [(c.host, c.port) for c in seen] == [("127.0.0.1", 8000), ("0.0.0.0", 9)]
    assert seen[0].timeout_graceful_shutdown == 30


def dockerfile_stages() -> dict[str, list[str]]:
    """Stage name -> its instructions (continuation lines joined, comments dropped)."""
    text = re.sub(r"\\\n", " ", (REPO / "Dockerfile").read_text())
    stages: dict[str, list[str]] = {}
    current: list[str] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = re.match(r"FROM\s+\S+(?:\s+AS\s+(\S+))?", line, re.IGNORECASE)
        if match:
            current = stages.setdefault(match.group(1) or f"stage{len(stages)}", [])
        current.append(line)
    return stages


def test_docker_image_runs_as_non_root_and_listens_on_all_interfaces() -> None:
    stages = dockerfile_stages()
    sources = {m for lines in stages.values() for line in lines for m in re.findall(r"--from=(\S+)", line)}
    finals = [name for name in stages if name not in sources]
    assert finals and list(stages)[-1] in finals
    for name in finals:
        users = [line.split()[1] for line in stages[name] if line.upper().startswith("USER ")]
        assert users, f"stage {name} has no USER"
        assert users[-1].isdigit() and int(users[-1]) != 0, f"stage {name} runs as {users[-1]!r}"
        cmd = [line for line in stages[name] if line.upper().startswith("CMD ")][-1]
        env = " ".join(line for line in stages[name] if line.upper().startswith("ENV "))
        assert '"0.0.0.0"' in cmd or "LNRNN_HOST=0.0.0.0" in env, f"stage {name} does not bind 0.0.0.0"
