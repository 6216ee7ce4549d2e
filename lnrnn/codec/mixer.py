"""The next-byte distribution the coder uses: the network alone, or the network mixed with online models.

Both directions call ``predict`` then ``update`` for the same rows with the same arrays, so every number
here comes from the same numpy operations on identically shaped arrays, elementwise or reduced by numpy's
own loops (no BLAS, no threads): the decoder computes bit-identical probabilities on the same machine.

The adaptive model of one lane (the blocks coded together, in lockstep, see engine.py) learns from every
byte coded so far in that lane's blocks: at step t both sides know bytes 0..t-1 of every block.

* Context counts of orders 1-6 and 8 (orders 1 and 2 exact, the others hashed), 16-bit counts halved when
  a context's total passes a limit so that recent bytes weigh more (as PPM and paq do).
* A match model (Mahoney's lpaq1/paq8 MatchModel): the last ``match_min`` bytes are hashed to the position
  that followed them last time; while the bytes keep agreeing it predicts the byte at that position. It is
  what wins on repetitive text unlike the training data (source code, JSON, HTML).
* Geometric mixing (Mattern, "Mixing strategies in data compression", DCC 2012): p(s) ∝ exp(Σ_i w_i x_i(s))
  over the 256 byte values, with x_i the network's log-probabilities, log(count + α) per order and the
  match model's one-hot prediction. The weights follow the gradient of the code length,
  ∂(-ln p(x))/∂w_i = E_p[x_i] - x_i(x). Like paq's mixer the weight vector depends on a small context: here
  it is the sum of one learned vector per selector (match-length bucket x orders seen, the last byte, the
  last two bytes, the column in the line), each updated with the same gradient. The network starts at
  weight 1 and everything else at 0, so the first bytes are coded by the network alone.
* The result is mixed with the uniform distribution at weight 2^-12 (costs < 0.0004 bits/byte): every
  byte then has p >= 2^-20, which the coder's 24-bit frequencies represent closely, so the code length
  stays within a few bytes per block of the model's information content.

Measured on 128 KiB of each of six texts (8 KiB blocks, two lanes; mean bits/byte): one weight vector per
match x orders context 1.418, + the last byte's 1.380, + the last two bytes' 1.361, + orders 5 and 8 and
a count limit of 4095 instead of 1023: 1.353, + the column: 1.348. α 0.03 beat 0.1 and 0.3, a learning
rate of 0.004 beat 0.002 and 0.006.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

N_SYMBOLS = 256  # BOS never follows the first token: the coder's alphabet is the 256 byte values
UNIFORM_WEIGHT = 2.0**-12
MATCH_BUCKETS = 8
COLUMNS = 32  # column selector: 0..30 exact, 31 = further right
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)  # Knuth's multiplicative hashing (TAOCP vol. 3, 6.4)


class Predictor(Protocol):
    """One lane's model: ``predict`` for the first ``k`` rows at step ``t``, then ``update``."""

    def predict(self, t: int, k: int, logp: np.ndarray) -> np.ndarray: ...

    def update(self, t: int, k: int, symbols: np.ndarray) -> None: ...


def distribution(z: np.ndarray) -> np.ndarray:
    """float32 [k, 256] logits (overwritten) -> probabilities with every byte >= 2^-20."""
    z -= z.max(axis=1, keepdims=True)
    np.exp(z, out=z)
    z *= np.float32(1.0 - UNIFORM_WEIGHT) / z.sum(axis=1, keepdims=True)
    z += np.float32(UNIFORM_WEIGHT / N_SYMBOLS)
    return z


class NeuralOnly:
    """The network's distribution over the 256 byte values (BOS's tiny mass renormalised away)."""

    def predict(self, t: int, k: int, logp: np.ndarray) -> np.ndarray:
        return distribution(np.array(logp[:, :N_SYMBOLS], dtype=np.float32))

    def update(self, t: int, k: int, symbols: np.ndarray) -> None:
        return None


@dataclass(frozen=True)
class MixerConfig:
    """The adaptive model's constants (measured above); changing one changes the compressed format."""

    orders: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 8)
    alpha: float = 0.03  # inputs are log(count + α): α sets how unlikely a byte unseen in a context is
    count_limit: int = 4095  # a context's counts are halved when its total passes this
    max_slot_bits: int = 16  # hashed orders: at most 2^16 contexts per order and lane
    match_min: int = 6  # bytes hashed to find a match (at most 8: the context register holds 8)
    match_bits: int = 20
    learning_rate: float = 0.004


