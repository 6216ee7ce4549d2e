"""Format 2's lanes in worker processes, so that two lanes use two cores.

Threads do not: a format-2 step is ~80 short numpy operations per layer and step, and between them each
thread needs the interpreter lock, so two threaded lanes ran only 1.4x as fast as one (measured on the
default model, 31 rows per lane). A lane's numbers do not depend on where it runs (every operation is per
row and exact), so a lane computed in a worker gives the same archive bytes as in a thread; the tests
compare them.

Each worker is a ``spawn``ed process (``fork`` is unsafe next to ONNX Runtime's and the server's threads)
that receives the integer network and its lane by pickle, runs ``code_lane`` and sends back what the lane
produced (payloads, or the decoded rows) and its code lengths. Progress is one shared int64 per worker;
``stop`` is set by the parent when another lane fails or the run is cancelled, and the worker then ends at
its next step; it also ends there, without a word, when its parent has died (killed with no chance to set
``stop``: the worker would otherwise code its whole lane for nobody on a core someone else needs). An
error in the worker comes back as the same exception (or a ``CodecError`` with its message, if it cannot
be pickled) and is raised by the parent.

A spawned child normally re-runs the parent's main script (to find objects defined there) before it
starts. Nothing a worker receives is defined there, and a caller's script without an
``if __name__ == "__main__"`` guard would run again (side effects included) and then fail in the child,
so ``_main_hidden`` shows ``multiprocessing`` an empty main module while a worker starts.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import pickle
import sys
import threading
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

import numpy as np

from lnrnn.codec.errors import CodecError

if TYPE_CHECKING:
    from lnrnn.codec.engine import Lane
    from lnrnn.codec.integer.network import IntegerNetwork

_CONTEXT = mp.get_context("spawn")
_STARTING = threading.Lock()  # one start at a time while the main module is swapped


@contextmanager
def _main_hidden() -> Iterator[None]:
    """``sys.modules["__main__"]`` is an empty module for the duration (module docstring)."""
    with _STARTING:
        main = sys.modules.get("__main__")
        sys.modules["__main__"] = types.ModuleType("__main__")
        try:
            yield
        finally:
            if main is not None:
                sys.modules["__main__"] = main


class _Stopped(Exception):
    """The parent asked this worker to stop."""


@dataclass(frozen=True)
class LaneJob:
    """What a worker needs for its lane: sent to it by pickle (the shared counters and ``stop`` by
    ``multiprocessing``'s own means)."""

    network: IntegerNetwork
    lane: Lane
    adaptive: bool
    encode: bool
    payloads: list[bytes] | None  # the lane's blocks when decoding
    counters: Any  # shared_counters: progress, one slot per worker
    slot: int
    stop: Any  # stop_event: set by the parent to end the worker at its next step


def _work(job: LaneJob, send: Connection) -> None:
    from lnrnn.codec.integer import one_blas_thread
    from lnrnn.codec.integer.lane import code_lane, integer_predictor

    lane = job.lane

    def tick(n: int) -> None:
        job.counters[job.slot] += n

    parent = os.getppid()

    def hook() -> None:
        if job.stop.is_set() or os.getppid() != parent:  # asked to stop, or orphaned (module docstring)
            raise _Stopped

    blas = one_blas_thread()
    try:
        model = integer_predictor(job.adaptive, lane.history, lane.lengths)
        code_lane(job.network, lane, model, encode=job.encode, payloads=job.payloads, tick=tick, hook=hook)
        decoded = lane.history if job.payloads is not None else None
        result: tuple[str, Any] = ("done", (lane.payloads, decoded, lane.nats))
    except _Stopped:
        result = ("stopped", None)
    except BaseException as err:  # sent to the parent, which raises it
        try:
            pickle.loads(pickle.dumps(err))  # it must arrive, too
            result = ("error", err)
        except Exception:  # noqa: BLE001 - an exception that cannot travel: keep its message
            result = ("error", CodecError(f"{type(err).__name__}: {err}"))
    finally:
        blas.restore()
    try:
        send.send(result)
        send.close()
    except OSError:  # the parent is gone (a broken pipe): nobody is waiting for the result
        pass


class LaneProcess:
    """One lane running in a worker process (module docstring)."""

    def __init__(self, job: LaneJob) -> None:
        self.lane = job.lane
        self._result: tuple[str, Any] | None = None
        self._receive, send = _CONTEXT.Pipe(duplex=False)
        self._process = _CONTEXT.Process(
            target=_work, args=(job, send), daemon=True, name=f"lnrnn-lane-{job.slot + 1}"
        )
        with _main_hidden():
            self._process.start()
        send.close()  # the parent keeps only the receiving end: EOF if the worker dies without a word

    def _receive_result(self, timeout: float) -> bool:
        """Take the worker's message if one arrives within ``timeout`` seconds (or it died: a CodecError)."""
        if self._result is not None:
            return True
        if self._receive.poll(timeout):
            try:
                self._result = self._receive.recv()
            except EOFError:
                self._result = ("error", self._died())
        elif not self._process.is_alive() and not self._receive.poll(0):
            self._result = ("error", self._died())
        return self._result is not None

    def _died(self) -> CodecError:
        self._process.join()
        code = self._process.exitcode
        return CodecError(f"a format-2 lane's worker process ended without a result (exit code {code})")

    def failed(self) -> bool:
        """Whether the worker has already reported an error (polled without waiting)."""
        return self._receive_result(0) and self._result is not None and self._result[0] == "error"

    def join(self, on_poll: Callable[[], None] | None = None) -> BaseException | None:
        """Wait for the worker (calling ``on_poll`` every 0.2 s, e.g. to report progress), copy its results
        into ``lane``; return its error, if any (None when it finished or was stopped)."""
        while not self._receive_result(0.2):
            if on_poll is not None:
                on_poll()
        self._process.join()
        assert self._result is not None
        kind, value = self._result
        if kind == "error":
            return value if isinstance(value, BaseException) else CodecError(str(value))
        if kind == "done":
            payloads, history, nats = value
            self.lane.payloads = payloads
            if history is not None:
                self.lane.history[...] = history
            self.lane.nats[...] = nats
        return None

    def kill(self) -> None:
        if self._process.is_alive():
            self._process.kill()
        self._process.join()


def shared_counters(n: int) -> Any:
    """n int64 progress counters shared with the workers (each worker writes only its own)."""
    return _CONTEXT.RawArray("q", n)


def stop_event() -> Any:
    return _CONTEXT.Event()


def total(counters: Any) -> int:
    return int(np.frombuffer(counters, dtype=np.int64).sum())
