"""Helpers for the serve tests (a uniquely named module: every test folder has its own conftest)."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from starlette.exceptions import StarletteDeprecationWarning

with warnings.catch_warnings():  # starlette 1.10 prefers httpx2; this is the only warning silenced
    warnings.filterwarnings(
        "ignore", "Using `httpx` with `starlette.testclient`", StarletteDeprecationWarning
    )
    from fastapi.testclient import TestClient  # noqa: F401  (re-exported for the tests)

from server_process import free_port, server  # noqa: F401  (re-exported)

from lnrnn.serve.config import Settings
from lnrnn.train.model import ByteLM

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


def settings_for(model_dir: Path | str, **kw: object) -> Settings:
    return Settings(model_dir=Path(model_dir), **kw)  # type: ignore[arg-type]
