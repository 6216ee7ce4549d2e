"""Format 2's adaptive model: format 1's mixing (``lnrnn/codec/mixer.py``) in integers.

The context counts, the match model and the weight selectors are format 1's own code (``AdaptiveMixer``:
hashing, counts and match pointers were integers there already). What was float becomes fixed point, as in
lpaq/paq8, whose mixers are integer for the same reason (the decoder must compute the same numbers):

* inputs in Q10 nats: the network's logits minus their maximum (geometric mixing is unchanged by a per-row
  constant in an input, and so is its gradient), clipped at -32 nats; round(2^10 ln(count + 0.03)) per order
  from a table (``tables.log_count_table``); the match model's 1.0 on its predicted byte;
* weights in Q20, one vector per selected context, summed (clipped to +-32 each); the mixed logits are
  z(s) = sum_i w_i x_i(s) >> 20 in Q10 (Mattern, "Mixing strategies in data compression", DCC 2012, eq. 5:
  p(s) ~ prod_i p_i(s)^w_i), the sum taken as a float64 matrix product: |x| <= 2^15 and |w| <= 2^27, so
  every partial sum is an integer below 2^45, exact in any order, with or without fused multiply-adds;
  turned into frequencies with 2^-12 of the uniform distribution mixed in (``frequencies(floor=16)``: every
  byte >= 2^-20, as format 1);
* the update is the gradient of the code length, dL/dw_i = E_p[x_i] - x_i(sym) (Mattern eq. 7), with
  E_p[x_i] = round(sum_s f(s) x_i(s) / 2^24) (a float64 product again, exact: partial sums below
  2^15 * 2^24), times format 1's learning rate 0.004 as the integer ratio 4194 / 2^10
  (= 0.004 * 2^20 / 2^10), rounded; added to every selected vector
  (``np.add.at`` on integers: the order of the additions does not matter).
"""

from __future__ import annotations

import numpy as np

from lnrnn.codec.integer import tables as tb
from lnrnn.codec.integer.network import TOTAL_BITS, frequencies
from lnrnn.codec.mixer import N_SYMBOLS, AdaptiveMixer, MixerConfig

WEIGHT_BITS = 20
WEIGHT_LIMIT = 32 << WEIGHT_BITS
INPUT_FLOOR = -(32 << tb.LOGIT_BITS)  # the network's input is clipped at -32 nats below its top byte
MATCH_INPUT = 1 << tb.LOGIT_BITS  # 1.0
RATE = 4194  # 0.004 * 2^20 / 2^10, applied as (gradient * RATE) >> 10
UNIFORM_FLOOR = 16  # 16 * 256 / 2^24 = 2^-12 of the uniform distribution
ALPHA = "0.03"  # format 1's alpha, as an exact decimal


class IntegerMixer(AdaptiveMixer):
    """One lane's context counts + match model + the network, mixed in integers (module docstring)."""

    def __init__(self, history: np.ndarray, lengths: np.ndarray, config: MixerConfig | None = None) -> None:
        super().__init__(history, lengths, config)
        cfg = self.cfg
        assert str(cfg.alpha) == ALPHA and cfg.learning_rate == 0.004, "format 2 fixes these constants"
        # inputs held as integer-valued float64 for the matrix products (exact: module docstring)
        self.log_count_q = tb.log_count_table(len(self.log_count), ALPHA).astype(np.float64)
        self.weights_q = np.zeros(self.weights.shape, dtype=np.int64)
        self.weights_q[:, 0] = np.where(self.weights[:, 0] == 1.0, 1 << WEIGHT_BITS, 0)  # the network at 1
        self.weights_q_flat = self.weights_q.reshape(-1)
        self.inputs_q = np.zeros((self.rows, self.n_dense, N_SYMBOLS), dtype=np.float64)
        self._f = np.zeros((0, N_SYMBOLS), dtype=np.int64)

    def predict(self, t: int, k: int, logits: np.ndarray) -> np.ndarray:
        x = self.inputs_q[:k]
        np.maximum(logits - logits.max(axis=1, keepdims=True), INPUT_FLOOR, out=x[:, 0])
        idx, sel, pred, has_match = self._contexts(k)
        np.take(self.log_count_q, self.counts[idx], out=x[:, 1:])
        w = self.weights_q[sel].sum(axis=1)  # [k, n_weights], Q20
        z = np.matmul(w[:, None, : self.n_dense].astype(np.float64), x)[:, 0]  # Q30, exact
        z[self.row_ids[:k], pred] += np.where(has_match, w[:, -1] * MATCH_INPUT, 0)
        z *= 2.0**-WEIGHT_BITS
        f = frequencies(np.floor(z).astype(np.int64), floor=UNIFORM_FLOOR)  # z >> 20
        self._idx, self._sel, self._pred, self._has_match, self._f = idx, sel, pred, has_match, f
        return f

    def update(self, t: int, k: int, symbols: np.ndarray) -> None:
        sym = symbols.astype(np.int64)
        rows = self.row_ids[:k]
        x, f, sel = self.inputs_q[:k], self._f, self._sel
        half = 1 << (TOTAL_BITS - 1)
        grad = np.empty((k, self.n_weights), dtype=np.int64)  # x_i(sym) - E_p[x_i], Q10
        expected = np.matmul(x, f[:, :, None].astype(np.float64))[:, :, 0]  # sum_s f(s) x_i(s), exact
        expected += half
        expected *= 2.0**-TOTAL_BITS
        grad[:, :-1] = x[rows, :, sym] - np.floor(expected)  # (... + half) >> 24
        p_pred = (f[rows, self._pred] * MATCH_INPUT + half) >> TOTAL_BITS
        grad[:, -1] = np.where(self._has_match, np.where(self._pred == sym, MATCH_INPUT, 0) - p_pred, 0)
        step = (grad * RATE + (1 << 9)) >> 10
        where = (sel[:, :, None] * self.n_weights + self.weight_cols).ravel()
        steps = np.broadcast_to(step[:, None, :], (*sel.shape, self.n_weights)).ravel()
        np.add.at(self.weights_q_flat, where, steps)
        self.weights_q_flat[where] = np.clip(self.weights_q_flat[where], -WEIGHT_LIMIT, WEIGHT_LIMIT)
        self._observe(t, k, sym, self._idx)
