"""Recurrent cells: GRU, LSTM and MGU, each plain, layer-normalised or batch-normalised on the input path.

Every cell is split in two so that the input path can be computed for all T at once (one batched matmul,
"hoisted" out of the time loop) and only the recurrent part runs step by step:

* ``input_path(x)``: ``norm_x(W_x x)`` for any leading shape ``[..., E] -> [..., G]``;
* ``step(xp_t, state, w_hh)``: one time step ``[B, G], [B, S] -> [B, S]``.

The exporter reuses exactly these two methods, so the equations live here once.

State layout: ``S = H`` for GRU and MGU; ``S = 2H`` for LSTM, ``h`` then ``c``.
Gate orders follow PyTorch (GRU ``r, z, n``; LSTM ``i, f, g, o``) so that plain cells load
``torch.nn.GRU`` / ``torch.nn.LSTM`` weights unchanged.

Layer norm follows Ba, Kiros & Hinton 2016 (supplement eqs. 20-22 for the LSTM, 26-28 for the GRU):
the input projection and the recurrent projection are normalised separately, each with its own gain and
bias. Batch norm follows Laurent et al. 2015: only the input-to-hidden projection is normalised, with
sequence-wise statistics (over batch and time) in training and running averages at evaluation.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lnrnn.train.regularizers import weight_drop

CELLS = ("gru", "lstm", "mgu")
NORMS = ("layer", "none", "batch")
INITS = ("xavier", "orthogonal", "variance_scaling")


class GroupedLayerNorm(nn.Module):
    """One ``nn.LayerNorm`` per slice of the last axis (e.g. the joint [r; z] slice and the n slice).

    Each slice exports as its own ONNX ``LayerNormalization`` node.
    """

    def __init__(self, sizes: tuple[int, ...]) -> None:
        super().__init__()
        self.sizes = sizes
        self.norms = nn.ModuleList(nn.LayerNorm(size) for size in sizes)

    def forward(self, x: Tensor) -> Tensor:
        if len(self.sizes) == 1:
            return self.norms[0](x)
        parts = x.split(self.sizes, dim=-1)
        return torch.cat([norm(part) for norm, part in zip(self.norms, parts, strict=True)], dim=-1)


class SequenceBatchNorm(nn.Module):
    """Batch norm over every leading axis (batch and time): Laurent et al. 2015's sequence-wise BN."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm1d(size)

    def forward(self, x: Tensor) -> Tensor:
        return self.bn(x.reshape(-1, x.shape[-1])).reshape(x.shape)


class RecurrentCell(nn.Module):
    """Shared machinery; subclasses set the gate groups and implement ``step``."""

    gate_multiple: int = 3  # G = gate_multiple * H
    norm_groups: tuple[int, ...] = (3,)  # LN slices of G, in units of H

    def __init__(self, input_size: int, hidden: int, norm: str, weight_drop: float = 0.0) -> None:
        super().__init__()
        if norm not in NORMS:
            raise ValueError(f"unknown norm {norm!r}; expected one of {NORMS}")
        self.input_size, self.hidden, self.norm, self.weight_drop = input_size, hidden, norm, weight_drop
        gates = self.gate_multiple * hidden
        groups = tuple(k * hidden for k in self.norm_groups)
        # With a normalisation on a path, its bias is the norm's own beta, so the Linear has none.
        self.w_ih = nn.Linear(input_size, gates, bias=norm == "none")
        self.w_hh = nn.Linear(hidden, gates, bias=norm != "layer")
        self.norm_x: nn.Module = (
            GroupedLayerNorm(groups)
            if norm == "layer"
            else SequenceBatchNorm(gates)
            if norm == "batch"
            else nn.Identity()
        )
        self.norm_h: nn.Module = GroupedLayerNorm(groups) if norm == "layer" else nn.Identity()

    @property
    def state_size(self) -> int:
        return self.hidden

    def input_path(self, x: Tensor) -> Tensor:
        """``norm_x(W_x x)``: depends only on the input, so it is computed for all T at once."""
        return self.norm_x(self.w_ih(x))  # (..., G)

    def recurrent_weight(self) -> Tensor:
        """``W_hh``, with DropConnect (AWD-LSTM's weight drop) while training."""
        return weight_drop(self.w_hh.weight, self.weight_drop, self.training)

    def recurrent_path(self, h: Tensor, w_hh: Tensor) -> Tensor:
        return self.norm_h(F.linear(h, w_hh, self.w_hh.bias))  # (B, G)

    def output(self, state: Tensor) -> Tensor:
        """The layer output ``h`` from the state."""
        return state[..., : self.hidden]

    def step(self, xp: Tensor, state: Tensor, w_hh: Tensor) -> Tensor:
        raise NotImplementedError

    def gate_bias(self) -> Tensor:
        """The input-path bias parameter, edited in place by ``init_gate_bias``.

        Linear bias (plain), BN beta (batch), or the first LN slice's beta (layer); that slice holds the
        GRU reset gate and the LSTM forget gate.
        """
        norm_x = self.norm_x
        if isinstance(norm_x, GroupedLayerNorm):
            first = norm_x.norms[0]
            assert isinstance(first, nn.LayerNorm)
            return first.bias
        if isinstance(norm_x, SequenceBatchNorm):
            return norm_x.bn.bias
        return self.w_ih.bias

    def reset_parameters(self, init: str) -> None:
        """Weights by ``init`` (Hafner compares these three); biases zero; gate biases per subclass."""
        if init not in INITS:
            raise ValueError(f"unknown init {init!r}; expected one of {INITS}")
        for linear in (self.w_ih, self.w_hh):
            weight = linear.weight
            if init == "xavier":
                nn.init.xavier_uniform_(weight)
            elif init == "orthogonal":
                for block in weight.data.split(self.hidden, dim=0):
                    nn.init.orthogonal_(block)
            else:  # variance scaling (TF default: scale 1, fan_in, truncated normal)
                std = math.sqrt(1.0 / weight.shape[1]) / 0.87962566103423978
                nn.init.trunc_normal_(weight, std=std, a=-2 * std, b=2 * std)
            if linear.bias is not None:
                nn.init.zeros_(linear.bias)
        with torch.no_grad():
            self.init_gate_bias(self.gate_bias())

    def init_gate_bias(self, bias: Tensor) -> None:
        """Subclasses set gate-specific bias values in place."""


