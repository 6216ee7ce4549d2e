"""Server-held sessions: lifecycle, equality with the stateless routes, limits, expiry, concurrent appends."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from lnrnn.serve.app import create_app
from lnrnn.serve.engine.sessions import SessionStore
from lnrnn.serve.errors import NotFound, TooManySessions
from tests.helpers import TestClient, error, settings_for

START = "To be, or not to be: "
PIECES = ["t", "hat", " is the qu", "é", "stion 日本", "", "!"]  # one char, words, multi-byte, empty


@pytest.fixture(scope="module", params=["fp32", "int8"])
def precision_client(request: pytest.FixtureRequest, model_dir: Path, int8_dir: Path) -> Iterator[TestClient]:
    """fp32 on the shared tiny model, int8 on a model exported with its int8 pair; small chunks so that a
    session's appends and the stateless routes cut the text differently."""
    path = model_dir if request.param == "fp32" else int8_dir
    settings = settings_for(path, precision=request.param, chunk_tokens=5, cache_size=0)
    with TestClient(create_app(settings)) as c:
        assert c.get("/v1/models").json()["models"][0]["precision"] == request.param
        yield c


def candidates(body: dict) -> dict[str, float]:
    return {c["char"]: c["prob"] for c in body["candidates"]}


def assert_same_candidates(got: dict, want: dict) -> None:
    assert list(candidates(got)) == list(candidates(want))
    for char, prob in candidates(got).items():
        assert prob == pytest.approx(candidates(want)[char], abs=1e-4)
    assert got["other"] == pytest.approx(want["other"], abs=1e-4)


def test_session_equals_the_stateless_routes(precision_client: TestClient) -> None:
    c = precision_client
    created = c.post("/v1/sessions", json={"text": START, "top_k": 5})
    assert created.status_code == 201, created.text
    body = created.json()
    assert set(body) == {"session_id", "bytes", "bits", "candidates", "other", "expires_in_s"}
    sid, text = body["session_id"], START
    assert body["bytes"] == len(START.encode())
    assert body["bits"] == pytest.approx(c.post("/v1/score", json={"text": START}).json()["bits"], abs=1e-3)
    assert_same_candidates(body, c.post("/v1/predict", json={"text": START, "top_k": 5}).json())
    total = body["bits"]
    for piece in PIECES:
        appended = c.post(f"/v1/sessions/{sid}/append", json={"text": piece, "top_k": 5})
        assert appended.status_code == 200, appended.text
        step = appended.json()
        text += piece
        n = len(text.encode())
        want = c.post("/v1/score", json={"text": text}).json()["bits"]
        assert step["bytes"] == len(piece.encode()) and step["total_bytes"] == n
        assert step["total_bits"] == pytest.approx(want, abs=1e-4 * n / np.log(2))  # 1e-4 nats per byte
        assert step["bits"] == pytest.approx(step["total_bits"] - total, abs=1e-6 + 1e-4 * n)
        total = step["total_bits"]
        assert_same_candidates(step, c.post("/v1/predict", json={"text": text, "top_k": 5}).json())
    info = c.get(f"/v1/sessions/{sid}").json()
    assert info["total_bytes"] == len(text.encode()) and info["total_bits"] == pytest.approx(total)
    assert info["bits_per_byte"] == pytest.approx(total / len(text.encode()))


def test_lifecycle_ids_and_errors(client: TestClient) -> None:
    created = client.post("/v1/sessions", json={})  # empty text: a new document, nothing paid yet
    assert created.status_code == 201 and created.json()["bytes"] == 0 and created.json()["bits"] == 0.0
    sid = created.json()["session_id"]
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", sid)  # 16 random bytes, URL-safe base64
    other = client.post("/v1/sessions", json={"text": "x"}).json()["session_id"]
    assert other != sid
    info = client.get(f"/v1/sessions/{sid}").json()
    assert info["total_bytes"] == 0 and info["bits_per_byte"] is None and info["age_s"] >= 0
    assert 0 < info["expires_in_s"] <= 600
    assert client.delete(f"/v1/sessions/{sid}").status_code == 204
    for method, path in (
        ("GET", f"/v1/sessions/{sid}"),
        ("POST", f"/v1/sessions/{sid}/append"),
        ("DELETE", f"/v1/sessions/{sid}"),
        ("GET", "/v1/sessions/not-a-session"),
    ):
        kw = {"json": {"text": "a"}} if method == "POST" else {}
        message = error(client.request(method, path, **kw), 404, "not_found")
        assert "POST /v1/sessions" in message
    error(client.post(f"/v1/sessions/{other}/append", json={"text": "a", "top_k": 0}), 422, "invalid_request")
    error(client.post(f"/v1/sessions/{other}/append", json={"txt": "a"}), 422, "invalid_request")
    error(client.post("/v1/sessions", json={"text": "a" * 4001}), 413, "payload_too_large")
    error(client.post(f"/v1/sessions/{other}/append", content=b"a", headers={"content-type": "text/plain"}),
          415, "unsupported_media_type")  # fmt: skip
    assert client.get(f"/v1/sessions/{other}").json()["total_bytes"] == 1  # failed appends changed nothing


