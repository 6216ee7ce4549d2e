"""`lnrnn serve|score|predict|generate`: the serve stage's subcommands (torch-free, lazy heavy imports)."""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lnrnn.errors import UserError
from lnrnn.serve.cli import complete as complete_cli
from lnrnn.serve.cli import compress as compress_cli
from lnrnn.serve.cli.streams import echo, progress_bar, read_input

if TYPE_CHECKING:
    from lnrnn.serve.config import Settings
    from lnrnn.serve.engine.runtime import Runtime


def register(sub: argparse._SubParsersAction) -> None:
    """Add this stage's subcommands to the `lnrnn` parser."""
    model = argparse.ArgumentParser(add_help=False)
    model.add_argument(
        "--device", choices=("auto", "cpu", "cuda"), help="ONNX Runtime device (default: auto)"
    )
    model.add_argument("--threads", type=int, help="ORT intra-op threads (default 1; 0 = one per core)")
    model.add_argument(
        "--precision",
        choices=("auto", "fp32", "int8", "int8w", "int4"),
        help="model files: auto (default) = int8 on CPU when the export kept them, else fp32; int8w = "
        "weight-only int8 (fp32 arithmetic: the page's device mode computes the same numbers); int4 = "
        "4-bit weights, fp32 activations",
    )

    p = sub.add_parser(
        "serve",
        parents=[model],
        help="serve a model over HTTP (FastAPI + ONNX Runtime)",
        description="Start the HTTP API (docs at /docs). Also configurable by LNRNN_* environment variables.",
    )
    p.add_argument(
        "model_dir",
        nargs="?",
        help="model directory or shipped model name (ladder-1m, ladder-256k; broad in a checkout; default: "
        "$LNRNN_MODEL_DIR, else the shipped models/default)",
    )
    p.add_argument("--host", help="bind address (default 127.0.0.1; use 0.0.0.0 to listen on all interfaces)")
    p.add_argument("--port", type=int, help="port (default 8000)")
    p.add_argument(
        "--log-level", choices=("critical", "error", "warning", "info", "debug"), help="uvicorn log level"
    )
    p.add_argument(
        "--max-sessions",
        type=int,
        help="server-held sessions at most (default 1000; LNRNN_MAX_SESSIONS): a new one evicts the least "
        "recently used idle one, 429 when all are busy",
    )
    p.add_argument(
        "--batch-streams",
        type=int,
        help="most streams of concurrent requests in one shared graph call (default 32; "
        "LNRNN_BATCH_STREAMS); 1 = no batching",
    )
    p.add_argument(
        "--batch-wait-ms",
        type=float,
        help="how long an idle batcher waits for requests being served to join a call (default 2; "
        "LNRNN_BATCH_WAIT_MS; never when a request is alone); 0 = never",
    )
    p.add_argument(
        "--session-ttl-s",
        type=float,
        help="delete a session idle this many seconds (default 600; LNRNN_SESSION_TTL_S)",
    )
    p.set_defaults(handler=serve)

    def with_model(name: str, **kw: Any) -> argparse.ArgumentParser:
        parser = sub.add_parser(name, parents=[model], **kw)
        parser.add_argument(
            "--model",
            dest="model_dir",
            help="model directory or shipped model name (ladder-1m, ladder-256k; broad in a checkout; "
            "default: $LNRNN_MODEL_DIR, else the shipped models/default)",
        )
        return parser

    p = with_model("score", help="bits per byte of a file, next to gzip, bzip2 and xz")
    p.add_argument("file", help="file to score, or - for standard input")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.add_argument(
        "--adaptive",
        action="store_true",
        help="score with the model `lnrnn compress` codes with (network + online context mixing)",
    )
    p.set_defaults(handler=score)

    p = with_model("predict", help="most likely next characters after TEXT")
    p.add_argument("text", help="the context (may be empty: '')")
    p.add_argument("--top-k", type=int, default=5, help="how many characters to list (default 5)")
    p.add_argument("--temperature", type=float, default=1.0, help="divides the log-probabilities (default 1)")
    p.set_defaults(handler=predict)

    p = with_model("generate", help="sample a continuation of PROMPT")
    p.add_argument("prompt", help="text to continue (may be empty: '')")
    p.add_argument("--max-chars", type=int, default=200, help="characters to generate (default 200)")
    p.add_argument("--temperature", type=float, default=1.0, help="sampling temperature (default 1)")
    p.add_argument(
        "--top-k", type=int, default=0, help="sample among the k most likely bytes; 0 = all (default)"
    )
    p.add_argument("--seed", type=int, help="random seed: the same seed gives the same text")
    p.set_defaults(handler=generate)

    compress_cli.register(with_model)
    complete_cli.register(with_model, lambda args: _load(_settings(args)))


def _settings(args: argparse.Namespace, *names: str) -> Settings:
    from pydantic import ValidationError

    from lnrnn.serve.config import Settings

    overrides = {
        n: getattr(args, n)
        for n in ("model_dir", "device", "threads", "precision", *names)
        if getattr(args, n, None) is not None
    }
    try:
        return Settings(**overrides)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        if not where:  # a check across settings: its message names the variable
            raise UserError(f"bad setting: {first['msg'].removeprefix('Value error, ')}") from None
        raise UserError(
            f"bad setting {where}: {first['msg']} (check the flag or LNRNN_{where.upper()})"
        ) from None


