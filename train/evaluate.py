"""Exact evaluation: a text is one document ``[BOS, b0, ..., b(n-1)]`` scored from the initial state.

The state is carried across chunks (batch 1), so chunking changes nothing but memory; nats are summed in
float64 over every byte, the first included, and BPC comes only from ``lnrnn.bpc.bits_per_byte``.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from lnrnn.bpc import bits_per_byte
from lnrnn.contract import document_array
from lnrnn.train.model import ByteLM

DEFAULT_CHUNK = 4096


def document_ids(data: bytes | np.ndarray) -> torch.Tensor:
    """``[BOS, b0, ..., b(n-1)]`` as int64 (1, n + 1) (``contract.document_array``, no list of bytes)."""
    return torch.from_numpy(document_array(data)).unsqueeze(0)


@torch.no_grad()
def evaluate_bytes(model: ByteLM, data: bytes | np.ndarray, chunk: int = DEFAULT_CHUNK) -> tuple[float, int]:
    """Total negative log-likelihood in nats of ``data`` and the number of bytes scored (= ``len(data)``)."""
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    module: ByteLM = getattr(model, "module", model)  # unwrap DistributedDataParallel
    was_training = module.training
    module.eval()
    device = module.output_bias.device
    ids = document_ids(data)
    n = ids.shape[1] - 1
    total = 0.0
    state = None
    try:
        for start in range(0, n, chunk):
            end = min(start + chunk, n)
            x = ids[:, start:end].to(device)  # (1, T)
            y = ids[:, start + 1 : end + 1].to(device)  # (1, T)
            logits, state = module(x, state)
            total += F.cross_entropy(logits[0].double(), y[0], reduction="sum").item()  # float64 sum
    finally:
        module.train(was_training)
    return total, n


def evaluate_bpc(model: ByteLM, data: bytes | np.ndarray, chunk: int = DEFAULT_CHUNK) -> float:
    nats, n = evaluate_bytes(model, data, chunk)
    return bits_per_byte(nats, n)
