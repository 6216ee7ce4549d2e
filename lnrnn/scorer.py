"""The one scorer: feed tokens through the exported sequence graph from a state, in chunks, paying every byte.

Torch-free and onnxruntime-free: it drives objects with ONNX Runtime's ``run(names, feeds)``. ``lnrnn export``
verification and quantization, ``lnrnn score``, the server's routes, its prefix cache and its sessions all
score through it, so there is one chunking rule and one place where a byte is paid for:

* A document is [BOS, b0, ..., b(n-1)] from the initial state (``contract.document_array``).
* Tokens go in chunks of ``chunk_tokens`` through the sequence graph, a last short chunk as it is (T >= 1;
  T = 0 never reaches ONNX Runtime, whose ``Scan`` over an empty sequence kills the process with SIGFPE).
  A chunk continues from the previous ``state_out`` without repeating a token, and its first token is paid
  with the previous ``last_logprobs``.
* One token per stream (typing, decoding) is a T = 1 call of the same graph, not the step graph: the same
  numbers whatever the cut, and measured faster than the step graph (default model, one thread: 214 vs
  264 us int8, 435 vs 527 us fp32).

Rows of a batch are independent streams of equal length. With row-wise numerics in the graph (fp32, and the
int8 files with calibrated activation scales that ``lnrnn export --quantize int8`` writes) a row's numbers do
not depend on the chunk size, on the other rows or on where a previous call stopped.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from lnrnn.contract import (  # document_array is re-exported: callers feed documents through the scorer
    MIN_SEQUENCE_TOKENS,
    SEQUENCE_INPUTS,
    SEQUENCE_OUTPUTS,
    document_array,
)

# Per call ONNX Runtime keeps [T, 3H] input projections and [T, 257] log-probs per layer in its arena: at
# 2x448 a 4096-token chunk peaked at 561 MiB for 4 concurrent scores, 512 at 129 MiB, at the same speed.
CHUNK_TOKENS = 512
Progress = Callable[[int], None]  # called with the number of tokens just fed


class GraphSession(Protocol):
    """What the scorer needs of an ``onnxruntime.InferenceSession``."""

    def run(self, output_names: Sequence[str], input_feed: dict[str, np.ndarray]) -> list[np.ndarray]: ...


def _no_checkpoint() -> None:
    return None


@dataclass(frozen=True)
class Fed:
    """What feeding tokens to B streams left: nats paid per stream, optionally per token, and where it ended.

    ``token_nats`` has one column per fed token; the first column is 0 when no ``last`` was given (nothing
    predicted the first token: it is BOS or the caller already paid for it).
    """

    nats: np.ndarray  # float64 [B]
    token_nats: np.ndarray | None  # float64 [B, n]
    last: np.ndarray  # float32 [B, V]: log-probs of the next token after the last one fed
    state: np.ndarray  # float32 [L, B, S]


@dataclass(frozen=True)
class Scored:
    """Result of scoring one byte string from the start of a document."""

    n_bytes: int
    nats: float
    byte_nats: np.ndarray | None = None  # float64 [n_bytes]
    last: np.ndarray | None = None  # float32 [V]: the next byte's log-probs after the text
    state: np.ndarray | None = None  # float32 [L, 1, S]


def byte_array(data: bytes) -> np.ndarray:
    """int64 [n]: the bytes of ``data`` as token ids (a continuation: no BOS)."""
    return np.frombuffer(data, dtype=np.uint8).astype(np.int64)


class Scorer:
    """Chunked scoring over a sequence graph that follows the artifact contract."""

    def __init__(
        self,
        sequence: GraphSession,
        initial_state: np.ndarray,
        *,
        chunk_tokens: int = CHUNK_TOKENS,
        checkpoint: Callable[[], None] = _no_checkpoint,
    ) -> None:
        """``initial_state`` is the learned [L, S] start state; ``checkpoint`` runs before every graph call
        (the server passes one that stops a call whose caller gave up)."""
        if chunk_tokens < 1:
            raise ValueError(f"chunk_tokens must be >= 1, got {chunk_tokens}")
        self.sequence_session = sequence
        self.initial = np.ascontiguousarray(initial_state, dtype=np.float32)  # [L, S]
        self.chunk_tokens = int(chunk_tokens)
        self.checkpoint = checkpoint

    def start_state(self, batch: int = 1) -> np.ndarray:
        """The initial state for ``batch`` streams: [L, B, S]."""
        return np.repeat(self.initial[:, None, :], batch, axis=1)

    # --- graph calls ------------------------------------------------------------------------------

    def sequence(self, tokens: np.ndarray, state: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """tokens int64 [B, T >= 1], state [L, B, S] -> token log-probs [B, T-1], last [B, V], state."""
        if tokens.ndim != 2 or tokens.shape[0] < 1 or tokens.shape[1] < MIN_SEQUENCE_TOKENS:
            raise ValueError(
                f"the sequence graph needs tokens [B >= 1, T >= {MIN_SEQUENCE_TOKENS}], got {tokens.shape}"
            )
        if state.ndim != 3 or state.shape[1] != tokens.shape[0]:
            raise ValueError(f"state must be [L, B, S] with B = {tokens.shape[0]}, got {state.shape}")
        self.checkpoint()
        feeds = dict(zip(SEQUENCE_INPUTS, (tokens.astype(np.int64, copy=False), _f32(state)), strict=True))
        token_lp, last, state_out = self.sequence_session.run(SEQUENCE_OUTPUTS, feeds)
        return token_lp, last, state_out

    def next(self, tokens: np.ndarray, state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One token per stream: tokens int64 [B], state [L, B, S] -> next-token log-probs [B, V], state."""
        if tokens.ndim != 1:
            raise ValueError(f"next needs tokens [B], got shape {tokens.shape}")
        fed = self.feed(tokens[:, None], state)
        return fed.last, fed.state

    # --- scoring ----------------------------------------------------------------------------------

    def feed(
        self,
        tokens: np.ndarray,
        state: np.ndarray,
        last: np.ndarray | None = None,
        *,
        per_token: bool = False,
        progress: Progress | None = None,
    ) -> Fed:
        """Feed ``tokens`` (int64 [n] or [B, n], n >= 1) to B streams from ``state`` [L, B, S].

        Every token after the first is paid for; the first too when ``last`` ([V] or [B, V], the log-probs
        before it) is given. Chunks of ``chunk_tokens``, the last one as long as what is left.
        """
        rows, prev = feed_rows(tokens, state, last)
        batch, n = rows.shape
        pieces: list[np.ndarray] = []
        total = np.zeros(batch, dtype=np.float64)
        column = np.arange(batch)
        for start in range(0, n, self.chunk_tokens):
            chunk = rows[:, start : start + self.chunk_tokens]
            first = np.zeros(batch) if prev is None else -prev[column, chunk[:, 0]].astype(np.float64)
            token_lp, prev, state = self.sequence(chunk, state)
            nats = np.concatenate([first[:, None], -token_lp.astype(np.float64)], axis=1)
            total += nats.sum(axis=1)
            if per_token:
                pieces.append(nats)
            if progress is not None:
                progress(chunk.shape[1] * batch)
        assert prev is not None
        return Fed(total, np.concatenate(pieces, axis=1) if per_token else None, prev, state)

    def feed_text(self, data: bytes, state: np.ndarray | None = None, last: np.ndarray | None = None) -> Fed:
        """``data`` as a new document (``state`` None: BOS, then the bytes, from the initial state) or as the
        continuation of one whose ``state`` [L, 1, S] and next-byte log-probs ``last`` are given."""
        if state is None:
            return self.feed(document_array(data), self.start_state())
        return self.feed(byte_array(data), state, last)

    def score(self, data: bytes, *, per_byte: bool = False, progress: Progress | None = None) -> Scored:
        """Nats of ``data`` (n >= 1 bytes) as the start of a document: [BOS, b0, ..., b(n-1)]."""
        if not data:
            raise ValueError("nothing to score: the text is empty")
        fed = self.feed(document_array(data), self.start_state(), per_token=per_byte, progress=progress)
        byte_nats = None if fed.token_nats is None else fed.token_nats[0, 1:]  # column 0 is BOS: unpaid
        return Scored(len(data), float(fed.nats[0]), byte_nats, fed.last[0], fed.state)

    def score_many(self, texts: Sequence[bytes], *, per_byte: bool = False) -> list[Scored]:
        """Each text scored on its own; texts of equal length share graph calls (rows of one batch)."""
        results: dict[int, Scored] = {}
        by_length: dict[int, list[int]] = {}
        for i, data in enumerate(texts):
            if not data:
                raise ValueError(f"nothing to score: text {i} is empty")
            by_length.setdefault(len(data), []).append(i)
        for length, members in by_length.items():
            rows = np.stack([document_array(texts[i]) for i in members])
            fed = self.feed(rows, self.start_state(len(members)), per_token=per_byte)
            for row, i in enumerate(members):
                byte_nats = None if fed.token_nats is None else fed.token_nats[row, 1:]
                state = fed.state[:, row : row + 1]
                results[i] = Scored(length, float(fed.nats[row]), byte_nats, fed.last[row], state)
        return [results[i] for i in range(len(texts))]


def feed_rows(
    tokens: np.ndarray, state: np.ndarray, last: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray | None]:
    """``feed``'s arguments checked and shaped: tokens int64 [B, n >= 1], ``last`` [B, V] or None."""
    rows = np.atleast_2d(np.asarray(tokens, dtype=np.int64))
    if rows.shape[1] < 1:
        raise ValueError("nothing to feed: at least one token is needed (T >= 1)")
    if state.ndim != 3 or state.shape[1] != rows.shape[0]:
        raise ValueError(f"state must be [L, B, S] with B = {rows.shape[0]}, got {state.shape}")
    return rows, None if last is None else np.atleast_2d(last)


def _f32(state: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(state, dtype=np.float32)