def _load(settings: Settings) -> Runtime:
    from lnrnn.serve.app import load_runtime
    from lnrnn.serve.engine.runtime import ModelLoadError

    try:
        return load_runtime(settings)
    except ModelLoadError as err:
        raise UserError(str(err)) from None


def serve(args: argparse.Namespace) -> int:
    """Serve until SIGTERM/SIGINT. SIGTERM: stop accepting, finish in-flight requests, exit 0."""
    import functools
    import signal

    import uvicorn

    from lnrnn.serve.app import create_app

    names = ("host", "port", "log_level", "max_sessions", "session_ttl_s", "batch_streams", "batch_wait_ms")
    settings = _settings(args, *names)
    runtime = _load(settings)  # fail fast, with one line, before binding the port
    batching = f"up to {settings.batch_streams} streams per call" if settings.batch_streams > 1 else "off"
    echo(
        f"lnrnn: serving {runtime.model_dir} ({runtime.describe()}) on http://{settings.host}:{settings.port}"
        f"; batching {batching}",
        err=True,
    )
    factory = functools.partial(create_app, settings, runtime)
    config = uvicorn.Config(
        factory,
        factory=True,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        timeout_graceful_shutdown=settings.shutdown_timeout_s or None,
    )
    # uvicorn re-raises the signal it caught once its graceful shutdown is done. For SIGTERM that would
    # end the process with status 143; a no-op handler underneath makes a drained shutdown exit 0.
    previous = signal.signal(signal.SIGTERM, lambda *_: None)
    try:
        uvicorn.Server(config).run()
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0


def score(args: argparse.Namespace) -> int:
    data = read_input(args.file)
    if not data:
        raise UserError(f"{args.file} is empty; there is nothing to score")
    if args.adaptive:
        return compress_cli.adaptive_score(args, data)
    runtime = _load(_settings(args))
    progress = progress_bar("scoring", len(data) + 1)
    scored = runtime.score(data, progress=progress)
    model = ScoredBy(runtime.model_dir, runtime.describe(), runtime.provider, runtime.precision)
    return report_score(args, data, scored.nats, model)


@dataclass(frozen=True)
class ScoredBy:
    """The model a score came from, as `lnrnn score` reports it."""

    model_dir: Path
    description: str  # "gru 2x448, int8, CPUExecutionProvider"
    provider: str
    precision: str
    method: str = "lnrnn"  # the table's row label
    adaptive: bool = False


def report_score(args: argparse.Namespace, data: bytes, nats: float, model: ScoredBy) -> int:
    """Print a score beside gzip/bzip2/xz: a table, or one JSON object with ``--json``."""
    from lnrnn.bpc import bits_per_byte, nats_to_bits
    from lnrnn.compressors import compressed_sizes

    bits, bpc = nats_to_bits(nats), bits_per_byte(nats, len(data))
    sizes = compressed_sizes(data)
    if args.json:
        result = {
            "file": args.file,
            "bytes": len(data),
            "bits": bits,
            "bpc": bpc,
            **({"adaptive": True} if model.adaptive else {}),
            "model": str(model.model_dir),
            "provider": model.provider,
            "precision": model.precision,
            "compressors": {
                name: {"bytes": size, "bits": 8 * size, "bpc": 8 * size / len(data)}
                for name, size in sizes.items()
            },
        }
        echo(json.dumps(result))
        return 0
    width = max(9, len(model.method) + 1)
    echo(f"file     {args.file} ({len(data)} bytes)")
    echo(f"model    {model.model_dir} ({model.description})")
    echo(f"{'method':<{width}}{'bits':>14}{'bits/byte':>11}")
    echo(f"{model.method:<{width}}{bits:>14.1f}{bpc:>11.4f}")
    for name, size in sizes.items():
        echo(f"{name:<{width}}{8 * size:>14.1f}{8 * size / len(data):>11.4f}")
    return 0


def _check_temperature(value: float) -> None:
    if not value > 0 or value == float("inf"):
        raise UserError(f"--temperature must be a finite number > 0, got {value}")


def predict(args: argparse.Namespace) -> int:
    from lnrnn.serve.engine.decode import top_chars

    if args.top_k < 1:
        raise UserError(f"--top-k must be at least 1, got {args.top_k}")
    _check_temperature(args.temperature)
    runtime = _load(_settings(args))
    last, state = runtime.context(args.text.encode("utf-8", errors="surrogateescape"))
    found = top_chars(runtime, last, state, args.top_k, args.temperature)
    for char, p in found:
        echo(f"{char!r:>10}  {p:.6f}")
    echo(f"{'other':>10}  {max(0.0, 1.0 - sum(p for _, p in found)):.6f}")
    return 0


def generate(args: argparse.Namespace) -> int:
    from lnrnn.serve.engine.decode import generate as sample_text

    if args.max_chars < 1:
        raise UserError(f"--max-chars must be at least 1, got {args.max_chars}")
    _check_temperature(args.temperature)
    if args.top_k < 0:
        raise UserError(f"--top-k must be 0 (all) or more, got {args.top_k}")
    runtime = _load(_settings(args))
    prompt = args.prompt.encode("utf-8", errors="surrogateescape")
    text = sample_text(runtime, prompt, args.max_chars, args.temperature, args.top_k, args.seed)
    echo(args.prompt + text)
    return 0