class GRUCell(RecurrentCell):
    """GRU, PyTorch convention (reset applied after the recurrent matmul, "linear_before_reset").

    Plain:  r, z = sigma(W_r x + U_r h + b), n = tanh(W_n x + b_in + r * (U_n h + b_hn)), h' = (1-z) n + z h.
    Layer norm (Ba et al. 2016, eqs. 26-28): [r; z] = sigma(LN(W_rz x) + LN(U_rz h)),
    n = tanh(LN(W_n x) + r * LN(U_n h)): four LNs per layer, the joint [r; z] slice on each path.
    """

    gate_multiple = 3
    norm_groups = (2, 1)

    def step(self, xp: Tensor, state: Tensor, w_hh: Tensor) -> Tensor:
        hp = self.recurrent_path(state, w_hh)
        xr, xz, xn = xp.chunk(3, dim=-1)
        hr, hz, hn = hp.chunk(3, dim=-1)
        r = torch.sigmoid(xr + hr)
        z = torch.sigmoid(xz + hz)
        n = torch.tanh(xn + r * hn)
        return (1.0 - z) * n + z * state  # (B, H)

    def init_gate_bias(self, bias: Tensor) -> None:
        bias[: self.hidden] = -1.0  # reset gate starts mostly closed


class MGUCell(RecurrentCell):
    """Minimal gated unit (Zhou et al. 2016), normalised like the GRU, reset-after-matmul form.

    f = sigma(N(W_f x) + N(U_f h)), n = tanh(N(W_n x) + f * N(U_n h)), h' = (1-f) h + f n,
    where N is LN (one per slice and path: four per layer), or identity plus bias for plain cells.
    """

    gate_multiple = 2
    norm_groups = (1, 1)

    def step(self, xp: Tensor, state: Tensor, w_hh: Tensor) -> Tensor:
        hp = self.recurrent_path(state, w_hh)
        xf, xn = xp.chunk(2, dim=-1)
        hf, hn = hp.chunk(2, dim=-1)
        f = torch.sigmoid(xf + hf)
        n = torch.tanh(xn + f * hn)
        return (1.0 - f) * state + f * n  # (B, H)


class LSTMCell(RecurrentCell):
    """LSTM, PyTorch gate order i, f, g, o.

    Plain: c' = sigma(f) c + sigma(i) tanh(g), h' = sigma(o) tanh(c').
    Layer norm (Ba et al. 2016, eqs. 20-22): gates = LN(W x) + LN(U h) over all 4H,
    h' = sigma(o) tanh(LN(c')); the cell state c is carried un-normalised. Three LNs per layer.
    """

    gate_multiple = 4
    norm_groups = (4,)

    def __init__(self, input_size: int, hidden: int, norm: str, weight_drop: float = 0.0) -> None:
        super().__init__(input_size, hidden, norm, weight_drop)
        self.norm_c: nn.Module = nn.LayerNorm(hidden) if norm == "layer" else nn.Identity()

    @property
    def state_size(self) -> int:
        return 2 * self.hidden

    def step(self, xp: Tensor, state: Tensor, w_hh: Tensor) -> Tensor:
        h, c = state.chunk(2, dim=-1)
        gates = xp + self.recurrent_path(h, w_hh)
        i, f, g, o = gates.chunk(4, dim=-1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(self.norm_c(c))
        return torch.cat([h, c], dim=-1)  # (B, 2H)

    def init_gate_bias(self, bias: Tensor) -> None:
        bias[self.hidden : 2 * self.hidden] = 1.0  # forget gate starts open


def make_cell(cell: str, input_size: int, hidden: int, norm: str, weight_drop: float = 0.0) -> RecurrentCell:
    classes: dict[str, type[RecurrentCell]] = {"gru": GRUCell, "lstm": LSTMCell, "mgu": MGUCell}
    if cell not in classes:
        raise ValueError(f"unknown cell {cell!r}; expected one of {CELLS}")
    return classes[cell](input_size, hidden, norm, weight_drop)


def run_layer(cell: RecurrentCell, x: Tensor, state: Tensor, hoist: bool = True) -> tuple[Tensor, Tensor]:
    """Run one layer over a sequence: ``x`` (B, T, E), ``state`` (B, S) -> outputs (B, T, H), final state.

    ``hoist=True`` computes the input path for all T as one batched matmul before the loop; ``False`` is
    the naive per-step version, kept for the training benchmark (with batch norm its statistics are then
    per step instead of per sequence). The loop iterates with ``unbind``: slicing ``x[:, t]`` of a large
    autograd tensor makes every slice's backward write a full-size gradient.
    """
    w_hh = cell.recurrent_weight()
    inputs = cell.input_path(x).unbind(1) if hoist else (cell.input_path(x_t) for x_t in x.unbind(1))
    outputs = []
    for xp in inputs:
        state = cell.step(xp, state, w_hh)
        outputs.append(cell.output(state))
    return torch.stack(outputs, dim=1), state  # (B, T, H), (B, S)
