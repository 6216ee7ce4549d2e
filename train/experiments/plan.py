"""The `seeds` experiment: which configurations each published claim needs, deduplicated, and the step budget.

Torch-free except ``equal_param_hidden`` (which builds models to count their parameters).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from lnrnn.errors import UserError


@dataclass(frozen=True)
class RunSpec:
    """One trained configuration (trained once per seed, shared by every claim that needs it)."""

    cell: str
    norm: str
    hidden: int
    init: str = "xavier"

    @property
    def name(self) -> str:
        return f"{self.cell}-{self.norm}-h{self.hidden}-{self.init}"

    def settings(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Scale:
    """Everything shared by all runs of one experiment (equal steps, batch and sequence settings)."""

    hidden: int  # H of the reference LN-GRU
    batch_size: int
    bptt: int
    lr: float
    valid_bytes: int  # evaluate on this fixed prefix of the valid split (exact BPC over it)
    n_evals: int  # validation checks per run (the last one at the last step)
    min_steps: int
    max_steps: int
    seeds: int
    budget_minutes: float
    threads: int  # torch intra-op threads


# Full run: 1 layer, H=128, batch 32 x 64 bytes, Adam 2e-3 (the repo's default lr); 33 runs fit 60 minutes.
FULL = Scale(
    hidden=128,
    batch_size=32,
    bptt=64,
    lr=2e-3,
    valid_bytes=16_384,
    n_evals=8,
    min_steps=200,
    max_steps=20_000,
    seeds=3,
    budget_minutes=60.0,
    threads=2,
)
# Quick: every claim's code path in about 90 s; numbers are meaningless.
QUICK = Scale(
    hidden=32,
    batch_size=16,
    bptt=32,
    lr=3e-3,
    valid_bytes=2_048,
    n_evals=2,
    min_steps=8,
    max_steps=40,
    seeds=2,
    budget_minutes=1.5,
    threads=1,  # tiny matmuls gain nothing from 2 threads, and 1 thread does not stall on a shared CPU
)


@dataclass
class Claim:
    """A published claim and the configurations (by role) that test it."""

    key: str
    title: str
    quote: str
    source: str
    roles: dict[str, RunSpec] = field(default_factory=dict)  # role label -> configuration
    note: str = ""


def param_count(spec: RunSpec) -> int:
    from lnrnn.train.model import ByteLM, ModelConfig

    cfg = ModelConfig(cell=spec.cell, norm=spec.norm, hidden=spec.hidden, init=spec.init, layers=1)
    return ByteLM(cfg).num_parameters()


def equal_param_hidden(cell: str, target: int, limit: int) -> int:
    """The H in [1, limit] whose LN model of ``cell`` has the parameter count closest to ``target``.

    Counts are monotone in H, so a binary search for the crossing and a look at its two neighbours suffice.
    """
    lo, hi = 1, limit
    while lo < hi:
        mid = (lo + hi) // 2
        if param_count(RunSpec(cell, "layer", mid)) < target:
            lo = mid + 1
        else:
            hi = mid
    candidates = [h for h in (lo - 1, lo) if h >= 1]
    best = min(candidates, key=lambda h: abs(param_count(RunSpec(cell, "layer", h)) - target))
    got = param_count(RunSpec(cell, "layer", best))
    if abs(got - target) > 0.05 * target:
        raise UserError(
            f"cannot match {target:,} parameters with a {cell} within 5% (best H={best}: {got:,})"
        )
    return best


def build_claims(hidden: int) -> list[Claim]:
    """The four published claims (layer norm, batch norm, cells, initialisers), each with its runs."""
    ln_gru = RunSpec("gru", "layer", hidden)
    grid = {f"{c}/{n}": RunSpec(c, n, hidden) for n in ("layer", "none", "batch") for c in ("gru", "lstm")}
    ref = param_count(ln_gru)
    h_lstm = equal_param_hidden("lstm", ref, 4 * hidden)
    h_mgu = equal_param_hidden("mgu", ref, 4 * hidden)
    return [
        Claim(
            "1",
            "Layer norm speeds up training and improves final BPC",
            "layer norm both speeds up training and results in significantly better final performance",
            "Ba, Kiros & Hinton 2016 (Layer Normalization); Hafner 2017 (Language Modeling with Layer Norm "
            "and GRU)",
            grid,
        ),
        Claim(
            "2",
            "Batch norm on the input-to-hidden transition speeds up training-set convergence, not validation",
            "when applied to the input-to-hidden transitions, batch normalization can lead to a faster "
            "convergence of the training criterion but doesn't seem to improve the generalization "
            "performance",
            "Laurent, Pereyra, Brakel, Zhang & Bengio 2015 (Batch Normalized Recurrent Neural Networks), "
            "abstract",
            {k: v for k, v in grid.items() if not k.endswith("/layer")},
        ),
        Claim(
            "3",
            "GRU beats LSTM at fewer parameters; MGU has the fewest parameters and performs worst",
            "GRU performs better than LSTM here, although it uses fewer parameters (MGU: fewest parameters, "
            "worst BPC, paraphrased)",
            "Hafner 2017 (char-level, text8)",
            {
                "gru/equal-H": ln_gru,
                "lstm/equal-H": RunSpec("lstm", "layer", hidden),
                "mgu/equal-H": RunSpec("mgu", "layer", hidden),
                "gru/equal-params": ln_gru,
                "lstm/equal-params": RunSpec("lstm", "layer", h_lstm),
                "mgu/equal-params": RunSpec("mgu", "layer", h_mgu),
            },
            note="The AWD-GRU word-level PTB report (soyoung97/awd-lstm-gru: the GRU diverged under the "
            "LSTM's SGD lr=30) is context only: a word-level recipe, not reproducible here.",
        ),
        Claim(
            "4",
            "The initialiser matters little; Xavier was best, variance scaling had the largest spread",
            "the initialiser matters little; Xavier was best, variance scaling had the largest spread "
            "(paraphrased: the results section of Hafner's page was not available to verify)",
            "Hafner 2017",
            {
                f"gru/{i}": RunSpec("gru", "layer", hidden, i)
                for i in ("xavier", "orthogonal", "variance_scaling")
            },
        ),
    ]


def unique_specs(claims: list[Claim]) -> list[RunSpec]:
    """Every configuration once, in first-use order (LN-GRU/xavier at H is shared by all four claims)."""
    seen: dict[str, RunSpec] = {}
    for claim in claims:
        for spec in claim.roles.values():
            seen.setdefault(spec.name, spec)
    return list(seen.values())


@dataclass
class Timing:
    """From the probe: seconds per training step and per evaluation of the valid subset."""

    step_s: float
    eval_s: float


RUN_OVERHEAD_S = 1.0  # trainer setup, checkpoint writes, metrics (measured well under 1 s per run)
SAFETY = 0.9  # plan to 90% of the budget: the machine is shared and timings drift


def estimate_s(
    specs: list[RunSpec], timings: dict[str, Timing], steps: int, scale: Scale, seeds: int
) -> float:
    """Estimated wall seconds of all runs at ``steps`` steps each."""
    per_seed = sum(steps * timings[s.name].step_s + scale.n_evals * timings[s.name].eval_s for s in specs)
    return seeds * (per_seed + len(specs) * RUN_OVERHEAD_S)


def steps_for_budget(
    specs: list[RunSpec], timings: dict[str, Timing], scale: Scale, seeds: int, budget_s: float
) -> int:
    """The largest multiple of ``n_evals`` steps whose estimate fits ``SAFETY * budget_s``, capped at max."""
    fixed = estimate_s(specs, timings, 0, scale, seeds)
    per_step = seeds * sum(timings[s.name].step_s for s in specs)
    steps = int((SAFETY * budget_s - fixed) / per_step) if per_step > 0 else scale.max_steps
    steps = min(steps, scale.max_steps) // scale.n_evals * scale.n_evals
    if steps < scale.min_steps:
        need = (estimate_s(specs, timings, scale.min_steps, scale, seeds) / SAFETY) / 60
        raise UserError(
            f"the budget ({budget_s / 60:.1f} min after the timing probe) allows only {max(steps, 0)} steps "
            f"for {len(specs)} configs x {seeds} seeds (minimum {scale.min_steps}); it needs about "
            f"{need:.1f} min: raise --budget-minutes or lower --seeds"
        )
    return steps
