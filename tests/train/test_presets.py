"""Every preset resolves to valid configs; the issue-8 presets stay within the 5M-parameter budget."""

from __future__ import annotations

import pytest

from lnrnn.train.model import ByteLM
from lnrnn.train.presets import PRESETS, resolve


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_resolves(name: str) -> None:
    model_cfg, train_cfg = resolve(name, {})
    for key, value in PRESETS[name].items():
        holder = model_cfg if hasattr(model_cfg, key) else train_cfg
        assert getattr(holder, key) == value


@pytest.mark.parametrize(("name", "params"), [("shakespeare", 1_878_401), ("mix", 2_535_489)])
def test_quality_presets_are_small(name: str, params: int) -> None:
    model_cfg, _ = resolve(name, {})
    assert ByteLM(model_cfg).num_parameters() == params <= 5_000_000


def test_shakespeare_preset_uses_nanogpt_split() -> None:
    _, train_cfg = resolve("shakespeare", {})
    assert train_cfg.split == "0.9,0.1,0" and 0 < train_cfg.max_minutes <= 60
