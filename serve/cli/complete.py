"""`lnrnn complete`: the most likely completions of a text (the rest of the word, of the line, or the next
characters), the same search and answer as ``POST /v1/complete``."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import TYPE_CHECKING

from lnrnn.errors import UserError
from lnrnn.serve.cli.streams import echo, read_input

if TYPE_CHECKING:
    from lnrnn.serve.engine.runtime import Runtime

WithModel = Callable[..., argparse.ArgumentParser]
Load = Callable[[argparse.Namespace], "Runtime"]


def register(with_model: WithModel, load: Load) -> None:
    """Add the subcommand; ``with_model`` adds a parser with the shared model options, ``load`` opens the
    model they name."""
    from lnrnn.serve.engine.complete import MAX_COMPLETION_CHARS, MAX_COMPLETIONS, UNTIL

    p = with_model(
        "complete",
        help="most likely completions of TEXT: the rest of the word (default), of the line, or characters",
        description="Beam search over bytes: exact probabilities of the completions found, most likely "
        "first, whole UTF-8 characters only. A completion includes the character that ends it (word: a "
        "space, tab, CR, newline or ASCII punctuation; line: a newline); one still open after --max-chars "
        "characters is listed as cut.",
    )
    p.add_argument("text", metavar="TEXT", help="the context (may be empty: ''), or - for standard input")
    p.add_argument("-n", type=int, default=3, help=f"how many completions, 1..{MAX_COMPLETIONS} (default 3)")
    p.add_argument("--until", choices=UNTIL, default="word", help="where a completion ends (default word)")
    p.add_argument(
        "--max-chars",
        type=int,
        default=16,
        help=f"characters per completion at most, 1..{MAX_COMPLETION_CHARS} (default 16)",
    )
    p.add_argument("--json", action="store_true", help="print the /v1/complete answer instead of a table")
    p.set_defaults(handler=lambda args: complete(args, load))


def complete(args: argparse.Namespace, load: Load) -> int:
    from lnrnn.serve.engine import complete as search

    if not 1 <= args.n <= search.MAX_COMPLETIONS:
        raise UserError(f"-n must be in 1..{search.MAX_COMPLETIONS}, got {args.n}")
    if not 1 <= args.max_chars <= search.MAX_COMPLETION_CHARS:
        raise UserError(f"--max-chars must be in 1..{search.MAX_COMPLETION_CHARS}, got {args.max_chars}")
    data = read_input("-") if args.text == "-" else args.text.encode("utf-8", errors="surrogateescape")
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise UserError(f"the text is not valid UTF-8 (byte {err.start}); complete a UTF-8 text") from None
    runtime = load(args)
    last, state = runtime.context(data, cache=False)
    found = search.complete(
        runtime.scorer.next, last, state, n=args.n, max_chars=args.max_chars, until=args.until
    )
    if args.json:
        rows = [
            {"text": c.text, "probability": c.probability, "bits": c.bits, "ended": c.ended} for c in found
        ]
        echo(json.dumps({"completions": rows}, ensure_ascii=False))
        return 0
    echo(f"context  {len(data)} bytes; model {runtime.model_dir} ({runtime.describe()})")
    echo(f"{'completion':<24}{'probability':>12}{'bits':>8}")
    for c in found:
        shown = repr(c.text) + ("" if c.ended else " (cut)")
        echo(f"{shown:<24}{c.probability:>12.6f}{c.bits:>8.2f}")
    return 0
