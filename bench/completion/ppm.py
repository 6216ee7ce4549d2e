"""A PPM character model over bytes, as Dasher drives text entry with: the keystroke-savings baseline.

Orders 0..``order`` (5 here, as Dasher's) back off to a uniform order -1 over the bytes no order predicted.
Escape method D (Howard 1993): in a context seen ``n`` times with ``d`` distinct next bytes, a byte seen
``c`` times gets (2c - 1) / 2n and the escape d / 2n; with full exclusion (Cleary & Witten 1984), bytes a
higher order already offered are removed from every lower order's counts. The counts come from training
text (numpy: one sorted array of ``context * 256 + byte`` keys per order) plus the text read so far
(``update``: the model adapts as it reads).

As a completion model it offers the same batched call as the network (``lnrnn.serve.engine.complete.Step``):
a byte per row and a state [1, B, order] of the last ``order`` bytes (-1 = none yet, at the start).
"""

from __future__ import annotations

import numpy as np

from lnrnn.contract import VOCAB_SIZE

ORDER = 5
N_BYTES = 256


def _keys(data: np.ndarray, k: int) -> np.ndarray:
    """int64 keys ``context * 256 + byte`` of every byte with ``k`` bytes before it (big-endian context)."""
    keys = np.zeros(len(data) - k, dtype=np.int64)
    for j in range(k + 1):
        keys = (keys << 8) | data[j : len(data) - k + j]
    return keys


def _context(history: np.ndarray, k: int) -> int:
    """The last ``k`` bytes of ``history`` as one integer (big-endian)."""
    value = 0
    for b in history[len(history) - k :].tolist():
        value = (value << 8) | b
    return value


class PPM:
    """Counts of orders 0..order: static (from training text) plus adaptive (from the text being read)."""

    def __init__(self, order: int = ORDER) -> None:
        if not 1 <= order <= 6:  # a context and its byte must fit an int64 key
            raise ValueError(f"order must be in 1..6, got {order}")
        self.order = order
        self.keys = [np.zeros(0, dtype=np.int64) for _ in range(order + 1)]
        self.counts = [np.zeros(0, dtype=np.int64) for _ in range(order + 1)]
        self.adaptive: list[dict[int, np.ndarray]] = [{} for _ in range(order + 1)]

    @classmethod
    def train(cls, data: bytes, order: int = ORDER) -> PPM:
        model = cls(order)
        array = np.frombuffer(data, dtype=np.uint8).astype(np.int64)
        for k in range(order + 1):
            if len(array) > k:
                model.keys[k], model.counts[k] = np.unique(_keys(array, k), return_counts=True)
        return model

    def fresh(self) -> PPM:
        """The trained model before any adaptation (the static counts are shared, not copied)."""
        model = PPM(self.order)
        model.keys, model.counts = self.keys, self.counts
        return model

    def update(self, data: bytes, history: bytes) -> None:
        """Count the bytes of ``data``, read after ``history`` (only its last ``order`` bytes matter)."""
        text = np.frombuffer(history[-self.order :] + data, dtype=np.uint8)
        start = len(text) - len(data)
        for i in range(start, len(text)):
            for k in range(min(self.order, i) + 1):
                table = self.adaptive[k]
                ctx = _context(text[:i], k)
                if ctx not in table:
                    table[ctx] = np.zeros(N_BYTES, dtype=np.int64)
                table[ctx][text[i]] += 1

    def _counts(self, k: int, contexts: np.ndarray) -> np.ndarray:
        """float64 [B, 256]: how often each byte followed each of the order-``k`` ``contexts`` [B]."""
        out = np.zeros((len(contexts), N_BYTES))
        keys, counts = self.keys[k], self.counts[k]
        lo = np.searchsorted(keys, contexts << 8)
        hi = np.searchsorted(keys, (contexts + 1) << 8)
        lengths = hi - lo
        rows = np.repeat(np.arange(len(contexts)), lengths)  # one entry per (context, byte seen) pair
        at = np.repeat(lo - np.cumsum(lengths) + lengths, lengths) + np.arange(lengths.sum())
        out[rows, keys[at] & 0xFF] = counts[at]
        for row, ctx in enumerate(contexts.tolist()):
            extra = self.adaptive[k].get(ctx)
            if extra is not None:
                out[row] += extra
        return out

    def probabilities(self, history: np.ndarray) -> np.ndarray:
        """float64 [B, 256]: the next byte's probabilities after each row of ``history`` [B, order] (the
        last ``order`` bytes, -1 where the text is shorter)."""
        batch = history.shape[0]
        known = (history >= 0)[:, ::-1].cumprod(axis=1).sum(axis=1)  # bytes of history each row has
        p = np.zeros((batch, N_BYTES))
        excluded = np.zeros((batch, N_BYTES), dtype=bool)
        mass = np.ones(batch)
        for k in range(self.order, -1, -1):
            have = np.flatnonzero(known >= k)
            if len(have) == 0:
                continue
            # the usual case (past the text's first bytes) is every row: a slice, no gathering
            rows: np.ndarray | slice = slice(None) if len(have) == batch else have
            contexts = np.zeros(len(have), dtype=np.int64)
            for j in range(self.order - k, self.order):
                contexts = (contexts << 8) | history[rows, j]
            c = self._counts(k, contexts)
            c[excluded[rows]] = 0.0
            n = c.sum(axis=1)
            seen = c > 0
            # a context unseen, or with everything it saw already offered, has no escape to pay: n = 0
            with np.errstate(divide="ignore", invalid="ignore"):
                share = np.where(seen, (2 * c - 1) / (2 * n[:, None]), 0.0)
                escape = np.where(n > 0, seen.sum(axis=1) / (2 * n), 1.0)
            p[rows] += mass[rows, None] * share
            mass[rows] *= escape
            excluded[rows] |= seen
        rest = ~excluded
        left = rest.sum(axis=1, keepdims=True)
        p += np.where(rest, mass[:, None] / np.maximum(left, 1), 0.0)  # order -1: uniform over the rest
        return p / p.sum(axis=1, keepdims=True) if (left == 0).any() else p

    # --- the completion search's batched call -------------------------------------------------------

    def start(self, history: bytes) -> tuple[np.ndarray, np.ndarray]:
        """Log-probs [257] of the byte after ``history`` and the one-row state [1, 1, order]."""
        tail = np.frombuffer(history[-self.order :], dtype=np.uint8)
        state = np.full((1, 1, self.order), -1, dtype=np.int64)
        state[0, 0, self.order - len(tail) :] = tail
        return self.logprobs(state)[0], state

    def step(self, tokens: np.ndarray, state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """tokens int64 [B], state [1, B, order] -> log-probs [B, 257] (BOS: -inf), state."""
        state = np.concatenate([state[:, :, 1:], tokens.astype(np.int64)[None, :, None]], axis=2)
        return self.logprobs(state), state

    def logprobs(self, state: np.ndarray) -> np.ndarray:
        out = np.full((state.shape[1], VOCAB_SIZE), -np.inf)
        with np.errstate(divide="ignore"):  # bytes with probability 0 (only if every byte was offered)
            out[:, :N_BYTES] = np.log(self.probabilities(state[0]))
        return out
