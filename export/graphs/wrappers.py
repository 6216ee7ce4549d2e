"""Tiny torch modules that expose pieces of a ``ByteLM`` for ``torch.onnx.export``.

Each wrapper only calls the model's own modules and methods (``forward``, ``cell.input_path``,
``cell.step``, ``cell.recurrent_weight``, ``cell.output``, ``head``): the equations live in ``lnrnn.train``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from lnrnn.train.cells import RecurrentCell
from lnrnn.train.model import ByteLM


class ModelStep(nn.Module):
    """One whole-model time step: token (B,), state (L, B, S) -> log-probs (B, V), state (L, B, S)."""

    def __init__(self, model: ByteLM) -> None:
        super().__init__()
        self.model = model

    def forward(self, token: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        logits, state_out = self.model(token.unsqueeze(1), state)  # (B, 1, V), (L, B, S)
        return torch.log_softmax(logits[:, 0], dim=-1), state_out


class CellStep(nn.Module):
    """The recurrent part of one layer: state (B, S), input path (B, G) -> state (B, S), output (B, H)."""

    def __init__(self, cell: RecurrentCell) -> None:
        super().__init__()
        self.cell = cell

    def forward(self, state: Tensor, xp: Tensor) -> tuple[Tensor, Tensor]:
        new = self.cell.step(xp, state, self.cell.recurrent_weight())
        return new, self.cell.output(new)


class InputPath(nn.Module):
    """``cell.input_path`` over a whole sequence: (B, T, E) -> (B, T, G)."""

    def __init__(self, cell: RecurrentCell) -> None:
        super().__init__()
        self.cell = cell

    def forward(self, x: Tensor) -> Tensor:
        return self.cell.input_path(x)


class SequenceHead(nn.Module):
    """Layer outputs (B, T, H) each, tokens (B, T) -> token log-probs (B, T-1), last log-probs (B, V).

    ``model.top_output`` (the top layer, or the sum with ``sum_layers``), then ``model.head``.
    """

    def __init__(self, model: ByteLM) -> None:
        super().__init__()
        self.model = model

    def forward(self, tokens: Tensor, *outputs: Tensor) -> tuple[Tensor, Tensor]:
        top = self.model.top_output(outputs)
        logprobs = torch.log_softmax(self.model.head(top), dim=-1)  # (B, T, V)
        token_lp = logprobs[:, :-1].gather(2, tokens[:, 1:].unsqueeze(-1)).squeeze(-1)  # (B, T-1)
        return token_lp, logprobs[:, -1]
