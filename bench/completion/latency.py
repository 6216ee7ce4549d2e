"""Completion latency against a real `lnrnn serve`: a session typed into, three word completions per key.

One client (httpx, sequential requests, as in ``bench/typing_latency.py``): each run creates a session with
a 200-byte context of the Tiny Shakespeare validation split (a different one per run), then for every
typed character sends ``POST /v1/sessions/{id}/append`` and ``POST /v1/sessions/{id}/complete``
(n = 3, until word), timing both the same way. The search alone, without HTTP, is timed in process on the
same contexts after the server stopped.
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

from bench.serving import running_server
from bench.typing_latency import CONTEXT_BYTES, Recorder
from lnrnn.scorer import byte_array, document_array
from lnrnn.serve.engine.complete import complete
from lnrnn.serve.engine.runtime import Runtime

COMPLETE = {"n": 3, "until": "word"}


def _texts(text: str, runs: int, typed: int) -> list[tuple[str, str]]:
    """(context, typed) per run, each from its own stretch of the text."""
    stride = CONTEXT_BYTES + typed
    if len(text) < runs * stride:
        raise ValueError(f"need {runs * stride} characters of text, got {len(text)}")
    return [
        (text[i * stride : i * stride + CONTEXT_BYTES], text[i * stride + CONTEXT_BYTES : (i + 1) * stride])
        for i in range(runs)
    ]


def _run(client: httpx.Client, context: str, typed: str) -> tuple[Recorder, Recorder]:
    append, completing = Recorder(client), Recorder(client)
    created = client.post("/v1/sessions", json={"text": context})
    created.raise_for_status()
    path = f"/v1/sessions/{created.json()['session_id']}"
    for char in typed:
        append.post(f"{path}/append", {"text": char})
        completing.post(f"{path}/complete", COMPLETE)
    client.delete(path)
    return append, completing


def _pooled(recorders: list[Recorder]) -> dict[str, Any]:
    """All runs' requests together, and each run's own p50."""
    pooled = Recorder(recorders[0].client)
    for r in recorders:
        pooled.seconds += r.seconds
        pooled.errors += r.errors
    return pooled.summary() | {"run_p50_ms": [r.summary()["p50_ms"] for r in recorders]}


def in_process(model: Path, runs: list[tuple[str, str]]) -> dict[str, Any]:
    """The search alone (no HTTP, no session store) after each typed character, as the route runs it."""
    runtime = Runtime.load(model, device="cpu", threads=1)
    seconds = []
    for context, typed in runs:
        fed = runtime.scorer.feed(document_array(context.encode()), runtime.scorer.start_state())
        for char in typed:
            fed = runtime.scorer.feed(byte_array(char.encode()), fed.state, fed.last[0])
            start = time.perf_counter()
            complete(runtime.scorer.next, fed.last[0], fed.state, n=3, until="word")
            seconds.append(time.perf_counter() - start)
    ms = np.array(seconds) * 1000
    return {"p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99))}


def measure(text: str, model: Path, quick: bool, log: Callable[[str], None] = print) -> dict[str, Any]:
    runs = _texts(text, 2 if quick else 5, 50 if quick else 200)
    load = [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory(prefix="lnrnn-bench-complete-") as tmp:
        with (
            running_server(model, Path(tmp) / "server.log") as (url, _, _),
            httpx.Client(base_url=url, timeout=60.0) as client,
        ):
            _run(client, text[-CONTEXT_BYTES - 20 :][:CONTEXT_BYTES], text[-20:])  # warm-up
            appends, completes = [], []
            for context, typed in runs:
                append, completing = _run(client, context, typed)
                appends.append(append)
                completes.append(completing)
                log(
                    f"  completion latency run {len(completes)}: complete p50 "
                    f"{completing.summary()['p50_ms']:.2f} ms, append {append.summary()['p50_ms']:.2f} ms"
                )
        load.append(os.getloadavg()[0])
    own = in_process(model, runs)
    return {
        "runs": len(runs),
        "typed_per_run": len(runs[0][1]),
        "context_bytes": CONTEXT_BYTES,
        "request": COMPLETE,
        "client": "1 httpx.Client, sequential requests, same machine",
        "complete": _pooled(completes),
        "append": _pooled(appends),
        "in_process": own,
        "load_1min": load,
    }
