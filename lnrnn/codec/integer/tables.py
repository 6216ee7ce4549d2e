"""The lookup tables of format 2: sigmoid, tanh and exp as integers, the same on every machine.

A table computed with ``np.exp`` or the C library's ``exp`` may differ in the last bit between CPUs,
numpy versions (numpy has its own SIMD exp/tanh) and C libraries, and one such bit can move a value across a
rounding boundary. So the few hundred sample points are computed with Python's ``decimal`` module, whose
``exp`` is correctly rounded by its specification (General Decimal Arithmetic, "exp": "the result is
correctly rounded using the round-half-even algorithm") at a fixed 40-digit context, and rounded half-even to
integers; every other entry is derived from them with integer arithmetic only (linear interpolation,
products with shifts). The tables are therefore a function of the constants below; ``table_digest`` pins
them in the tests.

* ``sigmoid_table`` / ``tanh_table``: indexed by a pre-activation in Q12 (real value * 2^12) clipped to
  [-16, 16), offset by 2^16; values in Q15 (sigmoid in [0, 2^15], tanh in [-2^15, 2^15]). Sampled every
  2^-7 and linearly interpolated in between: the interpolation error is at most h^2/8 * max|f''| (h = 2^-7),
  7e-7 for the sigmoid and 6e-6 for tanh, below the Q15 step (3e-5).
* ``log_count_table``: round(2^10 ln(count + alpha)), the adaptive mixer's context-count inputs.
* ``exp_table``: indexed by a logit difference in Q10 (1/1024 nat), ``round(2^30 exp(-k / 2^10))``, built
  as the rounded product of a coarse (steps of 1/32) and a fine (steps of 1/1024) table of Q30 values; past
  ``EXP_SPAN`` nats it is 0 (2^30 e^-22 < 1/3).
"""

from __future__ import annotations

import hashlib
from decimal import ROUND_HALF_EVEN, Context, Decimal
from functools import lru_cache

import numpy as np

PRE_BITS = 12  # pre-activations (layer-norm outputs and their sums) are integers in units of 2^-12
GATE_BITS = 15  # gate values and hidden states are integers in units of 2^-15
GATE_ONE = 1 << GATE_BITS
CLIP = 16  # pre-activations are clipped to [-16, 16) before the lookup
PRE_LIMIT = CLIP << PRE_BITS  # 2^16
TABLE_SIZE = 2 * PRE_LIMIT  # index = clip(u, -2^16, 2^16 - 1) + 2^16
_SAMPLE_SHIFT = 5  # samples every 2^(5 - 12) = 2^-7
_SAMPLES = (TABLE_SIZE >> _SAMPLE_SHIFT) + 1  # 4097 points from -16 to +16

LOGIT_BITS = 10  # logits are integers in units of 2^-10 nat
EXP_BITS = 30  # exp values are integers in units of 2^-30
EXP_SPAN = 22  # nats: exp(-22) * 2^30 < 0.5, the table ends there
EXP_SIZE = EXP_SPAN << LOGIT_BITS  # entries 0..EXP_SIZE-1; clip the index to EXP_SIZE - 1 (value 0)
_FINE_BITS = 5  # the fine table covers 32 steps of 2^-10, the coarse one steps of 2^-5

_CONTEXT = Context(prec=40, rounding=ROUND_HALF_EVEN)


def _round(value: Decimal) -> int:
    return int(value.to_integral_value(rounding=ROUND_HALF_EVEN, context=_CONTEXT))


def _exp(x: Decimal) -> Decimal:
    return _CONTEXT.exp(x)


def _points() -> list[Decimal]:
    """The sample abscissae -16, -16 + 2^-7, ..., +16 (exact in decimal)."""
    step = Decimal(1) / Decimal(1 << (PRE_BITS - _SAMPLE_SHIFT))  # 1/128, exact
    return [Decimal(-CLIP) + step * i for i in range(_SAMPLES)]


