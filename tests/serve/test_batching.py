"""Cross-request batching: concurrent requests share graph calls, get the answers they would get alone, and
a timed-out request leaves its batch while the others finish."""

from __future__ import annotations

import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lnrnn.serve.app import create_app
from lnrnn.serve.engine.runtime import Runtime
from tests.helpers import TestClient, settings_for

TEXT = "Whether 'tis nobler in the mind to suffer the slings and arrows of outrageous fortune, Größe 日本. "


def requests() -> list[tuple[str, dict[str, Any]]]:
    """Every kind of work: predict contexts of many lengths, scores, a texts batch, generation."""
    work: list[tuple[str, dict[str, Any]]] = []
    for n in (0, 1, 5, 17, 40, 41, 90):
        work.append(("/v1/predict", {"text": TEXT[:n], "top_k": 5}))
    for n in (3, 33, 97):
        work.append(("/v1/score", {"text": (TEXT * 3)[:n] + "!", "per_char": True}))
    work.append(("/v1/score", {"texts": [TEXT[:10], TEXT[:70], TEXT[5:15], TEXT * 2]}))
    work.append(("/v1/generate", {"prompt": TEXT[:12], "max_chars": 25, "seed": 3}))
    return work


def close(got: Any, want: Any) -> bool:
    """Equal structure, numbers within 1e-4 (nats per byte are within 1e-4: bits within 1.5e-4 per byte)."""
    if isinstance(want, dict):
        return got.keys() == want.keys() and all(close(got[k], want[k]) for k in want)
    if isinstance(want, list):
        return len(got) == len(want) and all(close(g, w) for g, w in zip(got, want, strict=True))
    if isinstance(want, float):
        return abs(got - want) <= 1.5e-4 * max(1.0, abs(want) / 8)
    return bool(got == want)


def streams_per_call(metrics: str) -> tuple[float, float]:
    """(graph calls with one stream, all graph calls) from the Prometheus text."""
    one = float(re.search(r'lnrnn_batch_streams_bucket\{le="1.0"\} (\S+)', metrics).group(1))  # type: ignore[union-attr]
    total = float(re.search(r"lnrnn_batch_streams_count (\S+)", metrics).group(1))  # type: ignore[union-attr]
    return one, total


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_concurrent_answers_equal_the_answers_alone(precision: str, model_dir: Path, int8_dir: Path) -> None:
    path = model_dir if precision == "fp32" else int8_dir
    alone_settings = settings_for(path, precision=precision, batch_streams=1, cache_size=0, chunk_tokens=16)
    with TestClient(create_app(alone_settings)) as c:
        alone = [c.post(p, json=body).json() for p, body in requests()]
    settings = settings_for(path, precision=precision, batch_streams=8, cache_size=0, chunk_tokens=16)
    with TestClient(create_app(settings)) as c, ThreadPoolExecutor(16) as pool:
        work = requests() * 3
        together = list(pool.map(lambda item: c.post(item[0], json=item[1]).json(), work))
        metrics = c.get("/metrics").text
    for i, got in enumerate(together):
        assert close(got, alone[i % len(alone)]), (work[i], got, alone[i % len(alone)])
    one, total = streams_per_call(metrics)
    assert total > 0 and one < total, "some graph calls must have carried more than one stream"
    assert 'lnrnn_batch_streams_bucket{le="8.0"} ' + f"{total}" in metrics  # never more than 8 rows
    assert "lnrnn_batch_queue_wait_seconds_count" in metrics


def test_sessions_share_calls_and_keep_their_numbers(model_dir: Path) -> None:
    settings = settings_for(model_dir, batch_streams=16, cache_size=0)
    with TestClient(create_app(settings)) as c:
        ids = [c.post("/v1/sessions", json={"text": TEXT[:i]}).json()["session_id"] for i in range(8)]

        def type_text(k: int) -> dict[str, Any]:
            body: dict[str, Any] = {}
            for ch in TEXT[8 : 8 + 30]:
                body = c.post(f"/v1/sessions/{ids[k]}/append", json={"text": ch}).json()
            return body

        with ThreadPoolExecutor(8) as pool:
            finals = list(pool.map(type_text, range(8)))
        one, total = streams_per_call(c.get("/metrics").text)
        assert one < total
        for k, final in enumerate(finals):
            text = TEXT[:k] + TEXT[8:38]
            want = c.post("/v1/score", json={"text": text}).json()["bits"]
            assert final["total_bits"] == pytest.approx(want, abs=1e-3)


