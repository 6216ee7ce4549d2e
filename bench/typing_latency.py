"""Typing against a real `lnrnn serve`: one character at a time, through a session and through /v1/predict.

One client (httpx, sequential requests) types the held-out text after a 200-byte context:

* session: ``POST /v1/sessions`` with the context, then ``POST /v1/sessions/{id}/append`` per character;
* stateless: ``POST /v1/predict`` with the whole context so far each time (the server's prefix cache holds
  the previous context, so only the new byte is run);
* uncached: ``/v1/predict`` with distinct 200-byte contexts (201 recurrent steps each), for comparison;
* the HTTP floor: ``GET /health/live`` on the same connection (no model, no body);
* in process, without HTTP: the T=1 feed and the top-k decoding that one append runs.

The text must be ASCII (one character = one byte). Both typing runs see the same contexts, so their
candidates are compared too (the server's numbers do not depend on where a call stopped).
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from bench.serving import model_dir, running_server

CONTEXT_BYTES = 200
TOP_K = 5


class Recorder:
    """Latencies of one kind of request, and the ones that did not get the expected status."""

    def __init__(self, client: httpx.Client) -> None:
        self.client = client
        self.seconds: list[float] = []
        self.errors: list[str] = []

    def post(self, path: str, body: dict[str, Any] | None, expect: int = 200) -> dict[str, Any] | None:
        """POST ``body`` (GET when it is None); the JSON answer, or None when it failed."""
        start = time.perf_counter()
        try:
            response = self.client.post(path, json=body) if body is not None else self.client.get(path)
        except httpx.HTTPError as err:
            self.errors.append(f"{type(err).__name__}: {err}")
            return None
        self.seconds.append(time.perf_counter() - start)
        if response.status_code != expect:
            self.errors.append(f"{path.split('/')[2]} {response.status_code}: {response.text[:200]}")
            return None
        return response.json()

    def summary(self) -> dict[str, Any]:
        ms = np.array(self.seconds or [0.0]) * 1000
        return {
            "requests": len(self.seconds),
            "errors": len(self.errors),
            "error_samples": sorted(set(self.errors))[:5],
            "p50_ms": float(np.percentile(ms, 50)),
            "p99_ms": float(np.percentile(ms, 99)),
            "mean_ms": float(ms.mean()),
            "max_ms": float(ms.max()),
        }


def _prediction(body: dict[str, Any] | None) -> list[tuple[str, float]] | None:
    return None if body is None else [(c["char"], c["prob"]) for c in body["candidates"]]


def type_session(client: httpx.Client, context: str, typed: str) -> tuple[dict[str, Any], list[Any]]:
    """Create a session with ``context``, append ``typed`` one character per request."""
    create, append = Recorder(client), Recorder(client)
    created = create.post("/v1/sessions", {"text": context, "top_k": TOP_K}, expect=201)
    if created is None:
        return {"create": create.summary(), "append": append.summary(), "total_bytes_ok": False}, []
    path = f"/v1/sessions/{created['session_id']}/append"
    predictions, last = [], None
    for char in typed:
        got = append.post(path, {"text": char, "top_k": TOP_K})
        predictions.append(_prediction(got))
        last = got or last
    total_ok = last is not None and last["total_bytes"] == len(context) + len(typed)
    return {"create": create.summary(), "append": append.summary(), "total_bytes_ok": total_ok}, predictions


def type_stateless(client: httpx.Client, context: str, typed: str) -> tuple[dict[str, Any], list[Any]]:
    """The same typing as one /v1/predict per character with the whole context so far."""
    prime, predict = Recorder(client), Recorder(client)
    prime.post("/v1/predict", {"text": context, "top_k": TOP_K})  # what the session's create ran
    predictions = [
        _prediction(predict.post("/v1/predict", {"text": context + typed[: i + 1], "top_k": TOP_K}))
        for i in range(len(typed))
    ]
    return {"prime": prime.summary(), "predict": predict.summary()}, predictions


def uncached(client: httpx.Client, chars: str, requests: int) -> dict[str, Any]:
    """/v1/predict on distinct 200-byte windows: none is a cached context or an extension of one."""
    stride = max(1, min(CONTEXT_BYTES, (len(chars) - CONTEXT_BYTES) // requests))
    recorder = Recorder(client)
    for i in range(requests):
        start = (i * stride) % (len(chars) - CONTEXT_BYTES)
        recorder.post("/v1/predict", {"text": chars[start : start + CONTEXT_BYTES], "top_k": TOP_K})
    return recorder.summary() | {"context_bytes": CONTEXT_BYTES, "stride": stride}


def http_floor(client: httpx.Client, requests: int) -> dict[str, Any]:
    """GET /health/live: the HTTP round trip of this client and server with no model and no JSON body."""
    recorder = Recorder(client)
    for _ in range(requests):
        recorder.post("/health/live", None)
    return recorder.summary()


def in_process(model: Path, context: str, typed: str) -> dict[str, Any]:
    """The model's share of one append, without HTTP: the T=1 feed and the top-k decoding, as the route
    runs them (``lnrnn serve`` defaults: CPU, 1 thread, precision auto)."""
    from lnrnn.scorer import byte_array, document_array
    from lnrnn.serve.engine.decode import top_chars
    from lnrnn.serve.engine.runtime import Runtime

    runtime = Runtime.load(model, device="cpu", threads=1, precision="auto")
    fed = runtime.scorer.feed(document_array(context.encode()), runtime.scorer.start_state())
    feed_s, decode_s = [], []
    for char in typed:
        start = time.perf_counter()
        fed = runtime.scorer.feed(byte_array(char.encode()), fed.state, fed.last[0])
        middle = time.perf_counter()
        top_chars(runtime, fed.last[0], fed.state, TOP_K)
        feed_s.append(middle - start)
        decode_s.append(time.perf_counter() - middle)
    return {
        "served": runtime.describe(),
        "feed_p50_ms": 1000 * float(np.median(feed_s)),
        "decode_p50_ms": 1000 * float(np.median(decode_s)),
    }


def _timed(log: Callable[[str], None], name: str, fn: Callable[[], Any]) -> Any:
    load = os.getloadavg()[0]
    result = fn()
    log(f"  typing {name} done (load {load:.2f} -> {os.getloadavg()[0]:.2f})")
    return result


def measure(
    text: bytes, quick: bool, model: Path | None = None, log: Callable[[str], None] = print
) -> dict[str, Any]:
    """``model``: a model directory (default: models/default, or a random model if it is missing)."""
    chars = text.decode("ascii")  # one character per byte: an append is one recurrent step
    n_typed = 200 if quick else 1000
    n_uncached = 200 if quick else 500
    if len(chars) < CONTEXT_BYTES + n_typed:
        raise ValueError(f"need at least {CONTEXT_BYTES + n_typed} bytes of text, got {len(chars)}")
    context, typed = chars[:CONTEXT_BYTES], chars[CONTEXT_BYTES : CONTEXT_BYTES + n_typed]
    # the uncached contexts come after the typed text: no overlap with what the cache holds
    rest = chars[CONTEXT_BYTES + n_typed :] if len(chars) > 2 * CONTEXT_BYTES + n_typed + 1 else chars
    with tempfile.TemporaryDirectory(prefix="lnrnn-bench-typing-") as tmp_name:
        tmp = Path(tmp_name)
        served, which = (model, str(model)) if model is not None else model_dir(tmp)
        load_start = os.getloadavg()[0]
        with (
            running_server(served, tmp / "server.log") as (url, _, _),
            httpx.Client(base_url=url, timeout=60.0) as client,
        ):
            type_session(client, rest[:CONTEXT_BYTES], rest[CONTEXT_BYTES : CONTEXT_BYTES + 20])  # warm-up
            session, by_session = _timed(log, "session", lambda: type_session(client, context, typed))
            stateless, by_predict = _timed(log, "stateless", lambda: type_stateless(client, context, typed))
            distinct = _timed(log, "uncached", lambda: uncached(client, rest, n_uncached))
            floor = _timed(log, "http floor", lambda: http_floor(client, n_typed))
        load_end = os.getloadavg()[0]
        model_share = in_process(served, context, typed)  # after the server stopped: no shared cores
    same = sum(a is not None and a == b for a, b in zip(by_session, by_predict, strict=True))
    return {
        "model": which,
        "context_bytes": CONTEXT_BYTES,
        "typed_chars": n_typed,
        "top_k": TOP_K,
        "client": "1 httpx.Client, sequential requests, same machine",
        "session": session,
        "stateless": stateless,
        "uncached_predict": distinct,
        "http_floor": floor,
        "in_process": model_share,
        "same_candidates": same,  # steps where the session and /v1/predict listed identical candidates
        "errors": session["create"]["errors"]
        + session["append"]["errors"]
        + stateless["prime"]["errors"]
        + stateless["predict"]["errors"]
        + distinct["errors"]
        + floor["errors"],
        "load_1min": [load_start, load_end],
    }
