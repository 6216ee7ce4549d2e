"""A scorer that knows only the artifact contract: plain onnxruntime + numpy + json, no lnrnn import.

Proof that the ONNX files are enough to score text: config and initial state come from the files'
metadata, tokens are [BOS, b0, ..., b(n-1)], long texts are chunked with no byte scored twice.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import onnxruntime as ort


def load(model_dir: Path, name: str = "sequence.onnx") -> tuple[ort.InferenceSession, dict, np.ndarray]:
    sess = ort.InferenceSession(str(model_dir / name), providers=["CPUExecutionProvider"])
    props = sess.get_modelmeta().custom_metadata_map
    config = json.loads(props["lnrnn.config"])
    initial = np.asarray(json.loads(props["lnrnn.initial_state"]), dtype=np.float32)  # [L, S]
    return sess, config, initial


def score_nats(model_dir: Path, data: bytes, chunk: int) -> float:
    """-log p(data) in nats with calls of at most ``chunk`` tokens (chunk >= 2)."""
    assert data and chunk >= 2
    sess, config, initial = load(model_dir)
    tokens = np.array([config["bos_id"], *data], dtype=np.int64)
    state = initial[:, None, :]  # [L, 1, S]
    nats, pos, last = 0.0, 0, None
    while pos < len(tokens):
        piece = tokens[pos : pos + chunk]
        if last is not None:
            nats -= float(last[0, piece[0]])  # first byte of this call: paid by the previous call
        if len(piece) < 2:
            break
        token_lp, last, state = sess.run(None, {"tokens": piece[None, :], "state": state})
        nats -= float(token_lp.astype(np.float64).sum())
        pos += len(piece)
    return nats


def score_bpc(model_dir: Path, data: bytes, chunk: int) -> float:
    return score_nats(model_dir, data, chunk) / (math.log(2) * len(data))
