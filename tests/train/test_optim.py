"""NT-ASGD trigger and averaged-weight evaluation, plateau decay, early stopping, random BPTT."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch

from lnrnn.errors import UserError
from lnrnn.train import validation
from lnrnn.train.optim import PlateauDecay, averaged_weights, nt_trigger, schedule_scale
from lnrnn.train.presets import resolve
from lnrnn.train.trainer import Trainer, train
from tests.helpers import read_jsonl, write_corpus


def test_nt_trigger_rule() -> None:
    # Switch when worse than the best of all checks except the last `nonmono` (awd-lstm-lm).
    assert not nt_trigger([3.0, 2.9], 3.5, nonmono=2)  # needs more than nonmono checks
    assert nt_trigger([3.0, 2.9], 3.5, nonmono=1)  # 3.5 > min([3.0])
    assert not nt_trigger([3.0, 2.9], 2.95, nonmono=1)
    assert nt_trigger([3.0, 2.0, 2.5], 2.4, nonmono=1)  # 2.4 > min([3.0, 2.0]) although it beats the last
    assert not nt_trigger([], 1.0, nonmono=0) and nt_trigger([1.0], 1.0 + 1e-9, nonmono=0)


def test_plateau_decay() -> None:
    decay = PlateauDecay(0.5, patience=1)
    assert [decay.step(v) for v in (3.0, 2.0, 2.5, 2.6, 1.0, 1.5, 1.6)] == [
        False, False, False, True, False, False, True,
    ]  # fmt: skip
    assert decay.scale == 0.25
    restored = PlateauDecay(0.5, 1)
    restored.load_state_dict(decay.state_dict())
    assert restored.state_dict() == decay.state_dict()
    assert not PlateauDecay(1.0, 0).step(5.0) and not PlateauDecay(1.0, 0).enabled


def test_averaged_weights_context() -> None:
    p = torch.nn.Parameter(torch.tensor([1.0, 2.0]))
    opt = torch.optim.ASGD([p], lr=0.1, t0=0, lambd=0.0)
    for _ in range(3):
        opt.zero_grad()
        (p**2).sum().backward()
        opt.step()
    raw = p.detach().clone()
    with averaged_weights(opt):
        torch.testing.assert_close(p.detach(), opt.state[p]["ax"])
        assert not torch.equal(p.detach(), raw)
    torch.testing.assert_close(p.detach(), raw)


def scripted_trainer(
    tmp_path: Path, values: list[float], monkeypatch: pytest.MonkeyPatch, **over: Any
) -> Any:
    """A Trainer whose validation returns scripted BPCs; it records the first weight seen at evaluation."""
    seen: list[torch.Tensor] = []
    script = iter(values)

    def fake_evaluate(model: Any, data: Any, chunk: int) -> tuple[float, int]:
        seen.append(model.output_bias.detach().clone())
        return next(script) * math.log(2) * 100, 100

    monkeypatch.setattr(validation, "evaluate_bytes", fake_evaluate)
    corpus = write_corpus(tmp_path / "c.txt", n=20_000)
    model_cfg, cfg = resolve("tiny", {"data": str(corpus), "hidden": 16, **over})
    return Trainer(model_cfg, cfg, tmp_path / "run", quiet=True), seen


def test_ntasgd_switches_and_evaluates_averaged_weights(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tr, seen = scripted_trainer(
        tmp_path, [3.0, 2.9, 3.5, 3.4], monkeypatch, optimizer="ntasgd", nonmono=1, lr=0.5
    )
    assert isinstance(tr.optimizer, torch.optim.SGD)
    for _ in range(3):
        tr.train_step()
        tr.check(scheduled=True)
    assert tr.opt_kind == "asgd" and isinstance(tr.optimizer, torch.optim.ASGD)
    for _ in range(3):
        tr.train_step()
    bias = tr.model.output_bias
    averaged = tr.optimizer.state[bias]["ax"].clone()
    assert not torch.allclose(averaged, bias.detach())
    tr.check(scheduled=True)
    torch.testing.assert_close(seen[-1], averaged)  # evaluation saw the averaged weights
    assert not torch.allclose(bias.detach(), averaged)  # and the raw ones are back for training


def test_plateau_decay_lowers_lr_in_training(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tr, _ = scripted_trainer(tmp_path, [3.0, 3.1], monkeypatch, lr_decay=0.5, patience=0)
    for _ in range(2):
        tr.train_step()
        tr.check(scheduled=True)
    tr.train_step()
    assert tr.optimizer.param_groups[0]["lr"] == pytest.approx(tr.cfg.lr * 0.5)


def test_early_stop_and_plateau_in_a_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(validation, "evaluate_bytes", lambda m, d, c: (next(values) * math.log(2) * 100, 100))
    values = iter([3.0, 3.1, 3.2, 3.3, 3.4, 3.5])
    corpus = write_corpus(tmp_path / "c.txt", n=20_000)
    model_cfg, cfg = resolve(
        "tiny",
        {"data": str(corpus), "hidden": 16, "eval_interval": 2, "log_interval": 1, "max_steps": 50,
         "early_stop": 2, "lr_decay": 0.5, "patience": 0},
    )  # fmt: skip
    result = train(model_cfg, cfg, tmp_path / "run", quiet=True)
    assert result.stopped == "early_stop" and result.step == 6
    lrs = [r["train/lr"] for r in read_jsonl(tmp_path / "run" / "metrics.jsonl") if "train/lr" in r]
    assert lrs[:4] == [cfg.lr] * 4 and lrs[4] == pytest.approx(cfg.lr * 0.5)


def test_random_bptt_lengths_and_lr_scaling(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tr, _ = scripted_trainer(tmp_path, [], monkeypatch, random_bptt=True, bptt=40)
    lengths = [tr.seq_len() for _ in range(2000)]
    assert min(lengths) >= 5
    short = sum(1 for n in lengths if n < 30) / len(lengths)
    assert 0.02 < short < 0.09  # base bptt/2 with probability 0.05
    assert abs(sum(n for n in lengths if n >= 30) / sum(1 for n in lengths if n >= 30) - 40) < 1.0
    pos = tr.progress.pos
    tr.train_step()
    t = tr.progress.pos - pos
    assert tr.optimizer.param_groups[0]["lr"] == pytest.approx(tr.cfg.lr * t / 40)


def test_cosine_schedule_values() -> None:
    # 0.1 + 0.9 * (1 + cos(pi * t / T)) / 2: 1 at the start, 0.55 halfway, 0.1 at the end and after.
    assert schedule_scale("cosine", 0, 1000) == pytest.approx(1.0)
    assert schedule_scale("cosine", 500, 1000) == pytest.approx(0.55)
    assert schedule_scale("cosine", 250, 1000) == pytest.approx(0.1 + 0.45 * (1 + math.sqrt(0.5)))
    assert schedule_scale("cosine", 1000, 1000) == pytest.approx(0.1)
    assert schedule_scale("cosine", 5000, 1000) == pytest.approx(0.1)
    assert schedule_scale("constant", 500, 1000) == 1.0


def test_cosine_schedule_in_training(tmp_path: Path) -> None:
    corpus = write_corpus(tmp_path / "c.txt", n=20_000)
    model_cfg, cfg = resolve(
        "tiny",
        {"data": str(corpus), "hidden": 16, "eval_interval": 100, "log_interval": 1, "max_steps": 20,
         "schedule": "cosine"},
    )  # fmt: skip
    train(model_cfg, cfg, tmp_path / "run", quiet=True)
    lrs = [r["train/lr"] for r in read_jsonl(tmp_path / "run" / "metrics.jsonl") if "train/lr" in r]
    # The record after step s holds the lr step s used, i.e. the schedule at s - 1.
    assert lrs == pytest.approx([cfg.lr * schedule_scale("cosine", s, 20) for s in range(20)])


def test_cosine_schedule_needs_max_steps() -> None:
    with pytest.raises(UserError, match="needs --max-steps"):
        resolve("tiny", {"schedule": "cosine", "max_steps": 0})
    with pytest.raises(UserError, match="unknown schedule"):
        resolve("tiny", {"schedule": "linear"})
