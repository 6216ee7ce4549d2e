"""`lnrnn compress` / `lnrnn decompress`: files (or - for stdin/stdout) through ``lnrnn.codec``."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lnrnn.errors import UserError

if TYPE_CHECKING:
    from lnrnn.codec import StepGraph

PROGRESS_MIN_BYTES = 256 * 1024  # show a progress bar (stderr, TTY only) from this size on
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


def _read(name: str) -> bytes:
    if name == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(name).read_bytes()
    except OSError as err:
        raise UserError(f"cannot read {name}: {err.strerror}") from None


def _write(name: str, data: bytes) -> None:
    """Standard output, or a temporary file in the target's folder renamed over it once complete."""
    if name == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    target = Path(name)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent or ".")
    except OSError as err:
        raise UserError(f"cannot write {name}: {err.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp, target)
    except OSError as err:
        Path(tmp).unlink(missing_ok=True)
        raise UserError(f"cannot write {name}: {err.strerror}") from None


def _graph(args: argparse.Namespace, precision: str | None = None) -> StepGraph:
    from lnrnn.codec import StepGraph
    from lnrnn.serve.cli import _settings

    settings = _settings(args)
    if settings.device == "cuda":
        raise UserError(
            "compression runs on the CPU only (the decoder must reproduce the encoder's floats); drop "
            "--device cuda"
        )
    return StepGraph.load(settings.model_dir, precision or settings.precision)


class _Progress:
    """A one-line progress bar on stderr."""

    def __init__(self, label: str, total: int) -> None:
        self.label, self.total, self.done = label, max(1, total), 0

    def __call__(self, n: int) -> None:
        self.done = min(self.total, self.done + n)
        filled = 30 * self.done // self.total
        bar = "#" * filled + "." * (30 - filled)
        pct = 100 * self.done // self.total
        print(f"\r{self.label} [{bar}] {pct:3d}% of {self.total} bytes", end="", file=sys.stderr)
        if self.done == self.total:
            print(file=sys.stderr)


def _progress(label: str, total: int) -> Any:
    return _Progress(label, total) if total >= PROGRESS_MIN_BYTES and sys.stderr.isatty() else None


def _rate(n: int, seconds: float) -> str:
    return f"{n / max(seconds, 1e-9) / 1000:.1f} kB/s"


def adaptive_score(args: argparse.Namespace, data: bytes) -> int:
    """`lnrnn score --adaptive`: the information content `lnrnn compress` codes to (same function)."""
    from lnrnn.codec import information
    from lnrnn.serve.cli import ScoredBy, report_score

    graph = _graph(args)
    nats = information(data, graph, progress=_progress("scoring", len(data)))
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
    data = _read(args.input)
    graph = _graph(args)
    start = time.perf_counter()
    result = encode(
        data,
        graph,
        adaptive=not args.neural_only,
        block_size=args.block_size,
        progress=_progress("compressing", len(data)),
    )
    seconds = time.perf_counter() - start
    _write(args.output, result.blob)
    bpb = f"{8 * len(result.blob) / len(data):.3f} bits/byte" if data else "empty input"
    mode = "neural only" if args.neural_only else "adaptive"
    print(
        f"lnrnn compress: {args.input} {len(data):,} -> {len(result.blob):,} bytes ({bpb}, {mode}, "
        f"{graph.precision}, {result.header.n_blocks} blocks) in {seconds:.1f} s, "
        f"{_rate(len(data), seconds)}",
        file=sys.stderr,
    )
    return 0


def decompress(args: argparse.Namespace) -> int:
    from lnrnn.codec import decompress as decode
    from lnrnn.codec import unpack

    blob = _read(args.input)
    header, _ = unpack(blob)  # a bad file fails here, before the model loads
    graph = _graph(args, header.precision)
    start = time.perf_counter()
    data = decode(blob, graph, progress=_progress("decompressing", header.length))
    seconds = time.perf_counter() - start
    _write(args.output, data)
    print(
        f"lnrnn decompress: {args.input} {len(blob):,} -> {len(data):,} bytes in {seconds:.1f} s, "
        f"{_rate(len(data), seconds)}",
        file=sys.stderr,
    )
    return 0
