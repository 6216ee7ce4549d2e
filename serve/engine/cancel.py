"""Cooperative cancellation: a call the gate gave up on (deadline passed) stops at its next checkpoint.

ONNX Runtime cannot interrupt a running ``session.run``, so the runtime calls :func:`checkpoint` between
graph calls (each sequence chunk, each step). Inside :func:`run_cancellable` a set event makes the next
checkpoint raise :class:`Cancelled`, which frees the worker thread within one chunk instead of letting a
timed-out 1 MB score hold its slot to the end. Outside it (CLI, bench, tests) a checkpoint does nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

_current = threading.local()


class Cancelled(Exception):
    """The caller stopped waiting for this call (its deadline passed)."""


def checkpoint() -> None:
    """Raise :class:`Cancelled` if the call running in this thread has been cancelled."""
    event = current_event()
    if event is not None and event.is_set():
        raise Cancelled


def current_event() -> threading.Event | None:
    """The cancellation event of the call running in this thread (None outside the gate)."""
    return getattr(_current, "event", None)


def run_cancellable(fn: Callable[[], T], event: threading.Event) -> T:
    """Run ``fn`` in this thread; once ``event`` is set, its next :func:`checkpoint` raises."""
    _current.event = event
    try:
        return fn()
    finally:
        _current.event = None
