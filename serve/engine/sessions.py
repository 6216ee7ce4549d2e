"""Server-held sessions: a text's recurrent state kept between calls, so appending costs only the new bytes.

A session holds the state after its text ([L, 1, S] floats), the next byte's log-probs (257 floats) and its
totals: 4 x (L x S + 257) bytes of arrays plus Python objects; for the default 2x448 GRU tracemalloc counts
5.3 kB per session (1000 sessions: 5.3 MB). The store is bounded twice: a session idle for ``ttl_s`` is
deleted, and when ``max_sessions`` are open a new one evicts the least recently used *idle* session; if
every session is busy (an append is running) the new one is refused with 429 rather than cutting a running
append short.

Ids are 128 random bits (``secrets.token_urlsafe(16)``): unguessable, so one client cannot read or advance
another's session. The store lives on the event loop (one thread); appends to one session are serialised
by its own ``asyncio.Lock`` and commit their new state only after the computation succeeded, so a timed-out
(504) append leaves the session as it was.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from lnrnn.serve.errors import NotFound, TooManySessions
from lnrnn.serve.metrics import Metrics

ID_BYTES = 16  # 128 random bits


@dataclass(eq=False)
class Session:
    id: str
    state: np.ndarray  # [L, 1, S] after the session's text
    last: np.ndarray  # [V] log-probs of the next byte
    total_bytes: int
    total_nats: float
    created: float
    used: float
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def busy(self) -> bool:
        return self.lock.locked()

    def advance(self, state: np.ndarray, last: np.ndarray, n_bytes: int, nats: float) -> None:
        self.state, self.last = state.copy(), last.copy()  # copies: a view would keep a whole batch alive
        self.total_bytes += n_bytes
        self.total_nats += nats


class SessionStore:
    def __init__(
        self,
        max_sessions: int,
        ttl_s: float,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_sessions = max_sessions
        self.ttl_s = ttl_s
        self.metrics = metrics
        self.clock = clock
        self._sessions: OrderedDict[str, Session] = OrderedDict()  # least recently used first

    def __len__(self) -> int:
        return len(self._sessions)

    def expires_in(self, session: Session) -> float:
        return max(0.0, self.ttl_s - (self.clock() - session.used))

    def _drop(self, session_id: str, reason: str | None) -> None:
        del self._sessions[session_id]
        if self.metrics is not None:
            self.metrics.sessions_open.set(len(self._sessions))
            if reason is not None:
                self.metrics.session_evictions.labels(reason).inc()

    def sweep(self) -> None:
        """Delete every idle session older than the TTL."""
        now = self.clock()
        for sid in [s.id for s in self._sessions.values() if not s.busy and now - s.used > self.ttl_s]:
            self._drop(sid, "expired")

    def make_room(self) -> None:
        """Ensure a new session fits: expire old ones, then evict the least recently used idle one."""
        self.sweep()
        if len(self._sessions) < self.max_sessions:
            return
        idle = next((s for s in self._sessions.values() if not s.busy), None)
        if idle is None:
            raise TooManySessions(
                f"all {self.max_sessions} sessions (LNRNN_MAX_SESSIONS) are busy with an append: retry "
                "in a second"
            )
        self._drop(idle.id, "lru")

    def add(
        self, state: np.ndarray, last: np.ndarray, n_bytes: int, nats: float, *, session_id: str | None = None
    ) -> Session:
        """A new session; ``session_id`` None = 128 random bits (a v2 sequence brings its own id)."""
        self.make_room()
        now = self.clock()
        sid = session_id if session_id is not None else secrets.token_urlsafe(ID_BYTES)
        if sid in self._sessions:
            self._drop(sid, None)
        session = Session(sid, state.copy(), last.copy(), n_bytes, nats, now, now)  # copies: see advance
        self._sessions[session.id] = session
        if self.metrics is not None:
            self.metrics.sessions_open.set(len(self._sessions))
        return session

    def peek(self, session_id: str) -> Session | None:
        """The session if it is open, without marking it used or raising."""
        self.sweep()
        return self._sessions.get(session_id)

    def get(self, session_id: str, *, touch: bool = True) -> Session:
        """The session (marked as just used unless ``touch`` is false); 404 if unknown, deleted, evicted or
        expired."""
        self.sweep()
        session = self._sessions.get(session_id)
        if session is None:
            raise NotFound(
                f"no session {session_id!r}: unknown, deleted, evicted or idle for more than "
                f"{self.ttl_s:g} s (LNRNN_SESSION_TTL_S); create one with POST /v1/sessions"
            )
        if touch:
            session.used = self.clock()
            self._sessions.move_to_end(session_id)
        return session

    def remove(self, session: Session) -> None:
        if self._sessions.get(session.id) is session:
            self._drop(session.id, None)
