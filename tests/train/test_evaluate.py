"""Exact evaluation: chunking with carried state changes nothing; every byte, the first included, is paid."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lnrnn.bpc import bits_per_byte
from lnrnn.contract import BOS_ID
from lnrnn.train.evaluate import evaluate_bpc, evaluate_bytes
from lnrnn.train.model import ByteLM, ModelConfig

TEXT = b"To be, or not to be, that is the question:\nWhether 'tis nobler in the mind to suffer\n" * 6


@pytest.mark.parametrize("cell", ["gru", "lstm", "mgu"])
def test_chunked_equals_one_piece(cell: str) -> None:
    torch.manual_seed(0)
    model = ByteLM(ModelConfig(cell=cell, hidden=32, layers=2))
    whole, n = evaluate_bytes(model, TEXT, chunk=4096)
    chunked, n7 = evaluate_bytes(model, TEXT, chunk=7)
    assert n == n7 == len(TEXT)
    assert abs(whole - chunked) < 1e-4
    short = TEXT[:100]
    assert abs(evaluate_bytes(model, short, chunk=1)[0] - evaluate_bytes(model, short)[0]) < 1e-4


def test_matches_direct_cross_entropy_including_first_byte() -> None:
    torch.manual_seed(1)
    model = ByteLM(ModelConfig(hidden=16)).eval()
    ids = torch.tensor([[BOS_ID, *TEXT]])
    with torch.no_grad():
        logits, _ = model(ids[:, :-1])
    want = F.cross_entropy(logits[0], ids[0, 1:], reduction="sum").item()
    nats, n = evaluate_bytes(model, TEXT, chunk=50)
    assert n == len(TEXT) and abs(nats - want) < 1e-3
    assert evaluate_bpc(model, TEXT) == pytest.approx(bits_per_byte(nats, n))
    one, n1 = evaluate_bytes(model, b"T")  # a single byte costs -log p(T | BOS)
    assert n1 == 1 and one == pytest.approx(F.cross_entropy(logits[0, :1], ids[0, 1:2]).item(), abs=1e-5)


def test_restores_training_mode() -> None:
    model = ByteLM(ModelConfig(hidden=8, dropout_output=0.5)).train()
    a, _ = evaluate_bytes(model, TEXT[:40])
    b, _ = evaluate_bytes(model, TEXT[:40])
    assert a == b and model.training
