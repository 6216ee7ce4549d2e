"""Format 2's pieces alone: the interleaved rANS coder (round trips of random symbols under random frequency
tables, size against the information content, corruption caught) and the integer tables (pinned, and close
to the functions they tabulate)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lnrnn.codec.errors import ContainerError
from lnrnn.codec.integer import rans
from lnrnn.codec.integer import tables as tb
from lnrnn.codec.integer.network import frequencies


def random_tables(rng: np.random.Generator, rows: int, steps: int, concentration: float) -> np.ndarray:
    """int64 [rows, steps, 256] frequencies >= 1 summing to 2^24: Dirichlet draws, some very peaked."""
    p = rng.dirichlet(np.full(256, concentration), size=(rows, steps))
    f = 1 + np.floor(p * (rans.TOTAL - 256)).astype(np.int64)
    f[..., 0] += rans.TOTAL - f.sum(axis=-1)
    return f


def code(freq: np.ndarray, lengths: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, list[bytes]]:
    """Draw symbols from ``freq`` and encode them as the lane loop does (one push per step, prefix rows)."""
    rows, steps, _ = freq.shape
    cum = np.concatenate([np.zeros((rows, steps, 1), np.int64), np.cumsum(freq, axis=-1)], axis=-1)
    symbols = np.zeros((rows, steps), dtype=np.int64)
    for r in range(rows):
        for t in range(int(lengths[r])):
            symbols[r, t] = rng.choice(256, p=freq[r, t] / rans.TOTAL)
    encoder = rans.LaneEncoder(lengths)
    for t in range(steps):
        k = int((lengths > t).sum())
        idx = np.arange(k)
        encoder.push(t, cum[idx, t, symbols[:k, t]], freq[idx, t, symbols[:k, t]])
    return symbols, encoder.finish()


def decode(freq: np.ndarray, lengths: np.ndarray, payloads: list[bytes]) -> np.ndarray:
    rows, steps, _ = freq.shape
    cum = np.concatenate([np.zeros((rows, steps, 1), np.int64), np.cumsum(freq, axis=-1)], axis=-1)
    decoder = rans.LaneDecoder(payloads, lengths, first_block=0)
    out = np.zeros((rows, steps), dtype=np.int64)
    for t in range(steps):
        k = int((lengths > t).sum())
        out[:k, t] = decoder.decode(cum[:k, t])
    decoder.check_end()
    return out


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    lengths=st.lists(st.integers(1, 120), min_size=1, max_size=6).map(sorted).map(lambda v: v[::-1]),
    concentration=st.sampled_from([0.01, 0.1, 1.0, 30.0]),
)
def test_random_symbols_round_trip_within_8_bytes_of_their_information(
    seed: int, lengths: list[int], concentration: float
) -> None:
    rng = np.random.default_rng(seed)
    lens = np.array(lengths, dtype=np.int64)
    freq = random_tables(rng, len(lens), int(lens.max()), concentration)
    symbols, payloads = code(freq, lens, rng)
    out = decode(freq, lens, payloads)
    for r, n in enumerate(lens):
        assert np.array_equal(out[r, :n], symbols[r, :n])
        f = freq[r, np.arange(n), symbols[r, :n]]
        info_bytes = float(-np.log2(f / rans.TOTAL).sum()) / 8
        # payload = emitted words + the 64-bit final state; the state holds 31 to 63 bits of the information
        size = len(payloads[r])
        assert info_bytes + 4 - 0.01 <= size <= info_bytes + 8 + 0.01, (size, info_bytes)
        assert len(payloads[r]) % 4 == 0


def test_certain_symbols_cost_nothing_and_improbable_ones_their_24_bits() -> None:
    """A symbol of frequency 2^24 - 255 codes in ~0 bits, one of frequency 1 in 24 bits: the coder's
    extremes (renormalisation on every step) round trip."""
    rng = np.random.default_rng(1)
    steps = 500
    freq = np.ones((2, steps, 256), dtype=np.int64)
    freq[..., 7] = rans.TOTAL - 255
    lengths = np.array([steps, steps], dtype=np.int64)
    cum = np.concatenate([np.zeros((2, steps, 1), np.int64), np.cumsum(freq, axis=-1)], axis=-1)
    symbols = np.full((2, steps), 7)
    symbols[1] = rng.integers(0, 7, steps)  # row 1: only the improbable bytes
    encoder = rans.LaneEncoder(lengths)
    for t in range(steps):
        encoder.push(t, cum[[0, 1], t, symbols[:, t]], freq[[0, 1], t, symbols[:, t]])
    payloads = encoder.finish()
    assert len(payloads[0]) == 8  # the final state alone
    assert 24 * steps / 8 <= len(payloads[1]) <= 24 * steps / 8 + 8
    assert np.array_equal(decode(freq, lengths, payloads), symbols)


@pytest.mark.parametrize("where", ["state", "body", "truncated", "extended"])
def test_a_damaged_payload_does_not_decode_silently(where: str) -> None:
    """Every change is caught: by the end check (state back at L, every word read), by running out of
    words, or by decoding other symbols (which the container's CRC then catches)."""
    rng = np.random.default_rng(2)
    lengths = np.array([300], dtype=np.int64)
    freq = random_tables(rng, 1, 300, 0.3)
    symbols, payloads = code(freq, lengths, rng)
    p = payloads[0]
    damaged = {
        "state": p[:3] + bytes([p[3] ^ 0x40]) + p[4:],
        "body": p[:20] + bytes([p[20] ^ 0x01]) + p[21:],
        "truncated": p[:-4],
        "extended": p + b"\x00\x00\x00\x00",
    }[where]
    try:
        out = decode(freq, lengths, [damaged])
    except ContainerError as err:
        assert str(err).startswith("corrupted payload in block 0")
    else:
        assert not np.array_equal(out[0], symbols[0])


def test_frequencies_are_positive_sum_to_the_total_and_follow_the_logits() -> None:
    rng = np.random.default_rng(3)
    logits = rng.integers(-40 << tb.LOGIT_BITS, 10 << tb.LOGIT_BITS, size=(50, 256))
    logits[0] = 0  # uniform
    logits[1, :] = -(10**9)  # one byte certain, the rest beyond the exp table
    logits[1, 200] = 0
    f = frequencies(logits)
    assert f.min() >= 1 and (f.sum(axis=1) == rans.TOTAL).all()
    assert (f[0] == rans.TOTAL // 256).all()
    assert f[1, 200] == rans.TOTAL - 255
    p = np.exp((logits - logits.max(1, keepdims=True)) / 2**tb.LOGIT_BITS)
    p /= p.sum(1, keepdims=True)
    q = f / rans.TOTAL
    kl = (p * (np.log(np.maximum(p, 1e-300)) - np.log(q))).sum(axis=1)
    assert kl.max() < 2e-4, kl.max()  # at most 0.0003 bits/byte lost to the 24-bit frequencies


# The tables are part of format 2: any change to them changes archives. This digest pins them.
TABLE_DIGEST = "2f0b5e83781a0d10248e0954fbd549c3aba4072794e54522dce678d0cda669ac"


def test_tables_are_pinned_and_close_to_the_functions() -> None:
    assert tb.table_digest() == TABLE_DIGEST
    x = (np.arange(tb.TABLE_SIZE) - tb.PRE_LIMIT) / 2**tb.PRE_BITS
    sig, tanh = tb.sigmoid_table(), tb.tanh_table()
    assert np.abs(sig - 2**15 / (1 + np.exp(-x))).max() <= 1.0
    assert np.abs(tanh - 2**15 * np.tanh(x)).max() <= 1.5
    assert (np.diff(sig) >= 0).all() and (np.diff(tanh) >= 0).all()
    assert sig[tb.PRE_LIMIT] == 2**14 and tanh[tb.PRE_LIMIT] == 0
    assert np.abs(sig[1:] + sig[:0:-1] - 2**15).max() <= 1  # sigma(-x) = 1 - sigma(x), up to rounding
    exp = tb.exp_table()
    k = np.arange(tb.EXP_SIZE - 1)
    assert np.abs(exp[:-1] - 2**30 * np.exp(-k / 2**tb.LOGIT_BITS)).max() <= 1.5
    assert exp[0] == 2**30 and exp[-1] == 0
    assert math.isclose(exp[1024] / 2**30, math.exp(-1), rel_tol=1e-8)
