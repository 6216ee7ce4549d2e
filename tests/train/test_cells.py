"""Cells against independent transcriptions of their equations, and plain cells against torch.nn."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from lnrnn.train.cells import make_cell, run_layer

B, T, E, H = 3, 6, 5, 4


def ln(x: Tensor, gain: Tensor, bias: Tensor, eps: float = 1e-5) -> Tensor:
    """Ba et al. 2016 eq. 4: (a - mu) / sigma over the units, then gain and bias."""
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + eps) * gain + bias


def randomise(module: torch.nn.Module, seed: int) -> None:
    """Random values everywhere (LN gains and biases too), so every term of the equations matters."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)


def inputs(seed: int = 0, state: int = H) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, T, E, generator=g), torch.randn(B, state, generator=g)


@pytest.mark.parametrize("hoist", [True, False])
def test_ln_gru_matches_paper_equations(hoist: bool) -> None:
    cell = make_cell("gru", E, H, "layer")
    randomise(cell, 1)
    x, h = inputs()
    wx, uh = cell.w_ih.weight, cell.w_hh.weight
    nx, nh = cell.norm_x.norms, cell.norm_h.norms
    outs = []
    for t in range(T):
        # Ba et al. 2016 supplement eqs. 26-28 (PyTorch's z convention: z keeps the old state).
        ax_rz = ln(x[:, t] @ wx[: 2 * H].T, nx[0].weight, nx[0].bias)
        ah_rz = ln(h @ uh[: 2 * H].T, nh[0].weight, nh[0].bias)
        r, z = torch.sigmoid(ax_rz + ah_rz).split(H, dim=-1)
        n = torch.tanh(
            ln(x[:, t] @ wx[2 * H :].T, nx[1].weight, nx[1].bias)
            + r * ln(h @ uh[2 * H :].T, nh[1].weight, nh[1].bias)
        )
        h = (1 - z) * n + z * h
        outs.append(h)
    got, final = run_layer(cell, x, inputs()[1], hoist=hoist)
    torch.testing.assert_close(got, torch.stack(outs, 1), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(final, h, atol=1e-5, rtol=1e-5)


def test_ln_lstm_matches_paper_equations() -> None:
    cell = make_cell("lstm", E, H, "layer")
    randomise(cell, 2)
    x, s = inputs(state=2 * H)
    h, c = s[:, :H], s[:, H:]
    wx, uh = cell.w_ih.weight, cell.w_hh.weight
    outs = []
    for t in range(T):
        # Ba et al. 2016 supplement eqs. 20-22: gates = LN(W_h h) + LN(W_x x) (+ bias via beta).
        gates = ln(h @ uh.T, cell.norm_h.norms[0].weight, cell.norm_h.norms[0].bias) + ln(
            x[:, t] @ wx.T, cell.norm_x.norms[0].weight, cell.norm_x.norms[0].bias
        )
        i, f, g, o = gates.split(H, dim=-1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(ln(c, cell.norm_c.weight, cell.norm_c.bias))
        outs.append(h)
    got, final = run_layer(cell, x, s)
    torch.testing.assert_close(got, torch.stack(outs, 1), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(final, torch.cat([h, c], -1), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("norm", ["none", "layer"])
def test_mgu_matches_equations(norm: str) -> None:
    cell = make_cell("mgu", E, H, norm)
    randomise(cell, 3)
    x, h = inputs()
    wx, uh = cell.w_ih.weight, cell.w_hh.weight
    if norm == "layer":
        nx, nh = cell.norm_x.norms, cell.norm_h.norms

        def px(a: Tensor, k: int) -> Tensor:
            return ln(a, nx[k].weight, nx[k].bias)

        def ph(a: Tensor, k: int) -> Tensor:
            return ln(a, nh[k].weight, nh[k].bias)
    else:
        bx, bh = cell.w_ih.bias.split(H), cell.w_hh.bias.split(H)

        def px(a: Tensor, k: int) -> Tensor:
            return a + bx[k]

        def ph(a: Tensor, k: int) -> Tensor:
            return a + bh[k]

    outs = []
    for t in range(T):
        # Zhou et al. 2016: f = sigma(W_f x + U_f h), n = tanh(W_n x + f * U_n h), h' = (1 - f) h + f n.
        f = torch.sigmoid(px(x[:, t] @ wx[:H].T, 0) + ph(h @ uh[:H].T, 0))
        n = torch.tanh(px(x[:, t] @ wx[H:].T, 1) + f * ph(h @ uh[H:].T, 1))
        h = (1 - f) * h + f * n
        outs.append(h)
    got, _ = run_layer(cell, x, inputs()[1])
    torch.testing.assert_close(got, torch.stack(outs, 1), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("hoist", [True, False])
def test_plain_gru_equals_torch_gru(hoist: bool) -> None:
    cell = make_cell("gru", E, H, "none")
    randomise(cell, 4)
    ref = torch.nn.GRU(E, H, batch_first=True)
    with torch.no_grad():
        ref.weight_ih_l0.copy_(cell.w_ih.weight)
        ref.bias_ih_l0.copy_(cell.w_ih.bias)
        ref.weight_hh_l0.copy_(cell.w_hh.weight)
        ref.bias_hh_l0.copy_(cell.w_hh.bias)
    x, h0 = inputs()
    got, final = run_layer(cell, x, h0, hoist=hoist)
    want, hn = ref(x, h0.unsqueeze(0))
    assert (got - want).abs().max().item() < 1e-5
    assert (final - hn[0]).abs().max().item() < 1e-5


def test_plain_lstm_equals_torch_lstm() -> None:
    cell = make_cell("lstm", E, H, "none")
    randomise(cell, 5)
    ref = torch.nn.LSTM(E, H, batch_first=True)
    with torch.no_grad():
        ref.weight_ih_l0.copy_(cell.w_ih.weight)
        ref.bias_ih_l0.copy_(cell.w_ih.bias)
        ref.weight_hh_l0.copy_(cell.w_hh.weight)
        ref.bias_hh_l0.copy_(cell.w_hh.bias)
    x, s = inputs(state=2 * H)
    got, final = run_layer(cell, x, s)
    want, (hn, cn) = ref(x, (s[:, :H].unsqueeze(0).contiguous(), s[:, H:].unsqueeze(0).contiguous()))
    assert (got - want).abs().max().item() < 1e-5
    assert (final - torch.cat([hn[0], cn[0]], -1)).abs().max().item() < 1e-5


@pytest.mark.parametrize("cell_name", ["gru", "lstm", "mgu"])
@pytest.mark.parametrize("norm", ["layer", "none", "batch"])
def test_hoisted_equals_naive_loop(cell_name: str, norm: str) -> None:
    cell = make_cell(cell_name, E, H, norm).eval()  # eval: batch norm uses running statistics either way
    randomise(cell, 6)
    x, s = inputs(state=cell.state_size)
    a, sa = run_layer(cell, x, s, hoist=True)
    b, sb = run_layer(cell, x, s, hoist=False)
    torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(sa, sb, atol=1e-6, rtol=1e-6)
