"""Cross-request batching: the streams of concurrent requests share each ONNX Runtime call.

Every request still runs its own Python code in its gate worker thread, but its graph work (a predict
context, a score text, the texts of a batch, a session append, a decoding step, a top-k expansion) is handed
to one scheduler thread as *streams*: tokens to feed from a state. Each tick the scheduler takes every stream
that is waiting, runs them as batched calls of the sequence graph, scatters each row's log-probs and state
back, and lets new streams join at the next tick (continuous batching at chunk granularity, as in Orca, Yu et
al. 2022, at the granularity of a chunk of tokens instead of one).

Rows of one call need the same T, and the graph has no mask: padding a short row would move its state past
its last token. So a tick groups streams by the length of their next slice, min(tokens left, chunk): long
texts advance by whole chunks together, and short ones (a 1-byte append, a 200-byte context) batch with the
streams of their own length. Cutting every row to the shortest slice would let one typed character cut all
running scores to T = 1. The numbers do not depend on the grouping: the graphs' numerics are row-wise.

The calls of a tick run on ``lanes`` threads at once (one per core by default, each call on one ONNX Runtime
thread), and a tick lasts as long as its busiest lane: so the calls are dealt to the lanes by their work
(rows x tokens), longest first to the least loaded lane, and the costliest call is halved until no lane has
more than 1.2x the mean. Dealing one call per group instead (a lane given 2 rows x 9 tokens while the other
ran 17 rows x 64) left the server at 1.09 of 2 cores under 32 clients, the load client taking 0.38: 104
predict/s; dealt by work, 1.40 cores and 133 predict/s at the same CPU per request. On this 2-core CPU the
int8 default model is compute-bound at 32 rows (59 vs 137 us per stream-token at 1 row), so a second lane
is worth more than a second intra-op thread on one call.

Cancellation stays per request: a stream whose request timed out (504) leaves the batch at the next tick,
the others go on. ``max_streams`` caps the rows of one call; ``wait_s`` lets an idle scheduler wait that long
for requests that are being served but have not submitted their streams yet (never when it is the only one).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from lnrnn.scorer import Fed, GraphSession, Scored, Scorer, document_array, feed_rows
from lnrnn.serve.engine.cancel import Cancelled, checkpoint, current_event
from lnrnn.serve.metrics import Metrics

POLL_S = 0.05  # a waiting request checks its own cancellation this often
# Slices of at most this many tokens: a request that arrives while long texts are being scored joins them
# within one slice instead of one 512-token chunk. Measured with 32 clients on the default model: 106 vs
# 100 predict req/s and 30.2 vs 27.3 kB/s of 10 kB scores against 512-token slices; a lone long text pays
# ~1% more calls.
BATCH_SLICE_TOKENS = 64
# What one call costs beyond its rows, in row-tokens: ORT's per-call work and the Python around it (~0.3 ms,
# about 5 row-tokens at 32 rows), so that splitting never makes calls too small to be worth their overhead.
CALL_COST_TOKENS = 5


@dataclass(eq=False)
class Stream:
    """One row's work: ``tokens`` to feed from ``state`` [L, 1, S]; ``last`` (if given) pays the first."""

    tokens: np.ndarray  # int64 [n]
    state: np.ndarray
    last: np.ndarray | None
    cancel: threading.Event | None
    enqueued: float
    pos: int = 0
    started: bool = False
    pieces: list[np.ndarray] = field(default_factory=list)  # nats per fed token, chunk by chunk
    done: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None

    @property
    def left(self) -> int:
        return len(self.tokens) - self.pos


