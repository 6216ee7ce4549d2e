"""`lnrnn export`: checkpoint -> verified ONNX model directory (module-level imports stay torch-free)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lnrnn.contract import QUANTIZED_PRECISIONS
from lnrnn.errors import UserError

BITS_PRECISION = {8: "int8", 4: "int4"}  # `lnrnn quantize --bits N` without --precision
PRECISION_BITS = {"int8": 8, "int8w": 8, "int4": 4}


def register(sub: argparse._SubParsersAction) -> None:
    """Add this stage's subcommands to the `lnrnn` parser."""
    parser = sub.add_parser(
        "export",
        help="export a checkpoint to step.onnx + sequence.onnx and verify them against PyTorch",
        description=(
            "Write DIR/step.onnx and DIR/sequence.onnx (plus int8, int8w or int4 copies with --quantize) "
            "with the lnrnn metadata, verify them against the PyTorch model (names, parity, BPC) and write "
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
        "--quantize",
        metavar="KINDS",
        type=_quantize_kinds,
        default=None,
        help="also write quantized graphs, comma-separated: int8 (int8 weights, activations quantized row "
        "by row), int8w (weight-only int8, fp32 arithmetic: the page's device mode) and/or int4 (4-bit "
        "weights, fp32 activations), e.g. int8,int8w",
    )
    parser.add_argument(
        "--verify-data",
        metavar="FILE",
        type=Path,
        default=None,
        help="bytes for the BPC parity check (default: the packaged 10 kB Tiny Shakespeare sample)",
    )
    parser.set_defaults(handler=run_export)

    quant = sub.add_parser(
        "quantize",
        help="(re)write the int8 (or int8w, int4) graphs of an exported model directory",
        description=(
            "Write DIR/step.int8.onnx and DIR/sequence.int8.onnx (--precision int8w: DIR/step.int8w.onnx and "
            "DIR/sequence.int8w.onnx, weight-only; --bits 4 or --precision int4: DIR/step.int4.onnx and "
            "DIR/sequence.int4.onnx, 4-bit weights) from the fp32 graphs in DIR, measure BPC(quantized) - "
            "BPC(fp32) on --data and keep them only within the export's bound (0.01 bits/byte; 0.03 for "
            "int4); updates that part of DIR/export_report.json. Needs no checkpoint. Exits 1 if the files "
            "were not kept, 2 on bad input."
        ),
    )
    quant.add_argument("model", metavar="DIR", type=Path, help="model directory written by `lnrnn export`")
    quant.add_argument(
        "--data",
        metavar="FILE",
        type=Path,
        default=None,
        help="bytes to measure the BPC delta on (default: the packaged 10 kB Tiny Shakespeare sample)",
    )
    quant.add_argument(
        "--precision",
        choices=QUANTIZED_PRECISIONS,
        default=None,
        help="int8 (default: int8 weights and activations), int8w (weight-only int8, fp32 arithmetic) or "
        "int4 (4-bit weights, fp32 activations)",
    )
    quant.add_argument(
        "--bits",
        type=int,
        choices=sorted(BITS_PRECISION),
        default=None,
        help="weight bits: 4 is --precision int4; 8 (the default) is int8, or int8w with --precision int8w",
    )
    quant.add_argument(
        "--block-size",
        type=int,
        default=None,
        help="int4 only: weights per fp16 scale along K, one of 16, 32, 64, 128 (default 64; small models "
        "lose less with 16, for up to 18%% more bytes than 64)",
    )
    quant.add_argument(
        "--max-delta",
        type=float,
        default=None,
        metavar="BITS",
        help="keep the files up to this BPC(quantized) - BPC(fp32) in bits/byte (default: the export's "
        "bound); the delta is recorded in the files and the report either way",
    )
    quant.set_defaults(handler=run_quantize)

    triton = sub.add_parser(
        "export-triton",
        help="write a Triton Inference Server model repository from an exported model directory",
        description=(
            "Write REPO/<name>_step (the step graph with batch-first state, for Triton's sequence batcher "
            "with implicit state) and REPO/<name>_sequence (whole-text scoring, dynamic batching), each "
            "with config.pbtxt and 1/model.onnx. Replaces those two directories. Exits 2 on bad input."
        ),
    )
    triton.add_argument(
        "model", metavar="MODEL_DIR", type=Path, help="model directory written by `lnrnn export`"
    )
    triton.add_argument("--out", metavar="REPO", type=Path, required=True, help="model repository directory")
    triton.add_argument("--name", default="lnrnn", help="model name prefix (default lnrnn)")
    triton.add_argument(
        "--precision",
        choices=("fp32", "int8"),
        default="fp32",
        help="which graphs: fp32 (default; GPUs) or int8 (CPU instances; needs the int8 files)",
    )
    triton.add_argument(
        "--max-batch-size",
        type=int,
        default=64,
        help="Triton max_batch_size: sequences per batch (default 64)",
    )
    triton.set_defaults(handler=run_export_triton)

    mobile = sub.add_parser(
        "export-mobile",
        help="write the ORT-format graphs and operator config that ONNX Runtime's mobile packages load",
        description=(
            "Convert a model directory's graphs to ORT format (.ort) with onnxruntime's converter, plus "
            "required_operators_and_types.config for a reduced build and mobile_report.json (bytes, "
            "operators, opsets). Exits 2 on bad input."
        ),
    )
    mobile.add_argument(
        "model", metavar="MODEL_DIR", type=Path, help="model directory written by `lnrnn export`"
    )
    mobile.add_argument("--out", metavar="DIR", type=Path, required=True, help="output directory")
    mobile.add_argument(
        "--precision",
        choices=("int8", "int4", "fp32", "all"),
        default="all",
        help="which graphs (default all: the int8 and fp32 ones that exist; int8 is 4x smaller, fp32 for "
        "GPUs/NNAPI, int4 7x smaller but needs a recent ONNX Runtime with its com.microsoft operators)",
    )
    mobile.add_argument(
        "--target-platform",
        choices=("arm", "amd64"),
        default="arm",
        help="instruction set the graphs are optimised for (default arm: phones)",
    )
    mobile.set_defaults(handler=run_export_mobile)


def _quantize_kinds(text: str) -> str:
    """``--quantize``: checked when the command line is read, not after the checkpoint has loaded."""
    from lnrnn.export.quantize.directory import quantize_kinds

    try:
        return ",".join(quantize_kinds(text))
    except UserError as err:
        raise argparse.ArgumentTypeError(str(err)) from err


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


def quantize_precision(precision: str | None, bits: int | None) -> str:
    """``lnrnn quantize``'s precision from ``--precision`` and ``--bits`` (either; both must agree)."""
    if bits is None:
        return precision or "int8"
    if precision is None:
        return BITS_PRECISION[bits]
    if precision not in PRECISION_BITS or PRECISION_BITS[precision] != bits:
        raise UserError(f"--bits {bits} contradicts --precision {precision}; pass one of them")
    return precision


def run_quantize(args: argparse.Namespace) -> int:
    from lnrnn.contract import SEQUENCE_FILE, STEP_FILE
    from lnrnn.export.quantize.directory import update_report
    from lnrnn.export.verify.checks import default_verify_data

    precision = quantize_precision(args.precision, args.bits)
    for name in (STEP_FILE, SEQUENCE_FILE):
        if not (args.model / name).is_file():
            raise UserError(f"{args.model / name} does not exist: pass a directory written by `lnrnn export`")
    if args.data is not None and not args.data.is_file():
        raise UserError(f"--data {args.data} is not a file")
    data = default_verify_data() if args.data is None else args.data.read_bytes()
    if not data:
        raise UserError("--data is empty; it needs at least one byte")
    section, lines = update_report(args.model, data, precision, args.block_size, args.max_delta)
    print("\n".join(lines))
    print(f"{precision} ({section['scheme']}): {'kept' if section['kept'] else 'not kept'}")
    return 0 if section["kept"] else 1


def run_export_triton(args: argparse.Namespace) -> int:
    from lnrnn.export.triton import export_triton, run_command

    repo = export_triton(
        args.model, args.out, name=args.name, precision=args.precision, max_batch_size=args.max_batch_size
    )
    print(f"wrote {repo.step} (sequence batcher, implicit state) and {repo.sequence} to {repo.root}")
    for path, size in repo.files.items():
        print(f"  {path}  {size:,} bytes")
    print(f"serve it (not runnable here: no Triton engine) with:\n  {run_command(repo.root)}")
    return 0


def run_export_mobile(args: argparse.Namespace) -> int:
    from lnrnn.export.mobile import export_mobile

    precisions = ("int8", "fp32") if args.precision == "all" else (args.precision,)
    report = export_mobile(args.model, args.out, precisions=precisions, target_platform=args.target_platform)
    print("\n".join(report.lines()))
    return 0
