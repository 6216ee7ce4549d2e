"""The one BPC function, pinned to hand-computed examples."""

from __future__ import annotations

import math

import pytest

from lnrnn.bpc import bits_per_byte, nats_to_bits


def test_bits_per_byte_hand_computed() -> None:
    # Three bytes predicted with p = 1/2, 1/4 and 1/8: 1 + 2 + 3 = 6 bits over 3 bytes = 2 bits/byte.
    nats = -(math.log(0.5) + math.log(0.25) + math.log(0.125))
    assert bits_per_byte(nats, 3) == pytest.approx(2.0, abs=1e-12)


def test_ratio_of_sums_not_mean_of_means() -> None:
    # Batch A: 1 byte at 8 bits; batch B: 3 bytes at 0 bits. Exact: 8 / 4 = 2, a mean of means would say 4.
    nats_a, nats_b = 8 * math.log(2), 0.0
    assert bits_per_byte(nats_a + nats_b, 1 + 3) == pytest.approx(2.0)


def test_uniform_over_256_bytes_is_8_bits() -> None:
    assert bits_per_byte(1000 * math.log(256), 1000) == pytest.approx(8.0)
    assert nats_to_bits(math.log(2)) == pytest.approx(1.0)


@pytest.mark.parametrize(("nats", "n"), [(1.0, 0), (1.0, -1), (-0.5, 3), (float("nan"), 3), (math.inf, 3)])
def test_rejects_meaningless_input(nats: float, n: int) -> None:
    with pytest.raises(ValueError):
        bits_per_byte(nats, n)
