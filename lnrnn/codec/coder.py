"""Range coding of the blocks of one lane with constriction (bamler-lab; Python bindings of a Rust coder).

``Categorical(perfect=False)`` turns a float probability row into 24-bit integer frequencies with one
deterministic O(n) rule that gives every symbol a nonzero frequency, so a byte the model thought nearly
impossible still codes. The encoder hands it whole runs of rows at once (the family API with a 2-D array);
the decoder must build one model per row to learn each byte before it can compute the next row. Both paths
quantize the same float32 row the same way (``perfect=False`` on both sides), so they agree.
"""

from __future__ import annotations

import constriction
import numpy as np

CHUNK_STEPS = 256  # rows buffered per block before the encoder codes them: [rows, 256, 256] float32
_MODEL = constriction.stream.model
_QUEUE = constriction.stream.queue


def _words(payload: bytes) -> np.ndarray:
    return np.frombuffer(payload, dtype="<u4").astype(np.uint32)


class LaneEncoder:
    """One range encoder per block (row) of a lane; rows are buffered and coded a chunk at a time."""

    def __init__(self, lengths: np.ndarray) -> None:
        self.lengths = lengths
        self.encoders = [_QUEUE.RangeEncoder() for _ in lengths]
        self.family = _MODEL.Categorical(perfect=False)
        self.probs = np.zeros((len(lengths), CHUNK_STEPS, 256), dtype=np.float32)
        self.symbols = np.zeros((len(lengths), CHUNK_STEPS), dtype=np.int32)
        self.start = 0  # step of the chunk's first column

    def push(self, t: int, probs: np.ndarray, symbols: np.ndarray) -> None:
        """Rows 0..k-1 of step ``t``: their distributions [k, 256] and the bytes that occurred."""
        k, col = probs.shape[0], t - self.start
        self.probs[:k, col] = probs
        self.symbols[:k, col] = symbols
        if col + 1 == CHUNK_STEPS:
            self._flush(t + 1)

    def _flush(self, end: int) -> None:
        for row, encoder in enumerate(self.encoders):
            n = min(int(self.lengths[row]), end) - self.start
            if n > 0:
                encoder.encode(self.symbols[row, :n], self.family, self.probs[row, :n])
        self.start = end

    def finish(self, end: int) -> list[bytes]:
        """Code what is buffered; the payload of each block (little-endian 32-bit words)."""
        if end > self.start:
            self._flush(end)
        return [encoder.get_compressed().astype("<u4").tobytes() for encoder in self.encoders]


class LaneDecoder:
    """One range decoder per block (row) of a lane; each step decodes one byte per active row."""

    def __init__(self, payloads: list[bytes]) -> None:
        self.decoders = [_QUEUE.RangeDecoder(_words(payload)) for payload in payloads]
        self.categorical = _MODEL.Categorical

    def decode(self, probs: np.ndarray) -> np.ndarray:
        """The byte of each of the first k rows, given their distributions [k, 256]."""
        out = np.empty(probs.shape[0], dtype=np.uint8)
        for row in range(probs.shape[0]):
            model = self.categorical(probs[row], perfect=False, lazy=True)
            out[row] = self.decoders[row].decode(model)
        return out
