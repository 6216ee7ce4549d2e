"""Helpers for the export tests: a tiny random model whose norms are not at their identity init."""

from __future__ import annotations

import torch

from lnrnn.export.verify import default_verify_data
from lnrnn.train.model import ByteLM, ModelConfig

VERIFY_BYTES = 1200  # the CLI default is 10 kB; the tests use a shorter slice to stay fast
# Random LN-LSTMs are chaotic: fp32 vs fp64 PyTorch already differ by ~1e-1 per log-prob after ~400 steps
# (feasibility.md; re-measured on these models), so their free-running BPC parity uses T <= 50.
LSTM_VERIFY_BYTES = 48


def verify_text_for(cell: str) -> bytes:
    return default_verify_data()[: LSTM_VERIFY_BYTES if cell == "lstm" else VERIFY_BYTES]


def tiny_model(
    cell: str = "gru", norm: str = "layer", layers: int = 1, hidden: int = 24, **kw: object
) -> ByteLM:
    """A seeded random ``ByteLM`` whose norms are not at their identity init (so they are exercised)."""
    torch.manual_seed(1234)
    model = ByteLM(ModelConfig(cell=cell, norm=norm, layers=layers, hidden=hidden, **kw))  # type: ignore[arg-type]
    with torch.no_grad():
        model.initial_state.normal_(0.0, 0.1)
        model.output_bias.normal_(0.0, 0.5)
        for module in model.modules():
            if isinstance(module, torch.nn.LayerNorm):
                module.weight.uniform_(0.8, 1.2)
                module.bias.normal_(0.0, 0.1)
            if isinstance(module, torch.nn.BatchNorm1d):
                module.running_mean.normal_(0.0, 0.3)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.8, 1.2)
                module.bias.normal_(0.0, 0.1)
    return model.eval()
