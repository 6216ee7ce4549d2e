"""Tiny random models: the one exported once per test session (``TinyModel``) and the export tests' own."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from lnrnn.export.api import export_model
from lnrnn.export.verify.checks import default_verify_data
from lnrnn.train.model import ByteLM, ModelConfig

VERIFY_DATA = "verify: héllo wörld, 日本語 ok ".encode() * 3


@dataclass(frozen=True)
class TinyModel:
    dir: Path
    model: ByteLM  # the PyTorch model the ONNX files came from (the reference)

    def bits(self, data: bytes) -> float:
        """-log2 p(data) scored as [BOS, b0, ..., b(n-1)] by PyTorch."""
        return float(self.byte_bits(data).sum())

    def byte_bits(self, data: bytes) -> np.ndarray:
        ids = torch.tensor([[256, *data]])
        with torch.no_grad():
            logp = torch.log_softmax(self.model(ids)[0][0].double(), -1)
        return (-logp[:-1].gather(1, ids[0, 1:, None])[:, 0] / math.log(2)).numpy()


def export_tiny(out: Path) -> TinyModel:
    """A 2x32 LN-GRU with a non-zero initial state (so using it is tested), exported to ``out``."""
    torch.manual_seed(0)
    model = ByteLM(ModelConfig(cell="gru", hidden=32, layers=2))
    with torch.no_grad():
        model.initial_state.normal_(0.0, 0.3)
    export_model(model, out, verify_data=VERIFY_DATA, train_data="random init (tests)")
    return TinyModel(out, model.eval())


def export_tiny_int8(out: Path) -> Path:
    """A 2x48 GRU exported with its int8 pair (kept: the delta is within the bound) to ``out``."""
    torch.manual_seed(1)
    report = export_model(
        ByteLM(ModelConfig(cell="gru", hidden=48, layers=2)), out, quantize="int8", verify_data=VERIFY_DATA
    )
    assert report.int8 is not None and report.int8["kept"]
    return out


VERIFY_BYTES = 1200  # the CLI default is 10 kB; the tests use a shorter slice to stay fast
# Random LN-LSTMs are chaotic: fp32 vs fp64 PyTorch already differ by ~1e-1 per log-prob after ~400 steps
# (measured on these models), so their free-running BPC parity uses T <= 50.
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
