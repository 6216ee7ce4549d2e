"""`lnrnn experiment seeds`: train every configuration the four claims need, over seeds, at equal steps.

Runs are sequential and in-process (torch threads = 2) through the normal ``Trainer`` on its normal split of
the data; only the valid split is cut to a fixed prefix (``Scale.valid_bytes``) so that each check is cheap,
and the test split is dropped (no test evaluation). Every valid BPC is exact over that prefix, through
``lnrnn.bpc.bits_per_byte``. Steps come from ``--budget-minutes`` and a timing probe of every configuration
(or ``--steps``). Outputs: ``DIR/results.json`` (schema in ``experiments.report``), ``DIR/report.md``,
``DIR/claim*.png`` and ``DIR/runs/<config>/seed<k>/`` (metrics.jsonl, config.json, best.json, train.log;
weights are deleted).
"""

from __future__ import annotations

import logging
import shutil
import statistics
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from lnrnn.errors import UserError
from lnrnn.train.data import load_splits
from lnrnn.train.experiments.plan import (
    FULL,
    QUICK,
    Claim,
    RunSpec,
    Scale,
    Timing,
    build_claims,
    estimate_s,
    steps_for_budget,
    unique_specs,
)

log = logging.getLogger("lnrnn.experiment")
EXPERIMENTS = ("seeds",)
RUN_CAP = 3.0  # a run is stopped (and flagged) after this many times its estimated time
DROP_FILES = ("best.safetensors", "last.safetensors", "resume.pt")


@dataclass
class Options:
    name: str
    out: Path
    data: Path
    quick: bool = False
    seeds: int | None = None  # default: the scale's
    budget_minutes: float | None = None  # default: the scale's
    steps: int | None = None  # fixed steps instead of the budget rule
    threads: int | None = None  # torch threads (default: the scale's; 1 is steadier on a shared CPU)
    command: str = ""