def _interpolate(samples: list[int]) -> np.ndarray:
    """Every Q12 point from the samples: value(j) = s[i] + round((s[i+1] - s[i]) * f / 32), j = 32 i + f."""
    s = np.array(samples, dtype=np.int64)
    j = np.arange(TABLE_SIZE, dtype=np.int64)
    i, f = j >> _SAMPLE_SHIFT, j & ((1 << _SAMPLE_SHIFT) - 1)
    half = 1 << (_SAMPLE_SHIFT - 1)
    value = s[i] + (((s[i + 1] - s[i]) * f + half) >> _SAMPLE_SHIFT)
    return value.astype(np.int32)


@lru_cache(maxsize=1)
def sigmoid_table() -> np.ndarray:
    """int32 [2^17]: round(2^15 / (1 + e^-x)) at the samples, interpolated."""
    one = Decimal(1)
    scale = Decimal(GATE_ONE)
    samples = [_round(_CONTEXT.divide(scale, one + _exp(-x))) for x in _points()]
    table = _interpolate(samples)
    table.setflags(write=False)
    return table


@lru_cache(maxsize=1)
def tanh_table() -> np.ndarray:
    """int32 [2^17]: round(2^15 tanh x) = round(2^15 (1 - 2 / (e^2x + 1))) at the samples, interpolated."""
    one, two = Decimal(1), Decimal(2)
    scale = Decimal(GATE_ONE)
    samples = [_round(scale * (one - _CONTEXT.divide(two, _exp(two * x) + one))) for x in _points()]
    table = _interpolate(samples)
    table.setflags(write=False)
    return table


@lru_cache(maxsize=1)
def exp_table() -> np.ndarray:
    """int64 [EXP_SIZE]: ~ round(2^30 exp(-k / 2^10)); the last entry is 0 (larger k are clipped to it)."""
    one = 1 << EXP_BITS
    fine_n = 1 << _FINE_BITS
    coarse_n = EXP_SIZE >> _FINE_BITS
    unit = Decimal(1) / Decimal(1 << LOGIT_BITS)  # exact
    fine = np.array([_round(Decimal(one) * _exp(-unit * i)) for i in range(fine_n)], dtype=np.int64)
    coarse = np.array(
        [_round(Decimal(one) * _exp(-unit * (i * fine_n))) for i in range(coarse_n)], dtype=np.int64
    )
    k = np.arange(EXP_SIZE, dtype=np.int64)
    table = (coarse[k >> _FINE_BITS] * fine[k & (fine_n - 1)] + (one >> 1)) >> EXP_BITS  # < 2^60: no overflow
    table[-1] = 0
    table.setflags(write=False)
    return table


_log_counts: dict[str, np.ndarray] = {}


def log_count_table(size: int, alpha: str) -> np.ndarray:
    """int64 [size]: round(2^10 ln(c + alpha)) for counts c = 0 .. size-1 (``alpha`` a decimal string, e.g.
    "0.03", so that it is exact); ``Decimal.ln`` is correctly rounded like ``exp``. Computed once per
    process for at least 4,352 counts (format 1's count limit plus a lane's rows) and sliced."""
    table = _log_counts.get(alpha)
    if table is None or len(table) < size:
        a = Decimal(alpha)
        unit = Decimal(1 << LOGIT_BITS)
        n = max(size, 4352)
        table = np.array([_round(unit * _CONTEXT.ln(Decimal(c) + a)) for c in range(n)], dtype=np.int64)
        table.setflags(write=False)
        _log_counts[alpha] = table
    return table[:size]


def table_digest() -> str:
    """SHA-256 over the three tables: a change of any entry changes format 2."""
    h = hashlib.sha256()
    for table in (sigmoid_table(), tanh_table(), exp_table()):
        h.update(np.ascontiguousarray(table).astype("<i8").tobytes())
    return h.hexdigest()
