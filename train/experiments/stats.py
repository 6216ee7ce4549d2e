"""Seed statistics and the verdict rule of the `seeds` experiment (pure Python, torch-free).

Rule: a difference of two configurations' seed means counts only when it is larger than twice their pooled
standard deviation over seeds, sqrt((s_a^2 + s_b^2) / 2) (sample std, ddof 1). With fewer than two seeds no
difference counts. A check passes, fails, or stays undecided; a claim (part) is *reproduced* when every
check passes, *not reproduced* when any check fails, and *inconclusive at this scale* otherwise.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

RULE = (
    "a difference of seed means counts when it exceeds 2x the pooled seed std sqrt((s_a^2 + s_b^2)/2) "
    "(sample std; nothing counts with fewer than 2 seeds). A claim is *reproduced* when every check passes, "
    "*not reproduced* when any check fails, *inconclusive at this scale* otherwise."
)
SIGMAS = 2.0
SMALL_BPC = 0.05  # claim 4: initialisers "matter little" when their means span at most this many BPC
PASS, FAIL, UNDECIDED = "pass", "fail", "undecided"
REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE = "reproduced", "not reproduced", "inconclusive at this scale"
METRICS = ("final_valid", "valid_auc", "train_auc")  # lower is better for all three


@dataclass
class Stat:
    mean: float
    std: float  # sample std over seeds (0 with one seed)
    n: int
    min: float
    max: float

    def text(self) -> str:
        return f"{self.mean:.4f} ± {self.std:.4f}"


def summarize(values: list[float]) -> Stat:
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return Stat(statistics.fmean(values), std, len(values), min(values), max(values))


def curve_mean(curve: list[list[float]]) -> float:
    """Mean of a learning curve's values: the area under it per step, a proxy for speed of training."""
    return statistics.fmean(v for _, v in curve) if curve else math.nan


@dataclass
class Check:
    what: str
    outcome: str  # pass | fail | undecided
    detail: str  # the numbers behind the outcome


def compare(a: Stat, b: Stat) -> tuple[float, float, str]:
    """(mean_b - mean_a, 2 x pooled std, winner: "a" | "b" | "none"); positive difference = a lower."""
    diff = b.mean - a.mean
    bar = SIGMAS * math.sqrt((a.std**2 + b.std**2) / 2)
    if min(a.n, b.n) < 2 or abs(diff) <= bar:
        return diff, bar, "none"
    return diff, bar, "a" if diff > 0 else "b"


def better(label_a: str, a: Stat, label_b: str, b: Stat, metric: str, expect_better: bool = True) -> Check:
    """``expect_better``: a must be significantly lower; otherwise a must *not* be significantly lower."""
    diff, bar, winner = compare(a, b)
    detail = f"{metric}: {label_a} {a.text()} vs {label_b} {b.text()}; "
    detail += f"difference {diff:+.4f}, 2x pooled std {bar:.4f}"
    if expect_better:
        outcome = PASS if winner == "a" else FAIL if winner == "b" else UNDECIDED
        return Check(f"{label_a} lower {metric} than {label_b}", outcome, detail)
    outcome = FAIL if winner == "a" else PASS if min(a.n, b.n) >= 2 else UNDECIDED
    return Check(f"{label_a} not significantly lower {metric} than {label_b}", outcome, detail)


def fact(what: str, holds: bool, detail: str) -> Check:
    """A deterministic check (parameter counts)."""
    return Check(what, PASS if holds else FAIL, detail)


def verdict(checks: list[Check]) -> str:
    if any(c.outcome == FAIL for c in checks):
        return NOT_REPRODUCED
    if checks and all(c.outcome == PASS for c in checks):
        return REPRODUCED
    return INCONCLUSIVE


Getter = Callable[[str, str], Stat]  # (role, metric) -> Stat


