"""`lnrnn export`: checkpoint -> verified ONNX model directory (module-level imports stay torch-free)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lnrnn.errors import UserError


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add this stage's subcommands to the `lnrnn` parser."""
    parser = sub.add_parser(
        "export",
        help="export a checkpoint to step.onnx + sequence.onnx and verify them against PyTorch",
        description=(
            "Write DIR/step.onnx and DIR/sequence.onnx (plus int8 copies with --quantize int8) with the "
            "lnrnn metadata, verify them against the PyTorch model (names, parity, BPC) and write "
            "DIR/export_report.json. Exits 1 if a check fails, 2 on bad input."
        ),
    )
    parser.add_argument("run", metavar="RUN", type=Path, help="training run directory or checkpoint file")
    parser.add_argument("--out", metavar="DIR", type=Path, required=True, help="output model directory")
    parser.add_argument(
        "--sequence",
        choices=("fast", "generic"),
        default="fast",
        help="sequence graph: fast (layer-wise Scan, default) or generic (Scan around the step graph)",
    )
    parser.add_argument(
        "--quantize", choices=("int8",), default=None, help="also write dynamically quantized int8 graphs"
    )
    parser.add_argument(
        "--verify-data",
        metavar="FILE",
        type=Path,
        default=None,
        help="bytes for the BPC parity check (default: the packaged 10 kB Tiny Shakespeare sample)",
    )
    parser.set_defaults(handler=run_export)


def run_export(args: argparse.Namespace) -> int:
    from lnrnn.export.api import export_run
    from lnrnn.export.errors import VerificationError

    data = None
    if args.verify_data is not None:
        if not args.verify_data.is_file():
            raise UserError(f"verify data {args.verify_data} is not a file")
        data = args.verify_data.read_bytes()
    try:
        report = export_run(
            args.run, args.out, sequence=args.sequence, quantize=args.quantize, verify_data=data
        )
    except VerificationError as err:
        if err.report is not None:
            print("\n".join(err.report.lines()))
        print(f"lnrnn export: error: {err}", file=sys.stderr)
        return 1
    cfg = report.config
    emb = cfg["embedding"] or cfg["hidden"]
    print(
        f"exported {cfg['cell']}/{cfg['norm']} L={cfg['layers']} H={cfg['hidden']} E={emb} from {args.run} "
        f"-> {args.out} (sequence graph: {report.sequence})"
    )
    print("\n".join(report.lines()))
    sizes = ", ".join(f"{name} {size / 1e6:.2f} MB" for name, size in report.files.items())
    timings = ", ".join(f"{name} {sec:.2f} s" for name, sec in report.timings_s.items())
    print(f"files: {sizes}")
    print(f"timings: {timings}")
    print(f"report: {Path(report.out_dir) / 'export_report.json'}")
    return 0
