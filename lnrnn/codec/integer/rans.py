"""Interleaved rANS over the blocks of one lane, in numpy uint64: one array operation codes one symbol of
every block at once.

The coder is Giesen's ``rans64`` (J. Duda, "Asymmetric numeral systems", arXiv:1311.2540, 2013, the range
variant; F. Giesen, "Interleaved entropy coders", arXiv:1402.3392, 2014, and ryg_rans): a 64-bit state x in
[L, 2^64) with L = 2^31, 32-bit output words, frequencies f of a total M = 2^24 (``TOTAL_BITS``), a symbol
with cumulative start c coded as

    encode:  x -> floor(x / f) * M + (x mod f) + c      after emitting x's low word while x >= (L / M) 2^32 f
    decode:  s such that c_s <= x mod M < c_s + f_s;  x -> f_s floor(x / M) + (x mod M) - c_s,
             then read a word while x < L

(Duda eq. 9 and its inverse). The decoder undoes the encoder's steps in reverse, so the encoder codes a block
from its last symbol to its first; it therefore buffers the lane's (c, f) pairs and codes them in
``finish``. Every block is its own stream with its own state, so the blocks of a lane (rows of the arrays)
advance together, each row a lane of Giesen's interleaving; the rows still running at step t are always a
prefix (engine.py), which keeps every operation a slice.

Payload of a block (little-endian 32-bit words): the final state (low word, high word), then the emitted
words in the order the decoder reads them. The decoder checks that it ends in the encoder's initial state
having read every word: a corrupted payload that still decodes to some bytes is caught here or by the CRC.
Size: the information content in bits, plus at most 64 bits (the final state) per block, plus the rANS
approximation loss (< 2^-20 bits per symbol at these sizes).
"""

from __future__ import annotations

import numpy as np

from lnrnn.codec.errors import ContainerError

TOTAL_BITS = 24
TOTAL = 1 << TOTAL_BITS
_L = np.uint64(1 << 31)  # lower bound of the normalised state
_WORD = np.uint64(32)
_LOW = np.uint64(0xFFFFFFFF)
_M_BITS = np.uint64(TOTAL_BITS)
_M_MASK = np.uint64(TOTAL - 1)
_X_MAX_UNIT = np.uint64(((1 << 31) >> TOTAL_BITS) << 32)  # x_max(f) = (L >> M_BITS) << 32 * f


def _active(lengths: np.ndarray, t: int) -> int:
    """Rows whose block is longer than t (the lengths are non-increasing)."""
    return int(np.searchsorted(-lengths, -t, side="left"))


class LaneEncoder:
    """Collects each step's (start, frequency) per row; ``finish`` codes every block, last symbol first."""

    def __init__(self, lengths: np.ndarray) -> None:
        self.lengths = np.asarray(lengths, dtype=np.int64)
        width = int(self.lengths.max()) if len(self.lengths) else 0
        self.start = np.zeros((len(self.lengths), width), dtype=np.uint32)
        self.freq = np.ones((len(self.lengths), width), dtype=np.uint32)

    def push(self, t: int, start: np.ndarray, freq: np.ndarray) -> None:
        """Rows 0..k-1 of step t: the coded byte's cumulative start and frequency (of 2^24)."""
        k = len(start)
        self.start[:k, t] = start
        self.freq[:k, t] = freq

    def finish(self) -> list[bytes]:
        return encode_rows(self.start, self.freq, self.lengths)


def encode_rows(start: np.ndarray, freq: np.ndarray, lengths: np.ndarray) -> list[bytes]:
    """The payload of each row: symbols 0..lengths[r]-1 of row r, given by (start, freq) [R, T]."""
    rows = len(lengths)
    if rows == 0:
        return []
    width = int(lengths.max())
    x = np.full(rows, _L, dtype=np.uint64)
    words = np.zeros((rows, width + 2), dtype=np.uint32)  # at most one word per symbol, plus the state
    count = np.zeros(rows, dtype=np.int64)
    for t in range(width - 1, -1, -1):
        k = _active(lengths, t)
        xs = x[:k]
        f = freq[:k, t].astype(np.uint64)
        c = start[:k, t].astype(np.uint64)
        emit = np.nonzero(xs >= _X_MAX_UNIT * f)[0]
        if emit.size:
            words[emit, count[emit]] = (xs[emit] & _LOW).astype(np.uint32)
            count[emit] += 1
            xs[emit] >>= _WORD
        q = xs // f
        xs[:] = (q << _M_BITS) + (xs - q * f) + c
    payloads = []
    for r in range(rows):
        n = int(count[r])
        body = words[r, :n][::-1]
        head = np.array([x[r] & _LOW, x[r] >> _WORD], dtype=np.uint32)
        payloads.append(np.concatenate([head, body]).astype("<u4").tobytes())
    return payloads


class LaneDecoder:
    """One rANS state per row; ``decode`` takes each active row's frequency table and returns its byte."""

    def __init__(self, payloads: list[bytes], lengths: np.ndarray, first_block: int) -> None:
        self.lengths = np.asarray(lengths, dtype=np.int64)
        self.first_block = first_block
        rows = len(payloads)
        sizes = np.array([len(p) // 4 for p in payloads], dtype=np.int64)
        if rows and sizes.min() < 2:
            bad = int(np.argmax(sizes < 2))
            raise ContainerError(
                f"corrupted payload in block {first_block + bad}: shorter than the coder state"
            )
        width = int(sizes.max()) if rows else 0
        self.words = np.zeros((rows, width + 1), dtype=np.uint64)  # one spare column: reads past the end
        for r, payload in enumerate(payloads):
            self.words[r, : sizes[r]] = np.frombuffer(payload, dtype="<u4")
        self.sizes = sizes
        self.x = self.words[:, 0] | (self.words[:, 1] << _WORD) if rows else np.zeros(0, dtype=np.uint64)
        self.pos = np.full(rows, 2, dtype=np.int64)
        self.row_ids = np.arange(rows)

    def decode(self, cum: np.ndarray) -> np.ndarray:
        """cum int64 [k, 257]: each active row's cumulative frequencies (0 ... 2^24) -> its byte [k]."""
        k = cum.shape[0]
        x = self.x[:k]
        slot = (x & _M_MASK).astype(np.int64)
        sym = (cum[:, 1:] <= slot[:, None]).sum(axis=1)
        rows = self.row_ids[:k]
        c = cum[rows, sym]
        f = (cum[rows, sym + 1] - c).astype(np.uint64)
        x[:] = f * (x >> _M_BITS) + (slot - c).astype(np.uint64)
        low = np.nonzero(x < _L)[0]
        if low.size:
            pos = self.pos[low]
            if (pos >= self.sizes[low]).any():
                bad = int(low[pos >= self.sizes[low]][0])
                raise ContainerError(
                    f"corrupted payload in block {self.first_block + bad}: it ends too early"
                )
            x[low] = (x[low] << _WORD) | self.words[low, pos]
            self.pos[low] = pos + 1
        return sym

    def check_end(self) -> None:
        """After the last byte: every block back at the initial state with every word read."""
        bad = np.nonzero((self.x != _L) | (self.pos != self.sizes))[0]
        if bad.size:
            raise ContainerError(
                f"corrupted payload in block {self.first_block + int(bad[0])}: "
                "the coder does not end where it started"
            )