class Batcher:
    """The scheduler thread and its queue of streams."""

    def __init__(
        self,
        sequence: GraphSession,
        *,
        max_streams: int,
        wait_s: float,
        chunk_tokens: int,
        lanes: int = 0,
        metrics: Metrics | None = None,
        busy_requests: Callable[[], int] = lambda: 0,
    ) -> None:
        self.sequence = sequence
        self.max_streams = max_streams
        self.lanes = lanes or os.cpu_count() or 1
        self._pool = (
            ThreadPoolExecutor(self.lanes, thread_name_prefix="lnrnn-lane") if self.lanes > 1 else None
        )
        self.wait_s = wait_s
        self.chunk_tokens = chunk_tokens  # a request alone: the scorer's chunks
        self.slice_tokens = min(chunk_tokens, BATCH_SLICE_TOKENS)  # shared calls
        self.metrics = metrics
        self.busy_requests = busy_requests  # requests being served now, submitted or not
        self._graph = Scorer(sequence, np.zeros((1, 1), np.float32))  # its guarded ``sequence`` call only
        self._queue: list[Stream] = []
        self._waiting = 0  # requests blocked in submit()
        self._scheduled = 0  # streams submitted and not finished, queued, active or run alone
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="lnrnn-batcher", daemon=True)
        self._thread.start()

    # --- request side -----------------------------------------------------------------------------

    def submit(self, streams: Sequence[Stream]) -> None:
        """Feed ``streams`` and return when all are done; Cancelled if this request's deadline passed.

        A request alone in the server runs its calls in its own thread (nobody could share them, and two
        thread hand-offs cost ~0.2 ms of a ~3 ms keystroke) until another request arrives; then what is
        left joins the scheduler's batches."""
        with self._cond:
            if self._closed:
                raise RuntimeError("the batcher is closed")
            alone = self._scheduled == 0 and self.busy_requests() <= 1
            self._scheduled += len(streams)
        try:
            left = self._run_alone(streams) if alone else list(streams)
            if left:
                self._wait_scheduled(left)
        finally:
            with self._cond:
                self._scheduled -= len(streams)

    def _run_alone(self, streams: Sequence[Stream]) -> list[Stream]:
        """Run calls here while nobody else wants the model; returns what is unfinished when others came."""
        pending = list(streams)
        while pending:
            for group in self._groups(pending, size=self.chunk_tokens):
                checkpoint()  # this request's deadline, as in the unbatched scorer
                self._run(group, self.chunk_tokens)
            for stream in pending:
                if stream.error is not None:
                    raise stream.error
            pending = [s for s in pending if not s.done.is_set()]
            with self._cond:
                if pending and (self._queue or self.busy_requests() > 1):
                    return pending
        return []

    def _wait_scheduled(self, streams: list[Stream]) -> None:
        with self._cond:
            self._queue.extend(streams)
            self._waiting += 1
            self._cond.notify()
        try:
            for stream in streams:
                while not stream.done.wait(POLL_S):
                    if stream.cancel is not None and stream.cancel.is_set():
                        raise Cancelled  # the scheduler drops this request's streams at its next tick
                if stream.error is not None:
                    raise stream.error
        finally:
            with self._cond:
                self._waiting -= 1

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join(timeout=10)
        if self._pool is not None:
            self._pool.shutdown(wait=True)

    # --- scheduler side ---------------------------------------------------------------------------

    def _loop(self) -> None:
        active: list[Stream] = []
        while True:
            with self._cond:
                while not self._queue and not active and not self._closed:
                    self._cond.wait()
                if self._closed:
                    for stream in active + self._queue:
                        stream.error = Cancelled()
                        stream.done.set()
                    return
                if not active:  # idle: let requests that are being served submit their streams too
                    deadline = time.monotonic() + self.wait_s
                    while (
                        len(self._queue) < self.max_streams
                        and self.busy_requests() > self._waiting
                        and time.monotonic() < deadline
                    ):
                        self._cond.wait(max(0.0, deadline - time.monotonic()))
                active.extend(self._queue)
                self._queue.clear()
            active = [s for s in active if not self._dropped(s)]
            try:
                self._tick(active)
            except Exception as err:  # noqa: BLE001 - a bug here must fail requests, not kill the scheduler
                for stream in active:
                    stream.error = err
                    stream.done.set()
            active = [s for s in active if not s.done.is_set()]

    def _tick(self, active: list[Stream]) -> None:
        plan = self._plan(self._groups(active))
        if self._pool is None or len(plan) <= 1:
            for calls in plan:
                for group in calls:
                    self._run(group, self.slice_tokens)
        else:
            list(self._pool.map(self._run_lane, plan))

    def _run_lane(self, calls: list[list[Stream]]) -> None:
        for group in calls:
            self._run(group, self.slice_tokens)

    def _cost(self, group: list[Stream]) -> int:
        """Work of one call in row-tokens, plus a fixed share for the call itself."""
        return len(group) * min(group[0].left, self.slice_tokens) + CALL_COST_TOKENS

    def _plan(self, groups: list[list[Stream]]) -> list[list[list[Stream]]]:
        """The calls of each lane, their work as even as the rows allow: the tick lasts as long as its busiest
        lane, so a lane given one small call while the other runs a big one idles (measured: 1.19 of 2 cores
        busy under 32 clients when calls went to lanes one per group). Longest call first to the least loaded
        lane; the costliest call is halved while the busiest lane has over 1.2x the mean."""
        calls = sorted(groups, key=self._cost, reverse=True)
        while True:
            lanes: list[list[list[Stream]]] = [[] for _ in range(self.lanes)]
            load = [0] * self.lanes
            for group in calls:
                i = load.index(min(load))
                lanes[i].append(group)
                load[i] += self._cost(group)
            big = calls[0] if calls else []
            if max(load) <= 1.2 * sum(load) / self.lanes or len(big) < 2:
                return [lane for lane in lanes if lane]
            half = (len(big) + 1) // 2
            calls = sorted(calls[1:] + [big[:half], big[half:]], key=self._cost, reverse=True)

    def _dropped(self, stream: Stream) -> bool:
        if stream.cancel is not None and stream.cancel.is_set():
            stream.error = Cancelled()
            stream.done.set()
            return True
        return False

    def _groups(self, active: Sequence[Stream], size: int = 0) -> list[list[Stream]]:
        """Streams with the same next slice length, at most ``max_streams`` per call; biggest first."""
        size = size or self.slice_tokens
        by_length: dict[int, list[Stream]] = {}
        for stream in active:
            by_length.setdefault(min(stream.left, size), []).append(stream)
        groups = [
            members[i : i + self.max_streams]
            for members in by_length.values()
            for i in range(0, len(members), self.max_streams)
        ]
        return sorted(groups, key=len, reverse=True)

    def _run(self, group: list[Stream], most: int) -> None:
        size = min(group[0].left, most)  # the same for every stream of a group (see _groups)
        tokens = np.stack([s.tokens[s.pos : s.pos + size] for s in group])
        state = np.concatenate([s.state for s in group], axis=1)
        now = time.monotonic()
        for stream in group:
            if not stream.started and self.metrics is not None:
                self.metrics.batch_queue_wait.observe(now - stream.enqueued)
            stream.started = True
        if self.metrics is not None:
            self.metrics.batch_streams.observe(len(group))
        try:
            token_lp, last, state_out = self._graph.sequence(tokens, state)
        except Exception as err:  # noqa: BLE001 - handed to every waiting request, which re-raises it
            for stream in group:
                stream.error = err
                stream.done.set()
            return
        for row, stream in enumerate(group):
            first = 0.0 if stream.last is None else -float(stream.last[tokens[row, 0]])
            stream.pieces.append(np.concatenate([[first], -token_lp[row].astype(np.float64)]))
            stream.state = state_out[:, row : row + 1]
            stream.last = last[row]
            stream.pos += size
            if stream.left == 0:
                stream.done.set()


