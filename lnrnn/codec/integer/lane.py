"""Format 2's loop over the blocks of one lane: the integer network, the integer predictor and rANS.

Same layout as format 1 (engine.py: the rows still running at step t are a prefix, every block starts from
the learned initial state with BOS), but every number that decides a frequency is an integer computed by
exact operations, so the encoder and a decoder on any other machine make the same frequency tables.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

import numpy as np

from lnrnn.codec.integer import rans
from lnrnn.codec.integer.network import IntegerNetwork, frequencies
from lnrnn.contract import BOS_ID

if TYPE_CHECKING:
    from lnrnn.codec.engine import Lane


class IntegerPredictor(Protocol):
    """One lane's model: ``predict`` (frequencies of the first ``k`` rows at step ``t``) then ``update``."""

    def predict(self, t: int, k: int, logits: np.ndarray) -> np.ndarray: ...

    def update(self, t: int, k: int, symbols: np.ndarray) -> None: ...


class NeuralOnly:
    """The network's own distribution (BOS excluded: it never follows the first token)."""

    def predict(self, t: int, k: int, logits: np.ndarray) -> np.ndarray:
        return frequencies(logits)

    def update(self, t: int, k: int, symbols: np.ndarray) -> None:
        return None


def code_lane(
    network: IntegerNetwork,
    lane: Lane,
    model: IntegerPredictor,
    *,
    encode: bool,
    payloads: list[bytes] | None,
    tick: Callable[[int], None],
    hook: Callable[[], None],
) -> None:
    """Score, encode (``encode``: sets ``lane.payloads``) or decode (``payloads``: fills ``lane.history``)."""
    lengths, history = lane.lengths, lane.history
    rows = len(lengths)
    if rows == 0:
        lane.payloads = [] if encode else None
        return
    width = int(lengths.max())
    active = np.searchsorted(-lengths, -np.arange(width), side="left")
    encoder = rans.LaneEncoder(lengths) if encode else None
    decoder = rans.LaneDecoder(payloads, lengths, lane.blocks.start) if payloads is not None else None
    state = network.start(rows)
    tokens = np.full(rows, BOS_ID, dtype=np.int64)
    row_ids = np.arange(rows)
    cum = np.zeros((rows, 257), dtype=np.int64)
    k = rows
    for t in range(width):
        hook()
        if active[t] < k:
            k = int(active[t])
            state = state.keep(k)
            tokens = tokens[:k]
        logits, state = network.step(tokens, state)
        freq = model.predict(t, k, logits)
        np.cumsum(freq, axis=1, out=cum[:k, 1:])
        if decoder is not None:
            history[:k, t] = decoder.decode(cum[:k])
        symbols = history[:k, t]
        f = freq[row_ids[:k], symbols]
        lane.nats[:k] -= np.log(f / rans.TOTAL)  # reporting only: the coder uses the integers
        if encoder is not None:
            encoder.push(t, cum[row_ids[:k], symbols], f)
        model.update(t, k, symbols)
        tokens = symbols.astype(np.int64)
        tick(k)
    if decoder is not None:
        decoder.check_end()
    if encoder is not None:
        lane.payloads = encoder.finish()


def integer_predictor(adaptive: bool, history: np.ndarray, lengths: np.ndarray) -> IntegerPredictor:
    """The lane's predictor: the network alone, or mixed with the lane's context and match models."""
    if adaptive:
        from lnrnn.codec.integer.mixer import IntegerMixer

        return IntegerMixer(history, lengths)
    return NeuralOnly()
