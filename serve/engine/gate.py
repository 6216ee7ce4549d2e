"""Admission control for inference: a bounded pool, a bounded wait queue and a deadline per request.

At most ``max_inflight`` calls run (one worker thread each) and at most ``max_queue`` wait; one more is
refused at once with 503 ``overloaded``. A request still unfinished after ``timeout_s`` (waiting included)
gets 504 ``timeout``: a queued call is dropped, a running one is cancelled at its next checkpoint (between
two graph calls, see cancel.py) and keeps its slot until then, so timed-out work never piles up behind the
caller's back.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

from lnrnn.serve.engine.cancel import run_cancellable
from lnrnn.serve.errors import ModelNotReady, Overloaded, RequestTimeout
from lnrnn.serve.metrics import Metrics

T = TypeVar("T")


class InferenceGate:
    def __init__(self, max_inflight: int, max_queue: int, timeout_s: float, metrics: Metrics) -> None:
        self.max_inflight = max_inflight
        self.capacity = max_inflight + max_queue
        self.timeout_s = timeout_s
        self.metrics = metrics
        self._pool = ThreadPoolExecutor(max_workers=max_inflight, thread_name_prefix="lnrnn-infer")
        self._pending = 0  # running + queued, including timed-out calls that still run
        self._lock = threading.Lock()
        self._closed = False

    @property
    def pending(self) -> int:
        return self._pending

    @property
    def running(self) -> int:
        """Requests holding a worker now (the rest of ``pending`` waits in the queue)."""
        return min(self._pending, self.max_inflight)

    def _release(self, _: Future) -> None:
        with self._lock:
            self._pending -= 1
        self.metrics.pending.set(self._pending)

    async def run(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` in the pool; Overloaded (503) or RequestTimeout (504) instead of waiting forever."""
        with self._lock:
            if self._closed:
                raise ModelNotReady("the server is shutting down")
            if self._pending >= self.capacity:
                self.metrics.rejected.labels("overloaded").inc()
                raise Overloaded(
                    f"the server is busy ({self._pending} requests running or queued; LNRNN_MAX_INFLIGHT + "
                    "LNRNN_MAX_QUEUE): retry after a second"
                )
            self._pending += 1
            cancel = threading.Event()
            future = self._pool.submit(run_cancellable, fn, cancel)
        self.metrics.pending.set(self._pending)
        future.add_done_callback(self._release)
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), self.timeout_s)
        except asyncio.TimeoutError:
            future.cancel()  # frees the slot now if it was still queued
            cancel.set()  # else the call stops at its next checkpoint
            self.metrics.rejected.labels("timeout").inc()
            raise RequestTimeout(
                f"the request did not finish in {self.timeout_s:g} s (LNRNN_REQUEST_TIMEOUT_S): "
                "send a shorter text or retry later"
            ) from None

    def close(self) -> None:
        """Refuse new work, drop queued calls and wait for running ones (graceful shutdown)."""
        with self._lock:
            self._closed = True
        self._pool.shutdown(wait=True, cancel_futures=True)
