"""`lnrnn compress` / `lnrnn decompress`: files (or - for stdin/stdout) through ``lnrnn.codec``."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from lnrnn.errors import UserError
from lnrnn.serve.cli.streams import echo, progress_bar, read_input, write_output

if TYPE_CHECKING:
    from lnrnn.codec import StepGraph

WithModel = Callable[..., argparse.ArgumentParser]


def register(with_model: WithModel) -> None:
    """Add the two subcommands; ``with_model`` adds a parser with the shared model options."""
    from lnrnn.codec import DEFAULT_BLOCK_SIZE

    p = with_model(
        "compress",
        help="compress a file losslessly with the model (range coding + adaptive mixing)",
        description="Compress any bytes. The same model directory (and lnrnn, onnxruntime, numpy and CPU "
        "kind) must decompress it: the container records the model's fingerprint and a CRC.",
    )
    p.add_argument("input", help="file to compress, or - for standard input")
    p.add_argument("output", help="where to write the container, or - for standard output")
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
    p.set_defaults(handler=compress)

    p = with_model(
        "decompress",
        help="decompress a file made by `lnrnn compress` (same model)",
        description="Restore the original bytes. Fails with one line (exit 2) for another model, a "
        "corrupted or truncated file, or decoded bytes that do not match the stored CRC.",
    )
    p.add_argument("input", help="file made by `lnrnn compress`, or - for standard input")
    p.add_argument("output", help="where to write the original bytes, or - for standard output")
    p.set_defaults(handler=decompress)


def _graph(args: argparse.Namespace, precision: str | None = None) -> StepGraph:
    from lnrnn.codec import StepGraph
    from lnrnn.serve.cli.commands import _settings

    settings = _settings(args)
    if settings.device == "cuda":
        raise UserError(
            "compression runs on the CPU only (the decoder must reproduce the encoder's floats); drop "
            "--device cuda"
        )
    return StepGraph.load(settings.model_dir, precision or settings.precision)


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
    data = read_input(args.input)
    graph = _graph(args)
    start = time.perf_counter()
    result = encode(
        data,
        graph,
        adaptive=not args.neural_only,
        block_size=args.block_size,
        progress=progress_bar("compressing", len(data)),
    )
    seconds = time.perf_counter() - start
    write_output(args.output, result.blob)
    bpb = f"{8 * len(result.blob) / len(data):.3f} bits/byte" if data else "empty input"
    mode = "neural only" if args.neural_only else "adaptive"
    echo(
        f"lnrnn compress: {args.input} {len(data):,} -> {len(result.blob):,} bytes ({bpb}, {mode}, "
        f"{graph.precision}, {result.header.n_blocks} blocks) in {seconds:.1f} s, "
        f"{_rate(len(data), seconds)}",
        err=True,
    )
    return 0


def decompress(args: argparse.Namespace) -> int:
    from lnrnn.codec import decompress as decode
    from lnrnn.codec import unpack

    blob = read_input(args.input)
    header, _ = unpack(blob)  # a bad file fails here, before the model loads
    graph = _graph(args, header.precision)
    start = time.perf_counter()
    data = decode(blob, graph, progress=progress_bar("decompressing", header.length))
    seconds = time.perf_counter() - start
    write_output(args.output, data)
    echo(
        f"lnrnn decompress: {args.input} {len(blob):,} -> {len(data):,} bytes in {seconds:.1f} s, "
        f"{_rate(len(data), seconds)}",
        err=True,
    )
    return 0
