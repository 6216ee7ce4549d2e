"""The one BPC function. Training logs, evaluation, the CLI and the API all call it.

Bits per byte is total negative log-likelihood in nats divided by (ln 2 x bytes scored): a
ratio of sums over the whole text, never a mean of per-batch means (which would weight short
batches wrongly). This module is torch-free so that ``lnrnn.serve`` can use it.
"""

from __future__ import annotations

import math

LN2 = math.log(2.0)


def nats_to_bits(nats: float) -> float:
    """Convert a negative log-likelihood in nats to bits."""
    return float(nats) / LN2


def bits_per_byte(total_nats: float, n_bytes: int) -> float:
    """Total nats / (ln 2 x bytes scored).

    >>> round(bits_per_byte(4 * math.log(2), 4), 6)   # four bytes at p = 1/2 each: 1 bit per byte
    1.0
    """
    if n_bytes <= 0:
        raise ValueError(f"bits_per_byte needs at least one scored byte, got {n_bytes}")
    if not math.isfinite(total_nats) or total_nats < 0:
        raise ValueError(f"total_nats must be a finite non-negative number, got {total_nats}")
    return float(total_nats) / (LN2 * n_bytes)
