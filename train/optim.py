"""Optimisers and schedules: Adam, NT-ASGD (Merity et al. 2018, Alg. 1 as in awd-lstm-lm), cosine, plateau.

NT-ASGD starts as plain SGD; once the validation loss is worse than the best of all checks except the last
``nonmono`` ones, it switches to averaged SGD (``torch.optim.ASGD``, ``t0=0, lambd=0``) and evaluation uses
the averaged weights (ASGD keeps them in ``state[p]["ax"]``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

OPTIMIZERS = ("adam", "ntasgd")


def make_optimizer(
    kind: str, params: list[nn.Parameter], lr: float, weight_decay: float
) -> torch.optim.Optimizer:
    """``adam`` -> Adam; ``ntasgd`` -> SGD (``asgd`` is what NT-ASGD becomes after the trigger)."""
    if kind == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if kind in ("ntasgd", "sgd"):
        return torch.optim.SGD(params, lr=lr, weight_decay=weight_decay)
    if kind == "asgd":
        return torch.optim.ASGD(params, lr=lr, t0=0, lambd=0.0, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {kind!r}; expected one of {OPTIMIZERS}")


def nt_trigger(history: list[float], current: float, nonmono: int) -> bool:
    """awd-lstm-lm: switch when ``current > min(history[:-nonmono])`` with more than ``nonmono`` checks."""
    return len(history) > nonmono and current > min(history[: len(history) - nonmono])


@contextmanager
def averaged_weights(optimizer: torch.optim.Optimizer) -> Iterator[None]:
    """Temporarily load ASGD's averages ``ax`` into the parameters (a no-op for other optimisers)."""
    if not isinstance(optimizer, torch.optim.ASGD):
        yield
        return
    saved: list[tuple[torch.Tensor, torch.Tensor]] = []
    with torch.no_grad():
        for group in optimizer.param_groups:
            for p in group["params"]:
                state = optimizer.state.get(p, {})
                if "ax" in state:
                    saved.append((p, p.detach().clone()))
                    p.copy_(state["ax"])
    try:
        yield
    finally:
        with torch.no_grad():
            for p, value in saved:
                p.copy_(value)


COSINE_FINAL = 0.1  # cosine schedule: the lr ends at this fraction of its peak


def schedule_scale(schedule: str, step: int, max_steps: int) -> float:
    """lr multiplier at ``step``: 1 for ``constant``; ``cosine`` (Loshchilov & Hutter 2017, SGDR eq. 5
    without restarts) goes from 1 to ``COSINE_FINAL`` over ``max_steps``."""
    if schedule == "constant":
        return 1.0
    progress = min(step / max_steps, 1.0)
    return COSINE_FINAL + (1.0 - COSINE_FINAL) * 0.5 * (1.0 + math.cos(math.pi * progress))


class PlateauDecay:
    """lr x ``factor`` (0 < factor < 1) after more than ``patience`` checks without a new best."""

    def __init__(self, factor: float, patience: int) -> None:
        self.factor, self.patience = factor, patience
        self.best = float("inf")
        self.bad = 0
        self.scale = 1.0  # product of the decays so far

    @property
    def enabled(self) -> bool:
        return 0.0 < self.factor < 1.0

    def step(self, value: float) -> bool:
        """Record one validation check; True when the lr was just decayed."""
        if value < self.best:
            self.best, self.bad = value, 0
            return False
        self.bad += 1
        if self.enabled and self.bad > self.patience:
            self.scale *= self.factor
            self.bad = 0
            return True
        return False

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "bad": self.bad, "scale": self.scale}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.bad, self.scale = float(state["best"]), int(state["bad"]), float(state["scale"])
