"""An LRU of (next-byte log-probs, state) by context, so a context that grows by a few bytes is not re-run.

Hits are exact (the whole context was seen) or partial (a context up to ``lookback`` bytes shorter was seen:
only the missing bytes are fed). Partial hits are safe in every precision because the graphs' numerics are
row-wise (see lnrnn.scorer): continuing a cached prefix gives the numbers of a fresh run, so an answer never
depends on what was asked before.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

LOOKBACK = 16  # reuse a cached context up to this many bytes shorter than the request
MAX_CONTEXT = 4096  # longer contexts are not cached (keys hold the whole context)
Outcome = Callable[[str], None]  # told "exact", "partial" or "miss" for each lookup


@dataclass(frozen=True)
class Hit:
    done: int  # bytes of the context the entry covers
    last: np.ndarray  # [V] log-probs of the byte after them
    state: np.ndarray  # [L, 1, S]


class PrefixCache:
    """Thread-safe LRU of ``size`` contexts; ``size`` 0 turns it off."""

    def __init__(self, size: int, lookback: int = LOOKBACK, on_lookup: Outcome | None = None) -> None:
        self.size = size
        self.lookback = lookback
        self._entries: OrderedDict[bytes, tuple[np.ndarray, np.ndarray]] = OrderedDict()
        self._lock = threading.Lock()
        self.on_lookup = on_lookup  # the server counts hits and misses in /metrics

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def get(self, data: bytes) -> Hit | None:
        """The longest cached context among ``data`` and its ``lookback`` shortest-by-one prefixes."""
        if self.size == 0 or len(data) > MAX_CONTEXT:
            return None
        hit = None
        with self._lock:
            for cut in range(min(self.lookback, len(data)) + 1):
                key = data[: len(data) - cut]
                entry = self._entries.get(key)
                if entry is not None:
                    self._entries.move_to_end(key)
                    hit = Hit(len(key), entry[0], entry[1])
                    break
        if self.on_lookup is not None:
            self.on_lookup("miss" if hit is None else "exact" if hit.done == len(data) else "partial")
        return hit

    def put(self, data: bytes, last: np.ndarray, state: np.ndarray) -> None:
        if self.size == 0 or len(data) > MAX_CONTEXT:
            return
        with self._lock:
            self._entries[data] = (last, state)
            self._entries.move_to_end(data)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)
