"""The layer-norm GRU of ``train/cells.py`` (``GRUCell.step``, Ba et al. 2016 eqs. 26-28) in integers, so
that its next-byte frequencies are the same on every machine, numpy version and BLAS.

Per layer and step (H units, gates ordered r, z, n as in PyTorch):

    [r; z] = sigmoid(LN(W_rz x) + LN(U_rz h)),  n = tanh(LN(W_n x) + r * LN(U_n h)),
    h' = (1 - z) n + z h,

with one layer norm per slice ([r; z] jointly, then n) and path (input W, recurrent U); the output layer is
the transposed embedding plus a bias (Press & Wolf 2017). How each part is made exact:

* **Matrix products.** Weights are int8 (below); activations are int8 with one scale per row (the
  stream): a = round(127 h / max|h|), the scale being a 24-bit integer reciprocal so that the rounding is
  an integer multiply-add-shift. Every product and partial sum is an integer of magnitude
  <= K * 127 * 127 (K = 448: 7.2M), so any correct kernel gives the same number: ONNX Runtime's
  ``MatMulInteger`` (uint8 x int8 where it proves exact, else uint8 x uint8) where it loads, else a float32
  BLAS ``@`` of the integer-valued arrays (exact in any summation order, blocking, thread count or SIMD
  width); ``products.py``.
* **Weight scales.** Each layer-norm slice of a matrix has one base scale max|W| / 127, and each output
  column a power-of-two refinement 2^-e (e <= ``COLUMN_SHIFT``) so that a column with small weights uses
  more of the int8 range; its products are multiplied back by 2^(COLUMN_SHIFT - e), exactly. The
  activation's row scale and the slice's base scale are common to a whole layer-norm slice, so they cancel
  in the normalisation except inside its epsilon, which is applied with the true scale. (Per slice alone,
  ``COLUMN_SHIFT`` 0, measured the same bits/byte on 64 kB of Tiny Shakespeare, -0.0001 vs +0.0005 against
  fp32, but with a larger worst step, 0.70 vs 0.51 nats on a byte's log-probability.)
* **Layer norm.** Over a slice of N integers y (held in float64, all below 2^53 in magnitude):
  S1 = sum y, exact in any summation order; S2 = sum y^2, exact too (``_sum_of_squares``); then per row
  D = N S2 - S1^2 (= N^2 var), root = sqrt(D + eps N^2 / unit^2), and per element
  out = rint(((y * (N / root)) - S1 / root) * g 2^12 + b 2^12), Q12. Only + - * / sqrt and rint, each
  correctly rounded by IEEE 754, elementwise in a fixed order, on the same inputs everywhere: no float
  reduction of inexact values (numpy's pairwise/SIMD summation order may change between versions), no
  transcendental function, nothing a compiler may fuse (numpy evaluates each ufunc separately). The first
  layer's input path depends on the byte alone and is tabulated once (257 rows) by the same code.
* **Gates.** Pre-activations are Q12 integers clipped to [-16, 16); sigmoid and tanh are tables
  (tables.py) giving Q15; r * LN(U_n h), the GRU update and the activation rounding are integer multiplies
  and rounding shifts, floor((x + 2^14) * 2^-15), exact on these values. The state h is Q15. Integers are
  held in float64 arrays because numpy vectorises float multiply/floor better than int64 multiply/shift; the
  results are the same integers.
* **Output.** Logits = (acc * s_v) * s_row + b (float64, this order), rounded to Q10; softmax by the exp
  table and integer frequencies (``frequencies``).

Nothing depends on the number of rows in a call or on the other rows: every operation is per row.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from lnrnn.codec.errors import ModelFileError
from lnrnn.codec.integer import tables as tb
from lnrnn.codec.integer.products import OFFSET, Product, integer_product
from lnrnn.codec.integer.weights import GRUWeights, LayerWeights
from lnrnn.contract import BOS_ID, N_BYTES

QMAX = 127  # int8 weights and activations, symmetric
COLUMN_SHIFT = 2  # per-column power-of-two refinement of the weight scales: 2^0 .. 2^-2
_RECIP_BITS = 24  # activation rounding: a = (h * c + 2^23) >> 24 with c = floor(127 * 2^24 / max|h|)
_INT64_MAX = (1 << 63) - 1
TOTAL_BITS = 24  # the coder's frequencies sum to 2^24
TOTAL = 1 << TOTAL_BITS


@dataclass(frozen=True)
class _Slice:
    """One layer-norm slice of a [.., 3H] block: columns lo:hi with their quantization and affine terms."""

    lo: int
    hi: int
    unit: float  # real value of one integer of y (weights' base scale * 2^-COLUMN_SHIFT)
    multiplier: np.ndarray  # float64 [N]: 2^(COLUMN_SHIFT - e_j)
    gain: np.ndarray  # float64 [N]: gain * 2^12 (exact)
    bias: np.ndarray  # float64 [N]: bias * 2^12 (exact)
    eps_n2: float  # eps * N^2


@dataclass(frozen=True)
class _Path:
    """One path (input or recurrent) of one layer: int8 matrix and its two layer-norm slices."""

    weight: np.ndarray  # integer-valued float [K, 3H], |w| <= 127
    slices: tuple[_Slice, _Slice]
    # the two slices side by side, for ``_layer_norm``'s one pass over [r; z | n]
    multiplier: np.ndarray = field(init=False)  # [3H]
    gain: np.ndarray = field(init=False)  # [3H]
    bias: np.ndarray = field(init=False)  # [3H]
    sizes: np.ndarray = field(init=False)  # [2]: N of each slice
    units: np.ndarray = field(init=False)  # [2]
    eps_n2: np.ndarray = field(init=False)  # [2]

    def __post_init__(self) -> None:
        def cat(name: str) -> np.ndarray:
            return np.concatenate([getattr(s, name) for s in self.slices])

        object.__setattr__(self, "multiplier", cat("multiplier"))
        object.__setattr__(self, "gain", cat("gain"))
        object.__setattr__(self, "bias", cat("bias"))
        object.__setattr__(self, "sizes", np.array([s.hi - s.lo for s in self.slices], dtype=np.float64))
        object.__setattr__(self, "units", np.array([s.unit for s in self.slices]))
        object.__setattr__(self, "eps_n2", np.array([s.eps_n2 for s in self.slices]))


def _quantize_matrix(w: np.ndarray, gain: np.ndarray, bias: np.ndarray, eps: float, hidden: int) -> _Path:
    """int8 columns per layer-norm slice ([r; z] = columns 0:2H, n = 2H:3H), see the module docstring."""
    w64 = w.astype(np.float64)
    q = np.zeros_like(w64)
    slices = []
    for lo, hi in ((0, 2 * hidden), (2 * hidden, 3 * hidden)):
        block = w64[:, lo:hi]
        colmax = np.abs(block).max(axis=0)
        top = float(colmax.max())
        base = top / QMAX if top > 0 else 1.0
        shift = np.zeros(hi - lo, dtype=np.int64)  # largest e <= COLUMN_SHIFT with colmax * 2^e <= top
        for e in range(1, COLUMN_SHIFT + 1):
            shift[colmax * float(1 << e) <= top] = e
        q[:, lo:hi] = np.rint(block * np.ldexp(1.0, shift) / base)
        multiplier = np.ldexp(1.0, COLUMN_SHIFT - shift)
        n = hi - lo
        slices.append(
            _Slice(
                lo=lo,
                hi=hi,
                unit=base * 2.0**-COLUMN_SHIFT,
                multiplier=multiplier,
                gain=gain[lo:hi].astype(np.float64) * float(1 << tb.PRE_BITS),
                bias=bias[lo:hi].astype(np.float64) * float(1 << tb.PRE_BITS),
                eps_n2=float(eps) * float(n * n),
            )
        )
        # |y| <= K * 127 * 127 * 2^COLUMN_SHIFT: S1 must be exact in float64, S2 in int64
        y_max = w.shape[0] * QMAX * QMAX * (1 << COLUMN_SHIFT)
        if n * y_max * y_max > _INT64_MAX or n * y_max >= 1 << 53:
            raise ModelFileError(f"format 2: layer-norm slices of {n} units are too wide for exact sums")
    assert np.abs(q).max(initial=0) <= QMAX
    return _Path(q, (slices[0], slices[1]))


def quantize_rows(h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Integer-valued float64 [B, K] -> the int8 activations a as uint8 a + 128 [B, K] (the products' input)
    and the float64 [B] real size of one unit of a (in units of h's integers): a = round(127 h / max|h|)
    computed as floor((h c + 2^23) / 2^24) with c = floor(127 * 2^24 / max|h|), so |a| <= 127 (h c <= 127 *
    2^24 < 2^31, exact in float64; the division by 2^24 is exact) and the scale is 2^24 / c. The offset 128
    is added before the division as 128 * 2^24 (exact), which makes every value positive, so the
    truncating cast to uint8 is the floor."""
    top = np.maximum(np.abs(h).max(axis=1), 1.0).astype(np.int64)
    c = ((QMAX << _RECIP_BITS) // top).astype(np.float64)
    a = h * c[:, None]
    a += float((1 << (_RECIP_BITS - 1)) + (OFFSET << _RECIP_BITS))
    a *= 2.0**-_RECIP_BITS
    return a.astype(np.uint8), float(1 << _RECIP_BITS) / c


def _sum_of_squares(y: np.ndarray) -> np.ndarray:
    """Exact sum of y^2 over the last axis of integer-valued float64 ``y`` [B, 3, H], as float64 [B, 3];
    the two sums the [r; z] slice adds must be exact too, so the test is on their total.

    The terms are non-negative, so every partial sum (in whatever order, blocking or fused multiply-add the
    product uses: BLAS may do any) is at most the total: when the computed total is below 2^53 no partial
    sum reached 2^53 and all were exact (rounding is monotone, so a true total >= 2^53 cannot come out below
    it). Otherwise, recompute in int64 (exact: the bound is checked when the model is built) and round that
    once."""
    s2 = np.matmul(y[:, :, None, :], y[:, :, :, None])[:, :, 0, 0]
    if (s2[:, 0] + s2[:, 1]).max(initial=0.0) < 2.0**53 and s2[:, 2].max(initial=0.0) < 2.0**53:
        return s2
    exact = y.astype(np.int64)
    whole = (exact * exact).sum(axis=2)
    rz = whole[:, 0] + whole[:, 1]
    out = whole.astype(np.float64)
    # the slice total, rounded once, and its parts chosen so that adding them gives exactly that float
    out[:, 0] = rz.astype(np.float64)
    out[:, 1] = 0.0
    return out


@lru_cache(maxsize=4)
def _ones(n: int) -> np.ndarray:
    ones = np.ones(n)
    ones.setflags(write=False)
    return ones


def _layer_norm(acc: np.ndarray, row_unit: np.ndarray, path: _Path, out: np.ndarray) -> None:
    """LN of the two slices ([r; z] = columns 0:2H, n = 2H:3H) of the integer products ``acc`` [B, 3H]
    into ``out`` (Q12, integer-valued float64).

    y = acc * column multiplier (exact); S1 = sum y (exact in float64: |S1| < 2^53 by the build-time bound,
    in any order); S2 = sum y^2 (``_sum_of_squares``); then per row and slice D = N S2 - S1^2 (= N^2 var),
    root = sqrt(D + eps N^2 / unit^2), and per element rint(((y * (N / root)) - S1 / root) * g + b): only
    IEEE-754 operations on values that are the same on every machine, in this order. The sums are taken
    per third (H columns) and added, which for exact integers is the same number; the elementwise steps
    run once over the whole [B, 3H] block with each third's per-row factors."""
    rows, width = acc.shape
    third = width // 3
    y = np.multiply(acc, path.multiplier, dtype=np.float64)
    y3 = y.reshape(rows, 3, third)
    # S1 as a product with ones: every partial sum is an integer below 2^53 (the bound above), so BLAS's
    # order and fused multiply-adds give the exact sum
    c1 = y3 @ _ones(third)  # [B, 3]
    c2 = _sum_of_squares(y3)
    s1, s2 = c1[:, 1:].copy(), c2[:, 1:].copy()  # [B, 2]: the [r; z] slice (thirds 0 + 1), the n slice
    s1[:, 0] += c1[:, 0]
    s2[:, 0] += c2[:, 0]
    var_n2 = np.maximum(path.sizes * s2 - s1 * s1, 0.0)
    unit = path.units * row_unit[:, None]
    root = np.sqrt(var_n2 + path.eps_n2 / (unit * unit))
    pick = [0, 0, 1]  # thirds 0 and 1 are the [r; z] slice
    y3 *= (path.sizes / root)[:, pick, None]
    y3 -= (s1 / root)[:, pick, None]
    y *= path.gain
    y += path.bias
    np.rint(y, out=out)


@dataclass
class State:
    """The integer network's state for B rows: h (Q15) per layer, and each layer's recurrent-path product
    for the next step (computed together with the next layer's input, one matrix product per layer)."""

    h: np.ndarray  # integer-valued float64 [L, B, H]
    rec: list[np.ndarray]  # per layer int32 [B, 3H]: the U h products (views into the step's products)
    rec_unit: np.ndarray  # float64 [L, B]: real size of one unit of the int8 h behind ``rec``

    def keep(self, k: int) -> State:
        """The first k rows (the blocks still running)."""
        return State(
            np.ascontiguousarray(self.h[:, :k]),
            [r[:k] for r in self.rec],
            np.ascontiguousarray(self.rec_unit[:, :k]),
        )


class IntegerNetwork:
    """The step function of format 2: tokens and a ``State`` -> integer logits (Q10) and the next state.

    Integers are held in float64 arrays where that is faster (numpy's float loops are vectorised, its
    int64 multiply and shifts less so): every such value is an integer below 2^53 in magnitude and every
    operation on them (+, -, *, multiplication by 2^-k, floor) is exact, so they are integer arithmetic."""

    def __init__(self, weights: GRUWeights, products: str = "fastest") -> None:
        """``products``: which kernel computes the matrix products (``products.integer_product``: all give
        the same integers)."""
        self.hidden = h = weights.hidden
        self.layers = len(weights.layers)
        # float32 tables: exact (|v| <= 2^15), half the cache; the sigmoid's in units of 1 (_gates)
        self.sigmoid_scaled = (tb.sigmoid_table() * 2.0**-tb.GATE_BITS).astype(np.float32)
        self.tanh = tb.tanh_table().astype(np.float32)
        self.h_scale = 2.0**-tb.GATE_BITS  # real value of one unit of h
        self.inputs: list[_Path] = []
        self.recurrent: list[_Path] = []
        for layer in weights.layers:
            self.inputs.append(self._path(layer, "in"))
            self.recurrent.append(self._path(layer, "rec"))
        # output layer: the embedding's rows (the 256 bytes: BOS is never coded) in int8, one scale per row
        emb = weights.embedding.astype(np.float64)
        row_max = np.abs(emb).max(axis=1)
        row_scale = np.where(row_max > 0, row_max / QMAX, 1.0)
        emb_q = np.rint(emb / row_scale[:, None])
        self.head_scale = row_scale[:N_BYTES] * float(1 << tb.LOGIT_BITS)  # exact power-of-two scaling
        self.head_bias = weights.output_bias[:N_BYTES].astype(np.float64) * float(1 << tb.LOGIT_BITS)
        # each layer's new h multiplies [next layer's input matrix | its own recurrent matrix] at once
        self.fused: list[Product] = []
        for i in range(self.layers):
            ahead = self.inputs[i + 1].weight if i + 1 < self.layers else emb_q[:N_BYTES].T
            self.fused.append(integer_product(np.concatenate([ahead, self.recurrent[i].weight], 1), products))
        self.products = type(self.fused[0]).__name__  # which kernel computes the (identical) products
        self.ahead = [self.fused[i].columns - 3 * h for i in range(self.layers)]
        # layer 0's input path depends on the byte only: LN(W_ih emb[v]) for all 257 tokens, by the same code
        first = self.inputs[0]
        acc = emb_q @ first.weight  # float64: exact (|partial sums| <= E * 127 * 127 < 2^53)
        self.token_input = np.empty((emb.shape[0], 3 * h), dtype=np.float64)
        _layer_norm(acc, row_scale, first, self.token_input)
        # initial state in Q15
        self.initial = np.rint(weights.initial_state * float(tb.GATE_ONE))

    def _path(self, layer: LayerWeights, which: str) -> _Path:
        if which == "in":
            return _quantize_matrix(layer.w_in, layer.gain_in, layer.bias_in, layer.eps, self.hidden)
        return _quantize_matrix(layer.w_rec, layer.gain_rec, layer.bias_rec, layer.eps, self.hidden)

    def start(self, rows: int) -> State:
        """The learned initial state for ``rows`` streams, with its recurrent products."""
        h = np.ascontiguousarray(np.repeat(self.initial[:, None, :], rows, axis=1))
        rec = []
        unit = np.empty((self.layers, rows), dtype=np.float64)
        for i in range(self.layers):
            a, scale = quantize_rows(h[i])
            rec.append(self.fused[i].offset_uint8(a)[:, self.ahead[i] :])
            unit[i] = scale * self.h_scale
        return State(h, rec, unit)

    def _gates(self, inp: np.ndarray, rec: np.ndarray, h: np.ndarray, out: np.ndarray) -> None:
        """GRUCell.step on Q12 pre-activations and the Q15 state h: the new Q15 state into ``out``.

        Written with fewer passes than the integer recipe reads, giving the same integers: a rounding shift
        floor((x + 2^14) * 2^-15) is x * 2^-15 + 0.5 floored, and with r and z read from a table already
        scaled by 2^-15 (exact in float32: 16 significant bits) x * 2^-15 is one product (exact: |x| < 2^37).
        A clip to [-2^16, 2^16) followed by the offset 2^16 is ``take``'s ``mode="clip"`` on the offset
        index; and as that clip sends every index below 0 to 0, truncating a non-integer index towards zero
        (``astype``) picks the same entry as flooring it."""
        hidden, two = self.hidden, 2 * self.hidden
        index = np.empty((len(h), two), dtype=np.intp)
        np.add(inp[:, :two], rec[:, :two], out=index, casting="unsafe")  # integers: exact
        index += tb.PRE_LIMIT
        rz = np.take(self.sigmoid_scaled, index, mode="clip")  # r, z in units of 1
        r, z = rz[:, :hidden], rz[:, hidden:]
        v = r * rec[:, two:]  # r * LN(U_n h) * 2^-15: Q12 with a 2^-15 fraction
        v += inp[:, two:]  # + LN(W_n x), Q12
        v += 0.5 + tb.PRE_LIMIT  # the rounding and the table's offset
        index = index[:, :hidden]
        np.copyto(index, v, casting="unsafe")  # truncated towards zero
        n = np.take(self.tanh, index, mode="clip")  # Q15
        np.subtract(h, n, out=out)  # h' = n + z (h - n) = (1 - z) n + z h
        out *= z
        out += 0.5
        np.floor(out, out=out)
        out += n

    def step(self, tokens: np.ndarray, state: State) -> tuple[np.ndarray, State]:
        """tokens int [B] (bytes or BOS) -> logits int64 [B, 256] in Q10 (up to a per-row constant), state."""
        rows = len(tokens)
        hidden = self.hidden
        inp = np.take(self.token_input, tokens, axis=0)
        rec_q = np.empty((rows, 3 * hidden), dtype=np.float64)
        new_h = np.empty_like(state.h)
        new_rec = []
        new_unit = np.empty_like(state.rec_unit)
        ahead = unit = np.empty(0)
        for i in range(self.layers):
            if i > 0:
                inp = np.empty((rows, 3 * hidden), dtype=np.float64)
                _layer_norm(ahead, unit, self.inputs[i], inp)
            _layer_norm(state.rec[i], state.rec_unit[i], self.recurrent[i], rec_q)
            self._gates(inp, rec_q, state.h[i], new_h[i])
            a, scale = quantize_rows(new_h[i])
            unit = scale * self.h_scale
            product = self.fused[i].offset_uint8(a)
            ahead = product[:, : self.ahead[i]]
            new_rec.append(product[:, self.ahead[i] :])
            new_unit[i] = unit
        logits = ahead.astype(np.float64)
        logits *= self.head_scale
        logits *= unit[:, None]
        logits += self.head_bias
        return np.rint(logits).astype(np.int64), State(new_h, new_rec, new_unit)


def frequencies(logits: np.ndarray, floor: int = 1) -> np.ndarray:
    """int64 [B, 256] Q10 logits -> int64 [B, 256] frequencies, each >= ``floor``, every row summing to 2^24.

    p_v ~ exp(l_v - max l) from the exp table (Q30; the largest is exactly 2^30), then
    f_v = floor + floor(e_v (2^24 - 256 floor) / sum e), and the rounding remainder (< 256) to the first most
    likely byte. All integer: e_v (2^24 - 256 floor) < 2^54. ``floor`` 16 is format 1's mixing with 2^-12
    of the uniform distribution (every byte >= 2^-20), which the adaptive mixer uses against overconfidence.
    """
    exp = tb.exp_table()
    gap = logits.max(axis=1, keepdims=True) - logits
    np.minimum(gap, tb.EXP_SIZE - 1, out=gap)
    e = exp[gap]
    total = e.sum(axis=1, keepdims=True)
    f = floor + (e * (TOTAL - N_BYTES * floor)) // total
    top = np.argmax(logits, axis=1)
    f[np.arange(len(f)), top] += TOTAL - f.sum(axis=1)
    return f


assert BOS_ID == N_BYTES
