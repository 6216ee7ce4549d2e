"""The ``lnrnn`` command. Each stage registers its own subcommands; heavy imports happen inside handlers.

``lnrnn train|eval|plot`` need the ``train`` extra (torch); ``lnrnn export`` needs ``train`` too;
``lnrnn serve|score|predict|generate`` need only ``serve`` and ``cpu``/``gpu`` (no torch).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from lnrnn import __version__
from lnrnn.errors import UserError

EXTRA_FOR_MODULE = {
    "torch": "train",
    "onnx": "train",
    "onnxscript": "train",
    "safetensors": "train",
    "matplotlib": "train",
    "fastapi": "serve",
    "uvicorn": "serve",
    "pydantic": "serve",
    "pydantic_settings": "serve",
    "prometheus_client": "serve",
    "constriction": "serve",
    "onnxruntime": "cpu",
}

Handler = Callable[[argparse.Namespace], int]


def build_parser() -> argparse.ArgumentParser:
    from lnrnn.export import cli as export_cli
    from lnrnn.serve.cli import commands as serve_cli
    from lnrnn.train import cli as train_cli

    parser = argparse.ArgumentParser(
        prog="lnrnn",
        description="Layer-norm GRU/LSTM byte-level language models: train, export to ONNX, serve.",
    )
    parser.add_argument("--version", action="version", version=f"lnrnn {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for stage in (train_cli, export_cli, serve_cli):
        stage.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except UserError as err:
        print(f"lnrnn {args.command}: error: {err}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as err:
        top = (err.name or "").split(".")[0]
        if top not in EXTRA_FOR_MODULE:
            raise
        extra = EXTRA_FOR_MODULE[top]
        print(
            f"lnrnn {args.command}: error: needs {top!r}; install it with: pip install 'lnrnn[{extra}]'",
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt:
        print(f"lnrnn {args.command}: interrupted", file=sys.stderr)
        return 130