@dataclass
class Plan:
    scale: Scale
    claims: list[Claim]
    specs: list[RunSpec]
    seeds: list[int]
    steps: int
    timings: dict[str, Timing]
    probe_s: float
    estimate_s: float
    data_description: str = ""
    split_bytes: tuple[int, int, int] = (0, 0, 0)  # train, valid, test of the trainer's normal split

    @property
    def eval_interval(self) -> int:
        return max(1, self.steps // self.scale.n_evals)

    @property
    def log_interval(self) -> int:
        return max(1, self.steps // 40)


def check_options(opts: Options) -> Scale:
    """Bad input -> UserError (one line, exit 2), before anything is trained."""
    if opts.name not in EXPERIMENTS:
        raise UserError(f"unknown experiment {opts.name!r}; valid experiments: {', '.join(EXPERIMENTS)}")
    if not opts.data.is_file():
        raise UserError(f"data file {opts.data} does not exist (pass --data FILE, e.g. Tiny Shakespeare)")
    if opts.seeds is not None and opts.seeds < 1:
        raise UserError(f"--seeds must be >= 1, got {opts.seeds}")
    if opts.budget_minutes is not None and not opts.budget_minutes > 0:
        raise UserError(f"--budget-minutes must be > 0, got {opts.budget_minutes}")
    if opts.threads is not None and opts.threads < 1:
        raise UserError(f"--threads must be >= 1, got {opts.threads}")
    if opts.steps is not None and opts.steps < 1:
        raise UserError(f"--steps must be >= 1, got {opts.steps}")
    if opts.out.exists() and not opts.out.is_dir():
        raise UserError(f"--out {opts.out} exists and is not a directory")
    base = QUICK if opts.quick else FULL
    return replace(
        base,
        seeds=opts.seeds if opts.seeds is not None else base.seeds,
        budget_minutes=opts.budget_minutes if opts.budget_minutes is not None else base.budget_minutes,
        threads=opts.threads or base.threads,
    )


def make_trainer(
    spec: RunSpec,
    scale: Scale,
    data: Path,
    run_dir: Path,
    steps: int,
    seed: int,
    evals: int,
    logs: int,
    cap_minutes: float = 0.0,
) -> Any:
    """A ``Trainer`` for one run; its valid split is cut to the fixed prefix and its test split dropped."""
    from lnrnn.train.presets import resolve
    from lnrnn.train.trainer import Trainer

    model_cfg, cfg = resolve(
        None,
        {
            **spec.settings(),
            "layers": 1,
            "batch_size": scale.batch_size,
            "bptt": scale.bptt,
            "lr": scale.lr,
            "max_steps": steps,
            "eval_interval": evals,
            "log_interval": logs,
            "seed": seed,
            "data": str(data),
            "device": "cpu",
            "max_minutes": cap_minutes,
        },
    )
    trainer = Trainer(model_cfg, cfg, run_dir, quiet=True)
    splits = trainer.splits
    trainer.splits = replace(splits, valid=splits.valid[: scale.valid_bytes], test=np.zeros(0, np.uint8))
    return trainer


def probe(specs: list[RunSpec], scale: Scale, data: Path, quick: bool) -> tuple[dict[str, Timing], float]:
    """Time a few real training steps and one evaluation (of a slice, scaled) for every configuration."""
    warm, timed = (1, 3) if quick else (2, 5)
    start = time.perf_counter()
    timings: dict[str, Timing] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for spec in specs:
            trainer = make_trainer(spec, scale, data, Path(tmp), warm + timed, 0, 1, 1)
            for _ in range(warm):
                trainer.train_step()
            times = []
            for _ in range(timed):
                t0 = time.perf_counter()
                trainer.train_step()
                times.append(time.perf_counter() - t0)
            step_s = statistics.median(times)  # robust to a stall on a shared machine
            full = len(trainer.splits.valid)
            piece = min(full, 2048)
            trainer.splits = replace(trainer.splits, valid=trainer.splits.valid[:piece])
            t0 = time.perf_counter()
            trainer.valid_bpc()
            timings[spec.name] = Timing(step_s, (time.perf_counter() - t0) * full / piece)
    return timings, time.perf_counter() - start


def make_plan(opts: Options, scale: Scale) -> Plan:
    claims = build_claims(scale.hidden)
    specs = unique_specs(claims)
    timings, probe_s = probe(specs, scale, opts.data, opts.quick)
    budget_s = 60 * scale.budget_minutes - probe_s
    steps = opts.steps or steps_for_budget(specs, timings, scale, scale.seeds, budget_s)
    steps = max(scale.n_evals, steps // scale.n_evals * scale.n_evals)  # the last check at the last step
    total = estimate_s(specs, timings, steps, scale, scale.seeds)
    seeds = list(range(1, scale.seeds + 1))
    splits = load_splits(opts.data)
    sizes = (len(splits.train), len(splits.valid), len(splits.test))
    return Plan(scale, claims, specs, seeds, steps, timings, probe_s, total, splits.description, sizes)


def describe_plan(plan: Plan, opts: Options) -> list[str]:
    s = plan.scale
    lines = [
        f"experiment seeds{' (quick)' if opts.quick else ''}: {len(plan.specs)} configs x {len(plan.seeds)} "
        f"seeds = {len(plan.specs) * len(plan.seeds)} runs, {plan.steps} steps each "
        f"(batch {s.batch_size} x {s.bptt} bytes, {s.n_evals} checks on {s.valid_bytes:,} valid bytes)",
        f"timing probe took {plan.probe_s:.1f} s; estimated training time {plan.estimate_s / 60:.1f} min "
        f"(budget {s.budget_minutes:g} min{', steps fixed by --steps' if opts.steps else ''})",
    ]
    for spec in plan.specs:
        t = plan.timings[spec.name]
        lines.append(f"  {spec.name:32s} {1000 * t.step_s:7.1f} ms/step  eval {t.eval_s:5.2f} s")
    return lines


def train_one(plan: Plan, spec: RunSpec, seed: int, opts: Options) -> dict[str, Any]:
    """Train one (config, seed) in ``DIR/runs/<config>/seed<k>`` (replaced if present); its record."""
    from lnrnn.train.experiments.report import seed_record

    run_dir = opts.out / "runs" / spec.name / f"seed{seed}"
    if run_dir.exists():
        shutil.rmtree(run_dir)
    t = plan.timings[spec.name]
    cap_s = RUN_CAP * (plan.steps * t.step_s + plan.scale.n_evals * t.eval_s) + 30
    trainer = make_trainer(
        spec,
        plan.scale,
        opts.data,
        run_dir,
        plan.steps,
        seed,
        plan.eval_interval,
        plan.log_interval,
        cap_s / 60,
    )
    start = time.perf_counter()
    result = trainer.run()
    wall = time.perf_counter() - start
    for name in DROP_FILES:
        (run_dir / name).unlink(missing_ok=True)
    return seed_record(run_dir, wall, result.stopped)


def run_experiment(opts: Options) -> dict[str, Path]:
    """Validate, plan (printed through the logger), train every run, write results, report and plots."""
    import torch

    from lnrnn.train.experiments.report import write_outputs

    scale = check_options(opts)
    threads = torch.get_num_threads()
    torch.set_num_threads(scale.threads)
    # The trainer's lines go only to each run's train.log; this module logs one line per run instead.
    train_log = logging.getLogger("lnrnn.train")
    saved = (train_log.level, train_log.propagate, list(train_log.handlers))
    train_log.setLevel(logging.INFO)
    train_log.propagate = False
    for handler in saved[2]:
        train_log.removeHandler(handler)
    try:
        plan = make_plan(opts, scale)
        for line in describe_plan(plan, opts):
            log.info(line)
        opts.out.mkdir(parents=True, exist_ok=True)
        records: dict[str, dict[int, dict[str, Any]]] = {}
        start = time.perf_counter()
        total = len(plan.specs) * len(plan.seeds)
        for i, (spec, seed) in enumerate(((s, k) for s in plan.specs for k in plan.seeds), 1):
            rec = train_one(plan, spec, seed, opts)
            records.setdefault(spec.name, {})[seed] = rec
            elapsed = time.perf_counter() - start
            eta = elapsed / i * (total - i)
            log.info(
                f"[{i}/{total}] {spec.name} seed {seed}: valid {rec['valid_bpc']:.4f} bpc, "
                f"{rec['wall_s']:.1f} s ({rec['stopped']}) | elapsed {elapsed / 60:.1f} min, "
                f"eta {eta / 60:.1f} min"
            )
        wall = time.perf_counter() - start + plan.probe_s
        return write_outputs(plan, records, opts, wall)
    finally:
        torch.set_num_threads(threads)
        train_log.setLevel(saved[0])
        train_log.propagate = saved[1]
        for handler in saved[2]:
            train_log.addHandler(handler)