class BatchedScorer(Scorer):
    """A :class:`Scorer` whose graph work goes through a :class:`Batcher` (shared with other requests)."""

    def __init__(self, base: Scorer, batcher: Batcher) -> None:
        super().__init__(base.sequence_session, base.initial, chunk_tokens=base.chunk_tokens)
        self.batcher = batcher

    def feed(
        self,
        tokens: np.ndarray,
        state: np.ndarray,
        last: np.ndarray | None = None,
        *,
        per_token: bool = False,
        progress: Callable[[int], None] | None = None,
    ) -> Fed:
        rows, prev = feed_rows(tokens, state, last)
        batch, n = rows.shape
        cancel, now = current_event(), time.monotonic()
        streams = [
            Stream(rows[i], state[:, i : i + 1], None if prev is None else prev[i], cancel, now)
            for i in range(batch)
        ]
        self.batcher.submit(streams)
        if progress is not None:
            progress(batch * n)
        token_nats = np.stack([np.concatenate(s.pieces) for s in streams])
        return Fed(
            token_nats.sum(axis=1),
            token_nats if per_token else None,
            np.stack([_last(s) for s in streams]),
            np.concatenate([s.state for s in streams], axis=1),
        )

    def score_many(self, texts: Sequence[bytes], *, per_byte: bool = False) -> list[Scored]:
        """Every text is its own stream, whatever its length: the scheduler groups them per tick."""
        for i, data in enumerate(texts):
            if not data:
                raise ValueError(f"nothing to score: text {i} is empty")
        cancel, now = current_event(), time.monotonic()
        start = self.start_state()
        streams = [Stream(document_array(data), start, None, cancel, now) for data in texts]
        self.batcher.submit(streams)
        out = []
        for data, stream in zip(texts, streams, strict=True):
            nats = np.concatenate(stream.pieces)
            byte_nats = nats[1:] if per_byte else None  # column 0 is BOS: unpaid
            out.append(Scored(len(data), float(nats.sum()), byte_nats, _last(stream), stream.state))
        return out


def _last(stream: Stream) -> np.ndarray:
    assert stream.last is not None  # set by the first call that fed the stream
    return stream.last
