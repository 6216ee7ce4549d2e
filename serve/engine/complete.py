"""Completions: the most likely ways a text goes on, by beam search over bytes, whole UTF-8 characters only.

The search drives one batched call, :data:`Step` (``Scorer.next``, or any model that maps one byte per row
and a state with its rows on axis 1 to next-byte log-probs): every live beam is a row of the same call, so
one call advances all of them, and in the server that call joins the batcher's shared graph calls.

What a completion is (the API documents the same words):

* It ends when ``until`` is met, and includes the character that met it. ``"word"``: after an ASCII
  whitespace or punctuation character (``WORD_ENDS``: space, tab, CR, LF, VT, FF and ``string.punctuation``);
  ``"line"``: after a newline; ``"chars"``: after exactly ``max_chars`` characters.
* One that reaches ``max_chars`` characters without ending is kept, with ``ended=False``: its probability
  is its prefix's, the mass of every longer way on from it, so a long word is still offered by its start
  (what a keyboard wants) and ranks by how likely that start is.
* Its probability is the product of the model's byte probabilities (log-probs summed in float64, never
  renormalised). Bytes that would break UTF-8 (and BOS) are never searched: their mass is in no completion.

The search: after each byte the ``width`` most likely unfinished candidates go on (``BEAM_PER_COMPLETION``
per completion asked). A candidate less likely than the n-th best completion found so far is dropped, since
going on only lowers its probability, and the search stops when nothing is left to extend: on text the
model knows that is a few calls. Ranked by probability, ties broken by byte order: deterministic.
"""

from __future__ import annotations

import math
import string
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from lnrnn.bpc import nats_to_bits
from lnrnn.contract import VOCAB_SIZE
from lnrnn.serve.engine.utf8 import char_length, next_mask

UNTIL = ("word", "line", "chars")
MAX_COMPLETIONS, MAX_COMPLETION_CHARS = 10, 32  # the bounds the routes and the CLI accept for n, max_chars
WORD_ENDS = (string.whitespace + string.punctuation).encode("ascii")
# Word completions of the default model saved the same keystrokes at widths 2n, 4n and 8n (BENCHMARKS.md,
# completion section); 4n leaves room for line and chars completions, whose beams branch for longer, at
# about the time of 2n (8n took ~1.6x).
BEAM_PER_COMPLETION = 4

# tokens int64 [B], state with its B rows on axis 1 -> next-token log-probs [B, >= 256], the new state
Step = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


def _byte_mask(chars: bytes) -> np.ndarray:
    mask = np.zeros(VOCAB_SIZE, dtype=bool)
    mask[list(chars)] = True
    return mask


_ENDS = {"word": _byte_mask(WORD_ENDS), "line": _byte_mask(b"\n")}
_ASCII = _byte_mask(bytes(range(128)))
_NONE = np.zeros(VOCAB_SIZE, dtype=bool)
_ALL = np.ones(VOCAB_SIZE, dtype=bool)


@dataclass(frozen=True)
class Completion:
    text: str
    logprob: float  # natural log of the probability
    ended: bool  # False: cut at max_chars before ``until`` was met

    @property
    def probability(self) -> float:
        return math.exp(self.logprob)

    @property
    def bits(self) -> float:
        return nats_to_bits(-self.logprob)


@dataclass
class _Beams:
    """The live beams; all are the same number of bytes long (one byte per search step)."""

    texts: list[bytes]
    scores: np.ndarray  # float64 [B]: log-probability so far
    chars: np.ndarray  # int64 [B]: whole characters so far
    pending: list[bytes]  # bytes of the character not finished yet


def check(n: int, max_chars: int, until: str) -> None:
    """ValueError for arguments no search can take (the routes check their own bounds first)."""
    if n < 1 or max_chars < 1:
        raise ValueError(f"n and max_chars must be at least 1, got n={n}, max_chars={max_chars}")
    if until not in UNTIL:
        raise ValueError(f"until must be one of {', '.join(UNTIL)}, got {until!r}")


