"""`lnrnn train|eval|plot` (module-level imports stay torch-free; torch is imported inside the handlers)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from lnrnn.errors import UserError

TRAIN_EPILOG = """\
Precedence: dataclass defaults < --preset < explicit flags (--init-from RUN: RUN's architecture
sits under the flags and its best weights are the start). With --resume, the run's config.json is the base
and only training flags (e.g. --max-steps, --max-minutes) may change.
Exit status: 0 done (also after SIGTERM: `last` and resume.pt are saved first), 130 after SIGINT (saved too),
2 bad input (one line on stderr).
Multi-process: torchrun --nproc_per_node N -m lnrnn train ... (DDP; gloo on CPU, nccl on CUDA).
"""


def _flag(parser: argparse.ArgumentParser, name: str, kind: type, help: str, dest: str | None = None) -> None:
    parser.add_argument(name, type=kind, default=None, help=help, dest=dest)


def _switch(parser: argparse.ArgumentParser, name: str, dest: str, value: bool, help: str) -> None:
    parser.add_argument(name, dest=dest, action="store_const", const=value, default=None, help=help)


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add this stage's subcommands to the `lnrnn` parser."""
    p = sub.add_parser(
        "train",
        help="train a byte-level LN-RNN language model",
        epilog=TRAIN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--data", default=None, help="corpus file (90/5/5 split; text8/enwik8: 90M/5M/5M) or directory"
    )
    p.add_argument("--out", required=True, type=Path, help="run directory to write")
    p.add_argument(
        "--preset",
        default=None,
        help="tiny | small | shakespeare | mix | mix-finetune | hafner-text8 | awd-enwik8",
    )
    p.add_argument("--resume", action="store_true", help="continue the run in --out from resume.pt")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _flag(p, "--split", str, "train,valid,test fractions of a single file, e.g. 0.9,0.05,0.05")
    m = p.add_argument_group("model")
    m.add_argument("--cell", default=None, choices=["gru", "lstm", "mgu"], help="recurrent cell")
    m.add_argument("--norm", default=None, choices=["layer", "none", "batch"], help="normalisation")
    _flag(m, "--layers", int, "stacked layers")
    _flag(m, "--hidden", int, "H: units per layer")
    _flag(m, "--embedding", int, "E: embedding size (0 = H); the top projects H -> E when they differ")
    _switch(m, "--sum-layers", "sum_layers", True, "feed the sum of all layer outputs to the output layer")
    _switch(m, "--no-learned-init", "learned_init", False, "start from zeros instead of a learned state")
    m.add_argument(
        "--init", default=None, choices=["xavier", "orthogonal", "variance_scaling"], help="weights"
    )
    _switch(m, "--no-hoist", "hoist", False, "naive loop: input path per step (benchmark only)")
    r = p.add_argument_group("regularisation (AWD-LSTM)")
    _flag(r, "--dropout-embedding", float, "drop whole byte embeddings (dropoute)")
    _flag(r, "--dropout-input", float, "locked dropout on the first layer input (dropouti)")
    _flag(r, "--dropout-hidden", float, "locked dropout between layers (dropouth)")
    _flag(r, "--dropout-output", float, "locked dropout before the output layer (dropout)")
    _flag(r, "--weight-drop", float, "DropConnect on hidden-to-hidden weights (wdrop)")
    _flag(r, "--ar", float, "activation regularisation alpha", dest="ar")
    _flag(r, "--tar", float, "temporal activation regularisation beta", dest="tar")
    o = p.add_argument_group("optimisation")
    o.add_argument("--optimizer", default=None, choices=["adam", "ntasgd"], help="Adam or NT-ASGD")
    _flag(o, "--lr", float, "learning rate")
    _flag(o, "--weight-decay", float, "L2 weight decay")
    _flag(o, "--clip", float, "gradient-norm clipping threshold (0 = off)")
    _flag(o, "--batch-size", int, "B: contiguous streams (global)")
    _flag(o, "--bptt", int, "truncated BPTT length")
    _switch(o, "--random-bptt", "random_bptt", True, "AWD-LSTM random BPTT length (lr scaled by len/bptt)")
    _flag(o, "--nonmono", int, "NT-ASGD non-monotone interval")
    o.add_argument(
        "--schedule", default=None, choices=["constant", "cosine"], help="cosine: lr to lr/10 over max steps"
    )
    _flag(o, "--lr-decay", float, "lr factor on a validation plateau (1 = off)")
    _flag(o, "--patience", int, "plateau checks tolerated before decaying")
    _flag(o, "--early-stop", int, "stop after this many checks without improvement (0 = off)")
    _flag(o, "--max-steps", int, "optimiser steps (0 = no limit)")
    _flag(o, "--max-minutes", float, "wall-clock limit in minutes (0 = none)")
    _flag(o, "--eval-interval", int, "steps between validation checks")
    _flag(o, "--log-interval", int, "steps between metrics.jsonl train records")
    _flag(o, "--eval-chunk", int, "tokens per evaluation chunk")
    _flag(o, "--seed", int, "random seed (CPU runs are reproducible)")
    o.add_argument(
        "--device", default=None, choices=["auto", "cpu", "cuda"], help="auto picks CUDA if present"
    )
    _switch(o, "--bf16", "bf16", True, "bfloat16 autocast (CUDA, or CPU with AMX/AVX512-BF16)")
    _switch(o, "--compile", "compile", True, "torch.compile each cell's step (CPU: needs g++)")
    o.add_argument(
        "--init-from",
        dest="init_from",
        default=None,
        help="fine-tune: start from this run's best weights (architecture taken from it)",
    )
    p.set_defaults(handler=run_train)

    e = sub.add_parser("eval", help="exact BPC of a file with the PyTorch model")
    e.add_argument("run", type=Path, help="run directory (or a .safetensors/.json checkpoint)")
    e.add_argument("--data", required=True, type=Path, help="file to score as one document [BOS, bytes...]")
    e.add_argument("--checkpoint", default="best", choices=["best", "last"], help="which checkpoint")
    e.add_argument("--chunk", type=int, default=4096, help="tokens per chunk (state carried)")
    e.add_argument("--json", action="store_true", help="print one JSON object")
    e.set_defaults(handler=run_eval)

    pl = sub.add_parser("plot", help="learning curves of a run as a PNG")
    pl.add_argument("run", type=Path, help="run directory")
    pl.add_argument("--out", type=Path, default=None, help="PNG path (default RUN/curves.png)")
    pl.set_defaults(handler=run_plot)

    x = sub.add_parser("experiment", help="reproduce the LN/BN, cell and initialiser claims over seeds")
    x.add_argument("name", help="experiment to run: seeds")
    x.add_argument("--quick", action="store_true", help="tiny models, few steps (~90 s): a smoke test")
    x.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output dir (default docs/experiments; quick: runs/experiment-quick)",
    )
    x.add_argument(
        "--data", type=Path, default=Path("../shared/data/tinyshakespeare/input.txt"), help="corpus"
    )
    x.add_argument("--budget-minutes", type=float, default=None, help="total time (default 60; quick 1.5)")
    x.add_argument("--seeds", type=int, default=None, help="seeds per config (default 3; quick 2)")
    x.add_argument("--steps", type=int, default=None, help="fixed steps per run instead of the budget rule")
    x.add_argument("--threads", type=int, default=None, help="torch threads (default 2; quick 1)")
    x.set_defaults(handler=run_experiment)


