"""ONNX Runtime sessions for verify and quantize (numpy only, no torch). Scoring goes through
:class:`lnrnn.scorer.Scorer`, the same scorer ``lnrnn score`` and the server use."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from lnrnn.contract import STEP_INPUTS
from lnrnn.scorer import Scorer

PROVIDERS = ["CPUExecutionProvider"]


def open_session(model: Path | bytes) -> ort.InferenceSession:
    """A CPU session; all graph optimisations on (the ORT default)."""
    source = str(model) if isinstance(model, Path) else model
    return ort.InferenceSession(source, providers=PROVIDERS)


def scorer(sequence: Path | ort.InferenceSession, initial_state: np.ndarray) -> Scorer:
    """The scorer over a sequence graph, from the [L, S] initial state."""
    sess = open_session(sequence) if isinstance(sequence, Path) else sequence
    return Scorer(sess, initial_state)


def document_nats(sequence: Path | ort.InferenceSession, initial_state: np.ndarray, data: bytes) -> float:
    """-log p(data) in nats, [BOS, b0, ...] from ``initial_state`` [L, S] (raises on empty data)."""
    return scorer(sequence, initial_state).score(data).nats


def run_step(
    sess: ort.InferenceSession, token: np.ndarray, state: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The step graph once: token [B], state [L, B, S] -> logprobs [B, V], state_out [L, B, S]."""
    if token.ndim != 1 or token.shape[0] < 1:
        raise ValueError(f"the step graph needs token [B >= 1], got {token.shape}")
    names = dict(zip(STEP_INPUTS, (token.astype(np.int64), state.astype(np.float32)), strict=True))
    logprobs, state_out = sess.run(None, names)
    return logprobs, state_out
