"""`lnrnn compress` / `lnrnn decompress` through ``lnrnn.codec``, with gzip's conventions: FILE <-> FILE.lnrz
beside it, inputs kept, no overwrite without -f, -c/-o, -t, several files, - for stdin/stdout."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from lnrnn.errors import UserError
from lnrnn.serve.cli.streams import echo, progress_bar, read_input, write_output

if TYPE_CHECKING:
    from lnrnn.codec import Header, StepGraph
    from lnrnn.serve.config import Settings

WithModel = Callable[..., argparse.ArgumentParser]


SUFFIX = ".lnrz"


def register(with_model: WithModel) -> None:
    """Add the two subcommands; ``with_model`` adds a parser with the shared model options."""
    from lnrnn.codec import DEFAULT_BLOCK_SIZE

    p = with_model(
        "compress",
        help="compress files losslessly with the model (range coding + adaptive mixing), as gzip does",
        description=f"Compress any bytes: FILE becomes FILE{SUFFIX} beside it and FILE is kept; - (or no "
        "FILE) reads standard input and writes standard output. The same model directory (and, for --format "
        "1, the same lnrnn, onnxruntime, numpy and CPU kind; format 2 decodes anywhere) must decompress it: "
        "the container records the model's fingerprint and a CRC.",
    )
    _common_options(p)
    p.add_argument(
        "--neural-only", action="store_true", help="code with the network alone (no adaptive mixing)"
    )
    p.add_argument(
        "--block-size",
        type=int,
        default=DEFAULT_BLOCK_SIZE,
        help=f"bytes per independently started block (default {DEFAULT_BLOCK_SIZE}): smaller is faster on "
        "short inputs, larger compresses slightly better",
    )
    p.add_argument(
        "--format",
        type=int,
        choices=(1, 2),
        default=2,
        help="2 (default): integer probabilities computed from step.onnx, the same archive and decoding on "
        "any machine and library version (--precision is ignored); 1: float probabilities from the step "
        "graph, decoded only by the same onnxruntime, numpy and CPU kind",
    )
    p.set_defaults(handler=compress)

    p = with_model(
        "decompress",
        help=f"decompress files made by `lnrnn compress` (FILE{SUFFIX} becomes FILE; same model)",
        description=f"Restore the original bytes: FILE{SUFFIX} becomes FILE, FILE{SUFFIX} is kept. Without "
        "--model the archive's model is found by the fingerprint it records, among $LNRNN_MODEL_DIR and the "
        "shipped models; with --model that directory must be the one. Fails with one line (exit 2) for a "
        "model that is not there (naming it when known), a corrupted or truncated file, or decoded bytes "
        "that do not match the stored CRC; with several files the others are still done.",
    )
    _common_options(p)
    p.add_argument(
        "-t",
        "--test",
        action="store_true",
        help="check that each archive decodes (CRC included); write nothing",
    )
    p.set_defaults(handler=decompress)


def _common_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("files", nargs="*", metavar="FILE", help="files to process; - or none: standard input")
    p.add_argument("-c", "--stdout", action="store_true", help="write to standard output, keep no file")
    p.add_argument(
        "-o", "--output", metavar="PATH", help="write to PATH (one input only; - = standard output)"
    )
    p.add_argument("-f", "--force", action="store_true", help="overwrite an existing output file")
    p.add_argument("-q", "--quiet", action="store_true", help="no summary line")


def _jobs(args: argparse.Namespace, target_of: Callable[[str], str]) -> list[tuple[str, str]]:
    """(input, output) pairs; an output of "-" is standard output, "" writes nothing (--test)."""
    files = args.files or ["-"]
    if (args.output or args.stdout) and len(files) > 1:
        raise UserError(f"{'-o' if args.output else '-c'} takes one input; got {len(files)} files")
    if files.count("-") > 1:
        raise UserError("- (standard input) can be named once")
    jobs = []
    for name in files:
        if getattr(args, "test", False):
            out = ""
        elif args.output:
            out = args.output
        elif args.stdout or name == "-":
            out = "-"
        else:
            out = target_of(name)
        jobs.append((name, out))
    return jobs


def _check_target(target: str, source: str, force: bool) -> None:
    if target in ("", "-"):
        return
    path = Path(target)
    if path.exists() and path.resolve() == Path(source).resolve():
        raise UserError(f"{target} is the input itself; choose another output")
    if path.exists() and not force:
        raise UserError(f"{target} already exists; use -f to overwrite it")


def _each(
    args: argparse.Namespace,
    verb: str,
    target_of: Callable[[str], str],
    one: Callable[[str, bytes], tuple[bytes, str]],
) -> int:
    """Run ``one`` (input name, its bytes -> output bytes, summary) on every input: a failing file is one
    line on stderr and exit 2 at the end, and the other files are still done (as gzip does)."""
    failed = 0
    for source, target in _jobs(args, target_of):
        try:
            _check_target(target, source, args.force)
            data, summary = one(source, read_input(source))
            if target:
                write_output(target, data, source=source)
        except UserError as err:
            if len(args.files) <= 1:
                raise  # the usual one-line error and exit 2
            echo(f"lnrnn {verb}: error: {err}", err=True)
            failed += 1
            continue
        if not args.quiet:
            echo(f"lnrnn {verb}: {summary}", err=True)
    return 2 if failed else 0


def _compressed_name(name: str) -> str:
    if name.endswith(SUFFIX):
        raise UserError(f"{name} already ends in {SUFFIX}; use -o to name the output or -c")
    return name + SUFFIX


def _original_name(name: str) -> str:
    if not name.endswith(SUFFIX) or len(name) == len(SUFFIX):
        raise UserError(f"{name} does not end in {SUFFIX}; use -o to name the output or -c")
    return name[: -len(SUFFIX)]


def _codec_settings(args: argparse.Namespace) -> Settings:
    from lnrnn.serve.cli.commands import _settings

    settings = _settings(args)
    if settings.device == "cuda":
        raise UserError(
            "compression runs on the CPU only (the decoder must reproduce the encoder's floats); drop "
            "--device cuda"
        )
    return settings


def _graph(args: argparse.Namespace) -> StepGraph:
    from lnrnn.codec import StepGraph

    settings = _codec_settings(args)
    return StepGraph.load(settings.model_dir, settings.precision)


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}" if n == 1 else f"{n:,} {noun}s"


def _rate(n: int, seconds: float) -> str:
    return f"{n / max(seconds, 1e-9) / 1000:.1f} kB/s"


def adaptive_score(args: argparse.Namespace, data: bytes) -> int:
    """`lnrnn score --adaptive`: the information content `lnrnn compress` codes to (same function)."""
    from lnrnn.codec import information
    from lnrnn.serve.cli.commands import ScoredBy, report_score

    graph = _graph(args)
    nats = information(data, graph, progress=progress_bar("scoring", len(data)))
    cfg = graph.meta.config
    description = f"{cfg.cell} {cfg.layers}x{cfg.hidden}, {graph.precision}, step graph"
    model = ScoredBy(
        graph.model_dir, description, "CPUExecutionProvider", graph.precision, "lnrnn adaptive", True
    )
    return report_score(args, data, nats, model)


def compress(args: argparse.Namespace) -> int:
    from lnrnn.codec import compress as encode

    if args.block_size < 1:
        raise UserError(f"--block-size must be at least 1, got {args.block_size}")
    if args.format == 2:  # derived from the fp32 step.onnx whatever --precision says
        from lnrnn.codec import StepGraph

        graph = StepGraph.load(_codec_settings(args).model_dir, "fp32")
    else:
        graph = _graph(args)
    mode = "neural only" if args.neural_only else "adaptive"
    numbers = "format 2 (integer)" if args.format == 2 else graph.precision

    def one(source: str, data: bytes) -> tuple[bytes, str]:
        start = time.perf_counter()
        result = encode(
            data,
            graph,
            adaptive=not args.neural_only,
            block_size=args.block_size,
            progress=progress_bar("compressing", len(data)),
            version=args.format,
        )
        seconds = time.perf_counter() - start
        bpb = f"{8 * len(result.blob) / len(data):.3f} bits/byte" if data else "empty input"
        layout = f"{_count(result.header.n_blocks, 'block')}, {_count(result.header.lanes, 'lane')}"
        summary = (
            f"{source} {len(data):,} -> {len(result.blob):,} bytes ({bpb}, {mode}, {numbers}, {layout}) in "
            f"{seconds:.1f} s, {_rate(len(data), seconds)}"
        )
        return result.blob, summary

    return _each(args, "compress", _compressed_name, one)


def decompress(args: argparse.Namespace) -> int:
    from lnrnn.codec import decompress as decode
    from lnrnn.codec import unpack

    graphs: dict[tuple[Path, str], StepGraph] = {}  # several archives load each model once

    def graph_for(header: Header) -> StepGraph:
        from lnrnn.codec import ModelMismatch, StepGraph, registry

        settings = _codec_settings(args)
        if args.model_dir is not None:  # the directory given, which decode checks against the header
            model_dir = Path(settings.model_dir)
            step = model_dir / registry.STEP_FILES[header.precision]
            if model_dir.is_dir() and not step.is_file():  # not "use fp32 or auto": the header decides
                raise ModelMismatch(
                    f"compressed with another model: fingerprint {header.fingerprint.hex()[:16]} "
                    f"({header.precision}), but {model_dir} has no {step.name}; {registry.hint(header)}"
                )
        else:  # the one that made it: the configured model or any shipped one with its fingerprint
            model_dir = registry.require(header, first=[settings.model_dir])
        key = (model_dir.resolve(), header.precision)
        if key not in graphs:
            graphs[key] = StepGraph.load(model_dir, header.precision)
        return graphs[key]

    def one(source: str, blob: bytes) -> tuple[bytes, str]:
        header, _ = unpack(blob)  # a bad file fails here, before the model loads
        graph = graph_for(header)
        start = time.perf_counter()
        data = decode(blob, graph, progress=progress_bar("decompressing", header.length))
        seconds = time.perf_counter() - start
        what = "OK" if args.test else f"{len(blob):,} -> {len(data):,} bytes"
        return data, f"{source} {what} in {seconds:.1f} s, {_rate(len(data), seconds)}"

    return _each(args, "decompress", _original_name, one)