def test_eviction_expiry_and_metrics(model_dir: Path) -> None:
    settings = settings_for(model_dir, max_sessions=2, session_ttl_s=0.3, cache_size=8)
    with TestClient(create_app(settings)) as c:
        first = c.post("/v1/sessions", json={"text": "a"}).json()["session_id"]
        second = c.post("/v1/sessions", json={"text": "b"}).json()["session_id"]
        c.post(f"/v1/sessions/{first}/append", json={"text": "c"})  # first is now the most recent
        third = c.post("/v1/sessions", json={"text": "d"}).json()["session_id"]  # evicts second (LRU)
        error(c.get(f"/v1/sessions/{second}"), 404, "not_found")
        assert c.get(f"/v1/sessions/{first}").status_code == 200
        c.post("/v1/predict", json={"text": "hello"})
        c.post("/v1/predict", json={"text": "hello"})
        c.post("/v1/predict", json={"text": "hello w"})
        metrics = c.get("/metrics").text
        assert 'lnrnn_session_evictions_total{reason="lru"} 1.0' in metrics
        assert "lnrnn_sessions_open 2.0" in metrics
        for outcome, n in (("miss", 1), ("exact", 1), ("partial", 1)):
            assert f'lnrnn_prefix_cache_lookups_total{{outcome="{outcome}"}} {n}.0' in metrics
        time.sleep(0.4)
        error(c.post(f"/v1/sessions/{third}/append", json={"text": "e"}), 404, "not_found")
        assert 'lnrnn_session_evictions_total{reason="expired"} 2.0' in c.get("/metrics").text


def test_store_refuses_when_every_session_is_busy_and_expiry_follows_the_clock() -> None:
    now = [0.0]
    store = SessionStore(max_sessions=2, ttl_s=10.0, clock=lambda: now[0])
    state, last = np.zeros((1, 1, 4), np.float32), np.zeros(257, np.float32)

    async def scenario() -> None:
        a = store.add(state, last, 0, 0.0)
        b = store.add(state, last, 0, 0.0)
        async with a.lock, b.lock:  # both busy with an append: nobody may be evicted
            with pytest.raises(TooManySessions, match="LNRNN_MAX_SESSIONS"):
                store.add(state, last, 0, 0.0)
            now[0] = 100.0
            store.sweep()  # busy sessions do not expire under a running append
            assert len(store) == 2
        now[0] = 105.0
        with pytest.raises(NotFound, match="LNRNN_SESSION_TTL_S"):
            store.get(a.id)  # idle for 105 s > 10 s: expired as soon as no append holds it
        assert len(store) == 0
        fresh = store.add(state, last, 0, 0.0)
        now[0] = 114.0
        assert store.get(fresh.id) is fresh and store.expires_in(fresh) == 10.0  # a call renews it

    asyncio.run(scenario())


def test_concurrent_appends_to_one_session_never_interleave(model_dir: Path) -> None:
    settings = settings_for(model_dir, max_inflight=4, chunk_tokens=4)
    with TestClient(create_app(settings)) as c:
        sid = c.post("/v1/sessions", json={"text": "start"}).json()["session_id"]
        piece = "abcdefghij" * 3

        def append(_: int) -> int:
            return c.post(f"/v1/sessions/{sid}/append", json={"text": piece}).status_code

        with ThreadPoolExecutor(8) as pool:
            assert list(pool.map(append, range(16))) == [200] * 16
        info = c.get(f"/v1/sessions/{sid}").json()
        text = "start" + piece * 16
        assert info["total_bytes"] == len(text)
        # Interleaved appends would both continue the same state: the bits would not be those of the text.
        want = c.post("/v1/score", json={"text": text}).json()["bits"]
        assert info["total_bits"] == pytest.approx(want, abs=1e-3)
        after = c.post(f"/v1/sessions/{sid}/append", json={"text": "!"}).json()
        assert_same_candidates(after, c.post("/v1/predict", json={"text": text + "!"}).json())
