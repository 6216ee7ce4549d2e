"""`lnrnn experiment NAME` (module-level imports stay torch-free; the runner is imported by the handler)."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

DEFAULT_DATA = Path("../shared/data/tinyshakespeare/input.txt")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``experiment`` subcommand to the `lnrnn` parser."""
    x = sub.add_parser("experiment", help="reproduce the LN/BN, cell and initialiser claims over seeds")
    x.add_argument("name", help="experiment to run: seeds")
    x.add_argument("--quick", action="store_true", help="tiny models, few steps (~90 s): a smoke test")
    x.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output dir (default docs/experiments; quick: runs/experiment-quick)",
    )
    x.add_argument("--data", type=Path, default=DEFAULT_DATA, help="corpus")
    x.add_argument("--budget-minutes", type=float, default=None, help="total time (default 60; quick 1.5)")
    x.add_argument("--seeds", type=int, default=None, help="seeds per config (default 3; quick 2)")
    x.add_argument("--steps", type=int, default=None, help="fixed steps per run instead of the budget rule")
    x.add_argument("--threads", type=int, default=None, help="torch threads (default 2; quick 1)")
    x.set_defaults(handler=run_experiment)


def command_line(args: argparse.Namespace) -> str:
    """The command as recorded in ``results.json`` (only the options that were given)."""
    flags = {"--out": args.out, "--data": args.data, "--budget-minutes": args.budget_minutes}
    flags.update({"--seeds": args.seeds, "--steps": args.steps, "--threads": args.threads})
    return " ".join(
        ["lnrnn experiment", args.name, *(["--quick"] if args.quick else [])]
        + [f"{k} {v}" for k, v in flags.items() if v is not None]
    )


def run_experiment(args: argparse.Namespace) -> int:
    from lnrnn.train.experiments.runner import Options
    from lnrnn.train.experiments.runner import run_experiment as run

    handler = logging.StreamHandler(sys.stdout)
    logger = logging.getLogger("lnrnn.experiment")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    default = Path("runs/experiment-quick" if args.quick else "docs/experiments")
    opts = Options(args.name, args.out or default, args.data, args.quick, args.seeds, args.budget_minutes)
    opts.steps, opts.threads, opts.command = args.steps, args.threads, command_line(args)
    try:
        paths = run(opts)
    finally:
        logger.removeHandler(handler)
    for what, path in paths.items():
        print(f"wrote {what}: {path}")
    return 0