def claim_parts(key: str, get: Getter, params: Callable[[str], int]) -> list[tuple[str, list[Check]]]:
    """The checks of each claim, grouped in parts that each get a verdict."""
    if key == "1":  # LN vs none: lower final valid BPC, and a lower valid curve (faster)
        checks = [
            better(f"{c}/layer", get(f"{c}/layer", m), f"{c}/none", get(f"{c}/none", m), m)
            for c in ("gru", "lstm")
            for m in ("final_valid", "valid_auc")
        ]
        return [("layer norm vs none", checks)]
    if key == "2":  # BN (input path) vs none: lower train curve, but not a lower final valid BPC
        checks = []
        for c in ("gru", "lstm"):
            a, b = f"{c}/batch", f"{c}/none"
            checks.append(better(a, get(a, "train_auc"), b, get(b, "train_auc"), "train_auc"))
            checks.append(better(a, get(a, "final_valid"), b, get(b, "final_valid"), "final_valid", False))
        return [("batch norm vs none", checks)]
    if key == "3":
        m = "final_valid"
        eq_h = [f"{c}/equal-H" for c in ("gru", "lstm", "mgu")]
        counts = ", ".join(f"{r} {params(r):,}" for r in eq_h)
        gru_lstm = [
            fact("GRU has fewer parameters than LSTM at equal H", params(eq_h[0]) < params(eq_h[1]), counts),
            better(eq_h[0], get(eq_h[0], m), eq_h[1], get(eq_h[1], m), m),
            better(
                "gru/equal-params",
                get("gru/equal-params", m),
                "lstm/equal-params",
                get("lstm/equal-params", m),
                m,
            ),
        ]
        mgu = [
            fact(
                "MGU has the fewest parameters at equal H",
                params(eq_h[2]) < min(map(params, eq_h[:2])),
                counts,
            ),
            better(eq_h[0], get(eq_h[0], m), eq_h[2], get(eq_h[2], m), m),
            better(eq_h[1], get(eq_h[1], m), eq_h[2], get(eq_h[2], m), m),
        ]
        return [
            ("3a: GRU beats LSTM at fewer parameters", gru_lstm),
            ("3b: MGU fewest parameters, worst", mgu),
        ]
    if key == "4":
        return [("initialisers", init_checks(get))]
    raise ValueError(f"unknown claim {key!r}")


def init_checks(get: Getter) -> list[Check]:
    """Claim 4: small range of means; Xavier lowest; variance scaling the largest seed spread."""
    roles = ["gru/xavier", "gru/orthogonal", "gru/variance_scaling"]
    stats = {r: get(r, "final_valid") for r in roles}
    summary = "; ".join(f"{r} {s.text()}" for r, s in stats.items())
    lo, hi = min(stats, key=lambda r: stats[r].mean), max(stats, key=lambda r: stats[r].mean)
    span = stats[hi].mean - stats[lo].mean
    _, _, winner = compare(stats[lo], stats[hi])
    small = PASS if span <= SMALL_BPC else FAIL if winner == "a" else UNDECIDED
    checks = [
        Check(f"range of means <= {SMALL_BPC} BPC", small, f"range {span:.4f} ({lo} to {hi}); {summary}")
    ]
    beaten = [r for r in roles[1:] if compare(stats[r], stats[roles[0]])[2] == "a"]
    best = PASS if lo == roles[0] else FAIL if beaten else UNDECIDED
    checks.append(Check("Xavier has the lowest mean (no init significantly better)", best, summary))
    widest = max(stats, key=lambda r: stats[r].std)
    # Three seeds cannot establish an ordering of spreads: this check passes or stays undecided, never fails.
    spread = PASS if widest == roles[2] and stats[roles[2]].n >= 2 else UNDECIDED
    checks.append(
        Check("variance scaling has the largest seed std", spread, f"largest std: {widest}; {summary}")
    )
    return checks


def claim_result(key: str, get: Getter, params: Callable[[str], int]) -> dict[str, Any]:
    parts = claim_parts(key, get, params)
    out = [
        {"part": label, "verdict": verdict(checks), "checks": [asdict(c) for c in checks]}
        for label, checks in parts
    ]
    return {"verdict": verdict([c for _, checks in parts for c in checks]), "parts": out}
