"""PyTorch reference values for verify: the model's own forward, under ``torch.inference_mode``."""

from __future__ import annotations

import numpy as np
import torch

from lnrnn.train.evaluate import evaluate_bytes
from lnrnn.train.model import ByteLM


def sequence_reference(
    model: ByteLM, tokens: np.ndarray, state: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What ``sequence.onnx`` must return: token_logprobs [B, T-1], last_logprobs [B, V], state_out."""
    with torch.inference_mode():
        ids = torch.from_numpy(tokens)
        logits, state_out = model(ids, torch.from_numpy(state))
        logprobs = torch.log_softmax(logits, dim=-1)
        token_lp = logprobs[:, :-1].gather(2, ids[:, 1:, None]).squeeze(-1)
        return token_lp.numpy(), logprobs[:, -1].numpy(), state_out.numpy()


def step_reference(model: ByteLM, tokens: np.ndarray, state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``model`` fed one token at a time: log-probs [T, B, V] and states [T, L, B, S] after each step."""
    logprobs, states = [], []
    with torch.inference_mode():
        s = torch.from_numpy(state)
        for t in range(tokens.shape[1]):
            logits, s = model(torch.from_numpy(tokens[:, t : t + 1]), s)
            logprobs.append(torch.log_softmax(logits[:, 0], dim=-1))
            states.append(s)
        return torch.stack(logprobs).numpy(), torch.stack(states).numpy()


def document_nats(model: ByteLM, data: bytes) -> float:
    """-log p(data) in nats, [BOS, b0..] from the initial state (the train stage's exact evaluation)."""
    nats, n_bytes = evaluate_bytes(model, data)
    if n_bytes != len(data):
        raise ValueError(f"evaluate_bytes scored {n_bytes} bytes of {len(data)}")
    return float(nats)