def test_a_timed_out_request_leaves_the_batch_and_the_others_finish(model_dir: Path) -> None:
    runtime = Runtime.load(model_dir, chunk_tokens=8)
    calls: list[tuple[float, int]] = []  # (time, rows) of every graph call
    run = runtime.sequence_session.run
    lock = threading.Lock()

    def slow(outputs: list[str], feeds: dict[str, Any]) -> Any:
        time.sleep(0.01)  # a 4,000-token score takes ~5 s at 8 tokens per call: past its deadline
        with lock:
            calls.append((time.monotonic(), feeds["tokens"].shape[0]))
        return run(outputs, feeds)

    runtime.sequence_session.run = slow  # type: ignore[method-assign]
    settings = settings_for(model_dir, request_timeout_s=1.5, batch_streams=8, chunk_tokens=8)
    with TestClient(create_app(settings, runtime)) as c, ThreadPoolExecutor(4) as pool:
        long = pool.submit(c.post, "/v1/score", json={"text": "x" * 4000})
        time.sleep(0.2)
        short = [pool.submit(c.post, "/v1/predict", json={"text": TEXT[:24]}) for _ in range(3)]
        assert all(f.result(10).status_code == 200 for f in short)  # they shared calls with the long one
        assert max(rows for _, rows in calls) > 1
        response = long.result(10)
        assert response.status_code == 504 and response.json()["error"]["code"] == "timeout"
        ended = time.monotonic()
        time.sleep(0.3)
        with lock:
            late = [t for t, _ in calls if t > ended + 0.1]
        assert not late, "the timed-out score must leave the batch at the next tick, not run to its end"
        after = [pool.submit(c.post, "/v1/score", json={"text": f"after {i}"}) for i in range(4)]
        assert all(f.result(10).status_code == 200 for f in after)  # the scheduler is still serving


def test_models_describes_the_batching_knobs(model_dir: Path) -> None:
    settings = settings_for(model_dir, batch_streams=12, batch_wait_ms=0)
    with TestClient(create_app(settings)) as c:
        server = c.get("/v1/models").json()["server"]
    assert server["batch_streams"] == 12 and server["batch_wait_ms"] == 0.0
    assert server["max_inflight"] == 20  # default: LNRNN_BATCH_STREAMS + 8
    with TestClient(create_app(settings_for(model_dir, batch_streams=1))) as c:
        assert c.get("/v1/models").json()["server"]["max_inflight"] == 4  # without batching, as before


def test_lanes_get_even_work_and_every_stream_once() -> None:
    """A tick lasts as long as its busiest lane: 17 rows x 64 tokens beside 15 rows x 9 must not go one
    group per lane (1,088 vs 135 row-tokens), and no stream may be dropped or run twice."""
    from lnrnn.serve.engine.batcher import Batcher, Stream

    def stream(n: int) -> Stream:
        return Stream(np.zeros(n, np.int64), np.zeros((1, 1, 4), np.float32), None, None, 0.0)

    batcher = Batcher(object(), max_streams=32, wait_s=0, chunk_tokens=512, lanes=2)  # type: ignore[arg-type]
    try:
        for lengths in ([200] * 17 + [9] * 15, [64] * 32, [5, 300, 300, 1], [40]):
            streams = [stream(n) for n in lengths]
            plan = batcher._plan(batcher._groups(streams))
            placed = [id(s) for lane in plan for group in lane for s in group]
            assert sorted(placed) == sorted(map(id, streams))
            loads = [sum(batcher._cost(g) for g in lane) for lane in plan]
            splittable = any(len(g) > 1 for lane in plan for g in lane)
            if len(plan) == 2 and splittable:
                assert max(loads) <= 1.2 * sum(loads) / 2, (lengths, loads)
            for lane in plan:
                for group in lane:
                    assert len({min(s.left, batcher.slice_tokens) for s in group}) == 1  # one T per call
    finally:
        batcher.close()
