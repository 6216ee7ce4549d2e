"""Tied weights, closed-form parameter counts, and regularisers: active in training, inert in evaluation."""

from __future__ import annotations

import itertools

import pytest
import torch

from lnrnn.contract import VOCAB_SIZE
from lnrnn.train.model import ByteLM, ModelConfig
from lnrnn.train.regularizers import LossModule


def expected_parameters(cfg: ModelConfig) -> int:
    """V*E + V (embedding = output weights, output bias) + L*S (initial state) + H*E (projection if H != E)
    + per layer: W_x (I*G [+G plain]) + W_h (H*G [+G unless LN]) + LN 2G per path (+2H for LSTM's LN(c))
    or BN 2G on the input path; G = 3H (GRU), 4H (LSTM), 2H (MGU)."""
    h, e, v = cfg.hidden, cfg.embedding_size, VOCAB_SIZE
    g = {"gru": 3, "lstm": 4, "mgu": 2}[cfg.cell] * h
    s = 2 * h if cfg.cell == "lstm" else h
    total = v * e + v + cfg.layers * s + (h * e if h != e else 0)
    for i in range(cfg.layers):
        inp = e if i == 0 else h
        total += inp * g + h * g
        if cfg.norm == "none":
            total += 2 * g
        elif cfg.norm == "batch":
            total += g + 2 * g  # W_h bias + BN gain/bias
        else:
            total += 4 * g + (2 * h if cfg.cell == "lstm" else 0)
    return total


@pytest.mark.parametrize(
    "cell,norm,embedding,layers",
    list(itertools.product(["gru", "lstm", "mgu"], ["layer", "none", "batch"], [0, 6], [1, 2])),
)
def test_parameter_count_closed_form(cell: str, norm: str, embedding: int, layers: int) -> None:
    cfg = ModelConfig(cell=cell, norm=norm, embedding=embedding, layers=layers, hidden=8)
    assert ByteLM(cfg).num_parameters() == expected_parameters(cfg)


@pytest.mark.parametrize("embedding", [0, 6])
def test_tied_weights_share_one_tensor(embedding: int) -> None:
    torch.manual_seed(0)
    model = ByteLM(ModelConfig(hidden=8, embedding=embedding))
    e = model.config.embedding_size
    matrices = [p for p in model.parameters() if p.shape == (VOCAB_SIZE, e)]
    assert len(matrices) == 1 and matrices[0].data_ptr() == model.embedding.weight.data_ptr()
    top = torch.randn(2, 3, 8)
    logits = model.head(top)
    projected = model.projection(top) if model.projection is not None else top
    torch.testing.assert_close(logits, projected @ model.embedding.weight.T + model.output_bias)
    with torch.no_grad():
        model.embedding.weight[5].add_(1.0)  # editing the embedding changes the output layer
    assert not torch.equal(model.head(top), logits)
    model.zero_grad()
    model.head(top).sum().backward()  # the output path alone sends gradient to the embedding
    assert model.embedding.weight.grad is not None and model.embedding.weight.grad.abs().sum() > 0


def test_learned_init_flag() -> None:
    assert ByteLM(ModelConfig(hidden=8)).initial_state.requires_grad
    assert not ByteLM(ModelConfig(hidden=8, learned_init=False)).initial_state.requires_grad


REGULARISERS = ["dropout_embedding", "dropout_input", "dropout_hidden", "dropout_output", "weight_drop"]


@pytest.mark.parametrize("name", REGULARISERS)
def test_dropout_changes_training_not_evaluation(name: str) -> None:
    base = ModelConfig(hidden=16, layers=2)
    torch.manual_seed(0)
    plain = ByteLM(base)
    reg = ByteLM(ModelConfig(**{**base.to_dict(), name: 0.5}))
    reg.load_state_dict(plain.state_dict())
    tokens = torch.randint(0, 256, (2, 12))
    plain.eval(), reg.eval()
    torch.testing.assert_close(reg(tokens)[0], plain(tokens)[0])  # evaluation: no effect
    reg.train()
    plain.train()
    torch.manual_seed(1)
    a = reg(tokens)[0]
    torch.manual_seed(2)
    b = reg(tokens)[0]
    assert not torch.allclose(a, b)  # training: random masks
    assert not torch.allclose(a, plain(tokens)[0])


@pytest.mark.parametrize("kind", ["ar", "tar"])
def test_ar_tar_add_to_training_loss(kind: str) -> None:
    torch.manual_seed(0)
    model = ByteLM(ModelConfig(hidden=16))
    x, y = torch.randint(0, 256, (2, 10)), torch.randint(0, 256, (2, 10))
    loss0, nll0, _ = LossModule(model, 0.0, 0.0)(x, y, None)
    loss1, nll1, _ = LossModule(model, **{"ar": 0.0, "tar": 0.0, kind: 2.0})(x, y, None)
    out = model.run(x)
    extra = (
        out.top_dropped.pow(2).mean()
        if kind == "ar"
        else (out.top_raw[:, 1:] - out.top_raw[:, :-1]).pow(2).mean()
    )
    torch.testing.assert_close(nll1, nll0)  # the logged NLL (and evaluation) excludes the penalty
    torch.testing.assert_close(loss1, loss0 + 2.0 * extra)
    assert extra > 0
