"""`lnrnn train|eval|plot|experiment` (module-level imports stay torch-free; handlers import torch)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from lnrnn.errors import UserError
from lnrnn.train.experiments import cli as experiments_cli

TRAIN_EPILOG = """\
Precedence: dataclass defaults < --preset < explicit flags (--init-from RUN: RUN's architecture
sits under the flags and its best weights are the start).
--resume continues the run in --out from its config.json: repeat the run's command with --resume, or give
only --resume. What --preset and the flags set must agree with that config.json, except --max-steps and
--max-minutes, which may change to extend the run; a difference is refused, naming the flag and both values.
Exit status: 0 done (also after SIGTERM: `last` and resume.pt are saved first), 130 after SIGINT (saved too),
2 bad input (one line on stderr).
Multi-process: torchrun --nproc_per_node N -m lnrnn train ... (DDP; gloo on CPU, nccl on CUDA).
"""
Group = argparse.ArgumentParser | argparse._ArgumentGroup


def _flag(parser: Group, name: str, kind: type, help: str, dest: str | None = None) -> None:
    parser.add_argument(name, type=kind, default=None, help=help, dest=dest)


def _switch(parser: Group, name: str, dest: str, value: bool, help: str) -> None:
    parser.add_argument(name, dest=dest, action="store_const", const=value, default=None, help=help)


def _choice(parser: Group, name: str, choices: list[str], help: str) -> None:
    parser.add_argument(name, default=None, choices=choices, help=help)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add this stage's subcommands to the `lnrnn` parser."""
    _register_train(sub)
    _register_eval(sub)
    _register_plot(sub)
    experiments_cli.register(sub)


def _register_train(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "train",
        help="train a byte-level LN-RNN language model",
        epilog=TRAIN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _run_arguments(p)
    _model_arguments(p.add_argument_group("model"))
    _regularisation_arguments(p.add_argument_group("regularisation (AWD-LSTM)"))
    optimisation = p.add_argument_group("optimisation")
    _optimisation_arguments(optimisation)
    _runtime_arguments(optimisation)
    p.set_defaults(handler=run_train)


def _run_arguments(p: argparse.ArgumentParser) -> None:
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


def _model_arguments(m: Group) -> None:
    _choice(m, "--cell", ["gru", "lstm", "mgu"], "recurrent cell")
    _choice(m, "--norm", ["layer", "none", "batch"], "normalisation")
    _flag(m, "--layers", int, "stacked layers")
    _flag(m, "--hidden", int, "H: units per layer")
    _flag(m, "--embedding", int, "E: embedding size (0 = H); the top projects H -> E when they differ")
    _switch(m, "--sum-layers", "sum_layers", True, "feed the sum of all layer outputs to the output layer")
    _switch(m, "--no-learned-init", "learned_init", False, "start from zeros instead of a learned state")
    _choice(m, "--init", ["xavier", "orthogonal", "variance_scaling"], "weights")
    _switch(m, "--no-hoist", "hoist", False, "naive loop: input path per step (benchmark only)")


def _regularisation_arguments(r: Group) -> None:
    _flag(r, "--dropout-embedding", float, "drop whole byte embeddings (dropoute)")
    _flag(r, "--dropout-input", float, "locked dropout on the first layer input (dropouti)")
    _flag(r, "--dropout-hidden", float, "locked dropout between layers (dropouth)")
    _flag(r, "--dropout-output", float, "locked dropout before the output layer (dropout)")
    _flag(r, "--weight-drop", float, "DropConnect on hidden-to-hidden weights (wdrop)")
    _flag(r, "--ar", float, "activation regularisation alpha", dest="ar")
    _flag(r, "--tar", float, "temporal activation regularisation beta", dest="tar")


def _optimisation_arguments(o: Group) -> None:
    _choice(o, "--optimizer", ["adam", "ntasgd"], "Adam or NT-ASGD")
    _flag(o, "--lr", float, "learning rate")
    _flag(o, "--weight-decay", float, "L2 weight decay")
    _flag(o, "--clip", float, "gradient-norm clipping threshold (0 = off)")
    _flag(o, "--batch-size", int, "B: contiguous streams (global)")
    _flag(o, "--bptt", int, "truncated BPTT length")
    _switch(o, "--random-bptt", "random_bptt", True, "AWD-LSTM random BPTT length (lr scaled by len/bptt)")
    _flag(o, "--nonmono", int, "NT-ASGD non-monotone interval")
    _choice(o, "--schedule", ["constant", "cosine"], "cosine: lr to lr/10 over max steps")
    _flag(o, "--lr-decay", float, "lr factor on a validation plateau (1 = off)")
    _flag(o, "--patience", int, "plateau checks tolerated before decaying")
    _flag(o, "--early-stop", int, "stop after this many checks without improvement (0 = off)")
    _flag(o, "--max-steps", int, "optimiser steps (0 = no limit)")
    _flag(o, "--max-minutes", float, "wall-clock limit in minutes (0 = none)")


def _runtime_arguments(o: Group) -> None:
    _flag(o, "--eval-interval", int, "steps between validation checks")
    _flag(o, "--log-interval", int, "steps between metrics.jsonl train records")
    _flag(o, "--eval-chunk", int, "tokens per evaluation chunk")
    _flag(o, "--seed", int, "random seed (CPU runs are reproducible)")
    _choice(o, "--device", ["auto", "cpu", "cuda"], "auto picks CUDA if present")
    _switch(o, "--bf16", "bf16", True, "bfloat16 autocast (CUDA, or CPU with AMX/AVX512-BF16)")
    _switch(o, "--compile", "compile", True, "torch.compile each cell's step (CPU: needs g++)")
    o.add_argument(
        "--init-from",
        dest="init_from",
        default=None,
        help="fine-tune: start from this run's best weights, or an exported model's (a directory with "
        "step.onnx, or a shipped model's name: default); the architecture is taken from it",
    )


def _register_eval(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    e = sub.add_parser("eval", help="exact BPC of a file with the PyTorch model")
    e.add_argument("run", type=Path, help="run directory (or a .safetensors/.json checkpoint)")
    e.add_argument("--data", required=True, type=Path, help="file to score as one document [BOS, bytes...]")
    e.add_argument("--checkpoint", default="best", choices=["best", "last"], help="which checkpoint")
    e.add_argument("--chunk", type=int, default=4096, help="tokens per chunk (state carried)")
    e.add_argument("--json", action="store_true", help="print one JSON object")
    e.set_defaults(handler=run_eval)


def _register_plot(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    pl = sub.add_parser("plot", help="learning curves of a run as a PNG")
    pl.add_argument("run", type=Path, help="run directory")
    pl.add_argument("--out", type=Path, default=None, help="PNG path (default RUN/curves.png)")
    pl.set_defaults(handler=run_plot)


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


def run_train(args: argparse.Namespace) -> int:
    from lnrnn.train.cli_config import new_run_config, resume_config
    from lnrnn.train.trainer import train

    model_cfg, cfg = resume_config(args) if args.resume else new_run_config(args)
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