class AdaptiveMixer:
    """Context counts + match model + the network, geometrically mixed; one instance per lane."""

    def __init__(self, history: np.ndarray, lengths: np.ndarray, config: MixerConfig | None = None) -> None:
        """``history`` uint8 [R, S]: the lane's blocks; the caller fills column t before ``update(t)``."""
        self.cfg = cfg = config or MixerConfig()
        self.history = history
        self.flat = history.reshape(-1)
        self.rows, self.width = history.shape
        self.lengths = np.asarray(lengths, dtype=np.int64)
        lane_bytes = int(self.lengths.sum())
        # context counts: one table, each order's slots at its offset
        bits = max(8, min(cfg.max_slot_bits, lane_bytes.bit_length()))
        slots = np.array([256 if o == 1 else 65536 if o == 2 else 1 << bits for o in cfg.orders])
        self.offset = np.concatenate([[0], np.cumsum(slots)[:-1]]).astype(np.int64)
        self.mask = np.array([(1 << (8 * o)) - 1 for o in cfg.orders], dtype=np.uint64)
        exact = np.array([o <= 2 for o in cfg.orders])
        self.add = np.where(exact, 0, 1).astype(np.uint64)  # orders 1, 2 index directly, the rest hash
        self.mult = np.where(exact, np.uint64(1), _GOLDEN).astype(np.uint64)
        self.shift = np.where(exact, 0, 64 - bits).astype(np.uint64)
        self.counts = np.zeros((int(slots.sum()), N_SYMBOLS), dtype=np.uint16)
        self.counts_flat = self.counts.reshape(-1)
        self.totals = np.zeros(int(slots.sum()), dtype=np.int64)
        top_count = cfg.count_limit + self.rows + 1  # totals pass the limit by at most one step's rows
        self.log_count = np.log(np.arange(top_count, dtype=np.float64) + cfg.alpha).astype(np.float32)
        self.ones = np.ones(self.rows * len(cfg.orders), dtype=np.uint16)
        # match model
        self.match_bits = max(10, min(cfg.match_bits, lane_bytes.bit_length() + 1))
        self.match_shift = np.uint64(64 - self.match_bits)
        self.match_mask = np.uint64((1 << (8 * cfg.match_min)) - 1)
        self.match_table = np.full(1 << self.match_bits, -1, dtype=np.int64)
        self.match_ptr = np.full(self.rows, -1, dtype=np.int64)
        self.match_len = np.zeros(self.rows, dtype=np.int64)
        self.match_back = np.arange(-cfg.match_min, 0)
        length_bucket = np.zeros(256, dtype=np.int64)  # match length -> bucket 1.. (0 = no match)
        for n in range(256):
            excess = max(n - cfg.match_min + 1, 1)
            length_bucket[n] = 1 + min(excess.bit_length() - 1, MATCH_BUCKETS - 2)
        self.length_bucket = length_bucket
        # per row: the last 8 bytes and the column in the line
        self.ctx = np.zeros(self.rows, dtype=np.uint64)
        self.column = np.zeros(self.rows, dtype=np.int64)
        # mixer: dense inputs [network, orders...] plus the match model; one weight table per selector
        self.n_dense = 1 + len(cfg.orders)
        self.n_weights = self.n_dense + 1
        self.n_seen = len(cfg.orders) + 1
        sizes = [MATCH_BUCKETS * self.n_seen, 256, 65536, COLUMNS]
        self.sel_offset = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        self.weights = np.zeros((int(sum(sizes)), self.n_weights), dtype=np.float32)
        self.weights[: sizes[0], 0] = 1.0
        self.weights_flat = self.weights.reshape(-1)
        self.weight_cols = np.arange(self.n_weights, dtype=np.int64)
        self.inputs = np.zeros((self.rows, self.n_dense, N_SYMBOLS), dtype=np.float32)
        self.row_ids = np.arange(self.rows, dtype=np.int64)
        # what predict computed, for update
        self._idx = np.zeros((0, len(cfg.orders)), dtype=np.int64)
        self._sel = np.zeros((0, len(sizes)), dtype=np.int64)
        self._pred = np.zeros(0, dtype=np.int64)
        self._has_match = np.zeros(0, dtype=bool)
        self._p = np.zeros((0, N_SYMBOLS), dtype=np.float32)

    def predict(self, t: int, k: int, logp: np.ndarray) -> np.ndarray:
        x = self.inputs[:k]
        x[:, 0] = logp[:, :N_SYMBOLS]
        idx, sel, pred, has_match = self._contexts(k)
        np.take(self.log_count, self.counts[idx], out=x[:, 1:])
        w = self.weights[sel].sum(axis=1)  # [k, n_weights]
        z = (x * w[:, : self.n_dense, None]).sum(axis=1)
        z[self.row_ids[:k], pred] += np.where(has_match, w[:, -1], np.float32(0))
        p = distribution(z)
        self._idx, self._sel, self._pred, self._has_match, self._p = idx, sel, pred, has_match, p
        return p

    def _contexts(self, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The first k rows' count slots [k, orders], weight selectors [k, 4] (offsets added), the match
        model's predicted byte [k] and whether it has a match [k] (integers only; format 2 shares them)."""
        ctx = self.ctx[:k]
        idx = (((ctx[:, None] & self.mask) + self.add) * self.mult >> self.shift).astype(np.int64)
        idx += self.offset
        seen = np.count_nonzero(self.totals[idx], axis=1)
        ptr = self.match_ptr[:k]
        has_match = ptr >= 0
        pred = self.flat[np.maximum(ptr, 0)].astype(np.int64)
        bucket = np.where(has_match, self.length_bucket[np.minimum(self.match_len[:k], 255)], 0)
        sel = np.empty((k, 4), dtype=np.int64)
        sel[:, 0] = bucket * self.n_seen + seen
        sel[:, 1] = ctx & np.uint64(0xFF)
        sel[:, 2] = ctx & np.uint64(0xFFFF)
        sel[:, 3] = np.minimum(self.column[:k], COLUMNS - 1)
        sel += self.sel_offset
        return idx, sel, pred, has_match

    def update(self, t: int, k: int, symbols: np.ndarray) -> None:
        cfg = self.cfg
        sym = symbols.astype(np.int64)
        rows = self.row_ids[:k]
        x, p, idx, sel = self.inputs[:k], self._p, self._idx, self._sel
        # mixer: the gradient of -ln p(sym) is E_p[x_i] - x_i(sym); every selected vector steps against it
        grad = np.empty((k, self.n_weights), dtype=np.float32)
        grad[:, :-1] = x[rows, :, sym] - (x * p[:, None, :]).sum(axis=2)
        grad[:, -1] = np.where(self._has_match, (self._pred == sym) - p[rows, self._pred], np.float32(0))
        grad *= np.float32(cfg.learning_rate)
        where = (sel[:, :, None] * self.n_weights + self.weight_cols).ravel()
        np.add.at(
            self.weights_flat, where, np.broadcast_to(grad[:, None, :], (*sel.shape, self.n_weights)).ravel()
        )
        self._observe(t, k, sym, idx)

    def _observe(self, t: int, k: int, sym: np.ndarray, idx: np.ndarray) -> None:
        """Learn the coded bytes ``sym`` (int64 [k]): context counts, match model, column, last bytes."""
        cfg = self.cfg
        np.add.at(self.counts_flat, (idx * N_SYMBOLS + sym[:, None]).ravel(), self.ones[: idx.size])
        np.add.at(self.totals, idx.ravel(), 1)
        full = idx[self.totals[idx] > cfg.count_limit]
        if full.size:
            full = np.unique(full)
            halved = self.counts[full] >> 1
            self.counts[full] = halved
            self.totals[full] = halved.sum(axis=1, dtype=np.int64)
        self._update_match(t, k, sym)
        self.column[:k] = np.where(sym == 10, 0, self.column[:k] + 1)
        self.ctx[:k] = (self.ctx[:k] << np.uint64(8)) | sym.astype(np.uint64)

    def _update_match(self, t: int, k: int, sym: np.ndarray) -> None:
        cfg = self.cfg
        ptr, length = self.match_ptr[:k], self.match_len[:k]
        row_of = np.maximum(ptr, 0) // self.width
        next_col = np.maximum(ptr, 0) - row_of * self.width + 1
        # a match goes on while it predicted right and has not reached the end of its block
        hit = (ptr >= 0) & (self.flat[np.maximum(ptr, 0)] == sym) & (next_col < self.lengths[row_of])
        length[:] = np.where(hit, length + 1, 0)
        ptr[:] = np.where(hit, ptr + 1, -1)
        if t + 1 < cfg.match_min:
            return
        ctx = (self.ctx[:k] << np.uint64(8)) | sym.astype(np.uint64)
        key = (((ctx & self.match_mask) + np.uint64(7)) * _GOLDEN >> self.match_shift).astype(np.int64)
        here = self.row_ids[:k] * self.width + (t + 1)  # where the next byte of each row goes
        # rows without a match look up where these bytes were followed before (inserted at earlier steps)
        cand = np.where(ptr < 0, self.match_table[key], -1)
        found = cand >= 0
        if found.any():
            back = self.match_back
            seen = self.flat[np.maximum(cand[:, None] + back, 0)]
            found &= (seen == self.flat[here[:, None] + back]).all(axis=1)
            ptr[found] = cand[found]
            length[found] = cfg.match_min
        more = t + 1 < self.lengths[:k]  # a row that just ended has no next byte to point to
        self.match_table[key[more]] = here[more]