def complete(
    step: Step,
    last: np.ndarray,
    state: np.ndarray,
    *,
    n: int = 3,
    max_chars: int = 16,
    until: str = "word",
    width: int = 0,
) -> list[Completion]:
    """The ``n`` most likely completions (fewer if fewer exist), best first, after a context whose
    next-byte log-probs are ``last`` [V] and whose state (one row on axis 1) is ``state``. Neither is
    changed. ``width`` 0 = ``BEAM_PER_COMPLETION * n``."""
    check(n, max_chars, until)
    width = width or BEAM_PER_COMPLETION * n
    beams = _Beams([b""], np.zeros(1), np.zeros(1, dtype=np.int64), [b""])
    logprobs = _columns(np.asarray(last)[None, :])
    found: list[tuple[float, bytes, bool]] = []  # (-logprob, text, ended), sorted: the best n so far
    while beams.texts:
        allowed = np.stack([next_mask(p) for p in beams.pending])
        scores = np.where(allowed, beams.scores[:, None] + logprobs, -np.inf)
        # a byte finishes a character if it is ASCII after a finished one, or the last byte of a started one
        finishes = np.stack(
            [_ASCII if not p else (_ALL if len(p) + 1 == char_length(p[0]) else _NONE) for p in beams.pending]
        )
        chars = beams.chars[:, None] + finishes
        ended = chars == max_chars if until == "chars" else _ENDS[until][None, :] & finishes
        final = ended | (finishes & (chars == max_chars))
        rows, cols = np.nonzero(final & (scores >= _threshold(found, n)) & (scores > -np.inf))
        for r, c in zip(rows.tolist(), cols.tolist(), strict=True):
            found.append((-float(scores[r, c]), beams.texts[r] + bytes([c]), bool(ended[r, c])))
        found = sorted(found)[:n]
        go_on = ~final & (scores >= _threshold(found, n)) & (scores > -np.inf)
        beams, rows = _extend(beams, scores, chars, finishes, go_on, width)
        if beams.texts:
            tokens = np.frombuffer(b"".join(t[-1:] for t in beams.texts), dtype=np.uint8).astype(np.int64)
            out, state = step(tokens, np.take(state, rows, axis=1))
            logprobs = _columns(out)
    return [Completion(text.decode("utf-8"), -neg, ended) for neg, text, ended in found]


def _threshold(found: list[tuple[float, bytes, bool]], n: int) -> float:
    """The log-probability a candidate needs to matter: the n-th best found so far (none yet: -inf)."""
    return -found[-1][0] if len(found) == n else -np.inf


def _columns(logprobs: np.ndarray) -> np.ndarray:
    """float64 [B, V]: a model without a BOS column (256 wide) gets -inf there."""
    out = np.full((logprobs.shape[0], VOCAB_SIZE), -np.inf)
    out[:, : logprobs.shape[1]] = logprobs[:, :VOCAB_SIZE]
    return out


def _extend(
    beams: _Beams,
    scores: np.ndarray,
    chars: np.ndarray,
    finishes: np.ndarray,
    go_on: np.ndarray,
    width: int,
) -> tuple[_Beams, np.ndarray]:
    """The best ``width`` candidates of ``go_on`` (ties: byte order) as the next beams, and the row of the
    current beams each one extends."""
    rows, cols = np.nonzero(go_on)
    values = scores[rows, cols]
    if len(values) > width:  # keep everything tied with the width-th best, then order exactly
        keep = values >= np.partition(values, -width)[-width]
        rows, cols, values = rows[keep], cols[keep], values[keep]
    # every live text has the same length, so byte order is (the parent's byte order, the new byte)
    parent_rank = np.argsort(np.argsort(np.array(beams.texts, dtype=object), kind="stable"), kind="stable")
    order = np.lexsort((cols, parent_rank[rows], -values))[:width]
    rows, cols = rows[order], cols[order]
    pairs = list(zip(rows.tolist(), cols.tolist(), strict=True))
    nxt = _Beams(
        [beams.texts[r] + bytes([c]) for r, c in pairs],
        scores[rows, cols],
        chars[rows, cols],
        [b"" if finishes[r, c] else beams.pending[r] + bytes([c]) for r, c in pairs],
    )
    return nxt, rows