NOT_CONFIG = {"out", "preset", "resume", "quiet", "handler", "command"}


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    return {k: v for k, v in vars(args).items() if k not in NOT_CONFIG and v is not None}


def _setup_logging() -> None:
    from tqdm import tqdm

    class TqdmHandler(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            tqdm.write(self.format(record), file=sys.stdout)
            sys.stdout.flush()

    logger = logging.getLogger("lnrnn.train")
    for h in [h for h in logger.handlers if type(h).__name__ == "TqdmHandler"]:
        logger.removeHandler(h)
    logger.addHandler(TqdmHandler())
    logger.setLevel(logging.INFO)
    logger.propagate = False


def _resume_config(args: argparse.Namespace) -> tuple[Any, Any]:
    from lnrnn.train.presets import MODEL_KEYS, resolve

    if args.preset is not None:
        raise UserError("--preset cannot be combined with --resume (the run's config.json is used)")
    path = args.out / "config.json"
    if not path.is_file():
        raise UserError(f"--resume: no config.json in {args.out}")
    saved = json.loads(path.read_text(encoding="utf-8"))
    overrides = _overrides(args)
    changed = sorted(k for k in overrides if k in MODEL_KEYS and overrides[k] != saved["model"].get(k))
    if changed:
        raise UserError(f"--resume cannot change the model ({', '.join(changed)})")
    return resolve(None, {**saved["model"], **saved["train"], **overrides})


def _init_architecture(args: argparse.Namespace) -> dict[str, Any]:
    """With --init-from, the source run's architecture (explicit flags may not contradict it)."""
    from lnrnn.train.presets import FINETUNE_PRESETS

    if args.init_from is None:
        if args.preset in FINETUNE_PRESETS:
            raise UserError(f"--preset {args.preset} fine-tunes a trained run: add --init-from RUN")
        return {}
    from lnrnn.train.checkpoint import checkpoint_paths, read_meta
    from lnrnn.train.model import ARCHITECTURE_KEYS

    source = Path(args.init_from)
    if not source.exists():
        raise UserError(f"--init-from: {source} does not exist")
    args.init_from = str(source.resolve())  # config.json records where the weights came from
    saved = read_meta(checkpoint_paths(source)[1]).get("model", {})
    arch = {k: saved[k] for k in ARCHITECTURE_KEYS if k in saved}
    given = _overrides(args)
    changed = sorted(k for k in arch if k in given and given[k] != arch[k])
    if changed:
        raise UserError(f"--init-from {source}: its weights fix {', '.join(changed)}; drop those flags")
    return arch


def run_train(args: argparse.Namespace) -> int:
    from lnrnn.train.presets import resolve
    from lnrnn.train.trainer import train

    if args.resume:
        model_cfg, cfg = _resume_config(args)
    else:
        if args.data is None:
            raise UserError("--data is required (a corpus file or a directory of train/valid/test files)")
        model_cfg, cfg = resolve(args.preset, {**_init_architecture(args), **_overrides(args)})
    _setup_logging()
    result = train(model_cfg, cfg, args.out, resume=args.resume, quiet=args.quiet)
    return result.exit_code


def run_eval(args: argparse.Namespace) -> int:
    from lnrnn.bpc import LN2, bits_per_byte
    from lnrnn.train.checkpoint import load_model
    from lnrnn.train.data import read_bytes
    from lnrnn.train.evaluate import evaluate_bytes

    if args.chunk < 1:
        raise UserError(f"--chunk must be >= 1, got {args.chunk}")
    data = read_bytes(args.data)
    model, meta = load_model(args.run, args.checkpoint)
    nats, n = evaluate_bytes(model, data, args.chunk)
    bpc = bits_per_byte(nats, n)
    if args.json:
        record = {
            "file": str(args.data),
            "bytes": n,
            "nats": nats,
            "bits": nats / LN2,
            "bpc": bpc,
            "checkpoint": args.checkpoint,
            "step": meta.get("step"),
        }
        print(json.dumps(record))
    else:
        print(
            f"{args.data}: {n:,} bytes | {nats / LN2:,.1f} bits | {bpc:.4f} bpc "
            f"({args.checkpoint}, step {meta.get('step')})"
        )
    return 0


def run_plot(args: argparse.Namespace) -> int:
    from lnrnn.train.plot import plot_run

    out = plot_run(args.run, args.out)
    print(f"wrote {out}")
    return 0


def run_experiment(args: argparse.Namespace) -> int:
    from lnrnn.train.experiment import Options
    from lnrnn.train.experiment import run_experiment as run

    handler = logging.StreamHandler(sys.stdout)
    logger = logging.getLogger("lnrnn.experiment")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    default = Path("runs/experiment-quick" if args.quick else "docs/experiments")
    flags = {"--out": args.out, "--data": args.data, "--budget-minutes": args.budget_minutes}
    flags.update({"--seeds": args.seeds, "--steps": args.steps, "--threads": args.threads})
    command = " ".join(
        ["lnrnn experiment", args.name, *(["--quick"] if args.quick else [])]
        + [f"{k} {v}" for k, v in flags.items() if v is not None]
    )
    opts = Options(args.name, args.out or default, args.data, args.quick, args.seeds, args.budget_minutes)
    opts.steps, opts.threads, opts.command = args.steps, args.threads, command
    try:
        paths = run(opts)
    finally:
        logger.removeHandler(handler)
    for what, path in paths.items():
        print(f"wrote {what}: {path}")
    return 0
