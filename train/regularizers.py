"""The AWD-LSTM regularisers (Merity et al. 2017/2018), in one place, and the training loss that adds them.

* dropout on the graph: ``embedding_dropout`` (whole byte embeddings, "dropoute"), ``locked_dropout`` (one
  mask per sequence: "dropouti", "dropouth", "dropout"), ``weight_drop`` (DropConnect on the
  hidden-to-hidden weights, "wdrop");
* penalties on the loss: ``activation_penalty`` (AR, on the dropped top output) and
  ``temporal_activation_penalty`` (TAR, on differences of the raw top output over time).

Every one of them is inert in evaluation: the dropouts return their input, and the penalties enter only the
training loss of ``LossModule``, never the logged NLL or any evaluation.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch.nn.functional as F
from torch import Tensor, nn

if TYPE_CHECKING:
    from lnrnn.train.model import ByteLM


def locked_dropout(x: Tensor, p: float, training: bool) -> Tensor:
    """Variational dropout (Gal & Ghahramani 2016): one mask per sequence, shared over time. x: (B, T, D)."""
    if not training or p == 0.0:
        return x
    mask = x.new_empty(x.shape[0], 1, x.shape[2]).bernoulli_(1 - p) / (1 - p)
    return x * mask


def embedding_dropout(weight: Tensor, p: float, training: bool) -> Tensor:
    """AWD-LSTM's embedding dropout: drop whole rows (bytes) of the embedding matrix."""
    if not training or p == 0.0:
        return weight
    mask = weight.new_empty(weight.shape[0], 1).bernoulli_(1 - p) / (1 - p)
    return weight * mask


def weight_drop(weight: Tensor, p: float, training: bool) -> Tensor:
    """AWD-LSTM's weight drop: DropConnect on a hidden-to-hidden matrix, one mask per forward pass."""
    return F.dropout(weight, p, training)


def activation_penalty(top_dropped: Tensor) -> Tensor:
    """AR: ``mean((m * h)^2)`` over the top output after dropout (B, T, H)."""
    return top_dropped.float().pow(2).mean()


def temporal_activation_penalty(top_raw: Tensor) -> Tensor:
    """TAR: ``mean((h_t - h_{t-1})^2)`` over the top output before dropout (B, T, H)."""
    return (top_raw[:, 1:] - top_raw[:, :-1]).float().pow(2).mean()


class LossModule(nn.Module):
    """Mean cross-entropy + ``ar`` x AR + ``tar`` x TAR (Merity et al. 2017).

    A module of its own so that DistributedDataParallel wraps the whole loss computation.
    """

    def __init__(self, model: ByteLM, ar: float, tar: float) -> None:
        super().__init__()
        self.model, self.ar, self.tar = model, ar, tar

    def forward(self, x: Tensor, y: Tensor, state: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
        """Tokens and targets (B, T), carried state or None -> (loss, NLL without penalties, new state)."""
        out = self.model.run(x, state)
        nll = F.cross_entropy(out.logits.flatten(0, 1).float(), y.flatten())  # mean over tokens
        loss = nll
        if self.ar:
            loss = loss + self.ar * activation_penalty(out.top_dropped)
        if self.tar:
            loss = loss + self.tar * temporal_activation_penalty(out.top_raw)
        return loss, nll.detach(), out.state
