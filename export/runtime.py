"""ONNX Runtime helpers used by verify and quantize (numpy only, no torch).

Guard rails live here: ORT's ``Scan`` over an empty sequence kills the process with SIGFPE, so empty input
and T < 2 are rejected in Python before ORT sees them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from lnrnn.contract import MIN_SEQUENCE_TOKENS, SEQUENCE_INPUTS, STEP_INPUTS, document_tokens

PROVIDERS = ["CPUExecutionProvider"]
SCORE_CHUNK = 4096  # tokens per sequence-graph call when scoring a document


def open_session(model: Path | bytes) -> ort.InferenceSession:
    """A CPU session; all graph optimisations on (the ORT default)."""
    source = str(model) if isinstance(model, Path) else model
    return ort.InferenceSession(source, providers=PROVIDERS)


def run_sequence(
    sess: ort.InferenceSession, tokens: np.ndarray, state: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """tokens [B, T] (T >= 2), state [L, B, S] -> token_logprobs [B, T-1], last_logprobs [B, V], state_out."""
    if tokens.ndim != 2 or tokens.shape[0] < 1 or tokens.shape[1] < MIN_SEQUENCE_TOKENS:
        raise ValueError(
            f"the sequence graph needs tokens [B >= 1, T >= {MIN_SEQUENCE_TOKENS}], got {tokens.shape}"
        )
    names = dict(zip(SEQUENCE_INPUTS, (tokens.astype(np.int64), state.astype(np.float32)), strict=True))
    token_lp, last_lp, state_out = sess.run(None, names)
    return token_lp, last_lp, state_out


def run_step(
    sess: ort.InferenceSession, token: np.ndarray, state: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """token [B], state [L, B, S] -> logprobs [B, V], state_out [L, B, S]."""
    if token.ndim != 1 or token.shape[0] < 1:
        raise ValueError(f"the step graph needs token [B >= 1], got {token.shape}")
    names = dict(zip(STEP_INPUTS, (token.astype(np.int64), state.astype(np.float32)), strict=True))
    logprobs, state_out = sess.run(None, names)
    return logprobs, state_out


def document_nats(
    sess: ort.InferenceSession, initial_state: np.ndarray, data: bytes, chunk: int = SCORE_CHUNK
) -> float:
    """-log p(data) in nats: [BOS, b0..] from ``initial_state`` [L, S], in chunks of ``chunk`` tokens.

    Each chunk after the first starts with the next unscored byte, paid with the previous ``last_logprobs``.
    """
    if not data:
        raise ValueError("cannot score an empty document")
    if chunk < MIN_SEQUENCE_TOKENS:
        raise ValueError(f"chunk must be >= {MIN_SEQUENCE_TOKENS}, got {chunk}")
    tokens = np.asarray(document_tokens(data), dtype=np.int64)
    state = initial_state.astype(np.float32)[:, None, :]  # (L, 1, S)
    nats, pos, last = 0.0, 0, None
    while pos < len(tokens):
        piece = tokens[pos : pos + chunk]
        if last is not None:
            nats -= float(last[0, piece[0]])
        if len(piece) < MIN_SEQUENCE_TOKENS:  # one final byte: paid above, nothing left to read
            break
        token_lp, last, state = run_sequence(sess, piece[None, :], state)
        nats -= float(token_lp.astype(np.float64).sum())
        pos += len(piece)
    return nats
