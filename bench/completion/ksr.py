"""Keystroke savings on the validation splits: lnrnn's word completions, a word-frequency completer, PPM.

All three are trained on the same text, the default model's: every byte of each corpus before its
validation split (``Split.train_part``, each corpus once; the default model's mix repeats some of them,
which changes counts but no word or context seen). They type the same text, a fixed prefix of each
validation split (``PREFIX_CHARS`` characters from the split's first byte; a character cut by the split's
start is dropped), with the same protocol (``bench/completion/typist.py``): three suggestions, one key to
accept. Every position of a whole split would take hours of beam searches; the prefix keeps the section
near four minutes on this 2-core machine.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.completion.ppm import PPM
from bench.completion.typist import NetworkCompleter, PPMCompleter, type_text
from bench.completion.words import WordCompleter
from lnrnn.serve.engine.complete import BEAM_PER_COMPLETION
from lnrnn.serve.engine.runtime import Runtime
from lnrnn.train.recipes.corpora import VALIDATION_SPLITS, Split

PREFIX_CHARS = 5000
QUICK_CHARS = 1000
SUGGESTIONS = 3
MAX_CHARS = 16  # the API's default max_chars
WIDTHS = (2, 4, 8)  # beam widths (x n) compared on the first split, full mode only


def prefix(split: Split, chars: int) -> str:
    """The first ``chars`` characters of the validation split."""
    return split.read(4 * chars).decode("utf-8", errors="ignore")[:chars]


def _ratio(a: float, b: float) -> float | None:
    return a / b if b > 0 else None  # None: the baseline saved nothing


def measure(quick: bool, model_dir: Path, label: str, log: Callable[[str], None] = print) -> dict[str, Any]:
    """``label``: how the model is named in the results (``model_dir`` may be a temporary directory)."""
    chars = QUICK_CHARS if quick else PREFIX_CHARS
    splits = VALIDATION_SPLITS[:2] if quick else VALIDATION_SPLITS
    start = time.perf_counter()
    train = [split.train_part() for split in VALIDATION_SPLITS]
    words = WordCompleter.train((t.decode("utf-8", errors="replace") for t in train), SUGGESTIONS)
    ppm = PPM.train(b"".join(train))
    trained_s = time.perf_counter() - start
    log(f"  completion baselines trained on {sum(map(len, train)):,} bytes in {trained_s:.1f} s")
    runtime = Runtime.load(model_dir, device="cpu", threads=1)  # as `lnrnn serve` runs it by default
    rows = []
    for split in splits:
        text = prefix(split, chars)
        got = {
            "lnrnn": type_text(text, NetworkCompleter(runtime.scorer, SUGGESTIONS, MAX_CHARS)),
            "word_frequency": type_text(text, words.fresh()),
            "ppm": type_text(text, PPMCompleter(ppm.fresh(), SUGGESTIONS, MAX_CHARS)),
        }
        row: dict[str, Any] = {"split": split.name, "chars": len(text)}
        row |= {name: typed.as_dict() for name, typed in got.items()}
        row["vs_word_frequency"] = _ratio(got["lnrnn"].ksr, got["word_frequency"].ksr)
        row["vs_ppm"] = _ratio(got["lnrnn"].ksr, got["ppm"].ksr)
        rows.append(row)
        log(
            f"  completion {split.name}: KSR lnrnn {got['lnrnn'].ksr:.3f}, word frequency "
            f"{got['word_frequency'].ksr:.3f}, PPM {got['ppm'].ksr:.3f} "
            f"({sum(t.seconds for t in got.values()):.0f} s)"
        )
    widths = {}
    if not quick:  # the beam width the server uses, against narrower and wider ones
        text = prefix(splits[0], chars)
        for k in WIDTHS:
            if k == BEAM_PER_COMPLETION:
                widths[f"{k}n"] = rows[0]["lnrnn"]
                continue
            completer = NetworkCompleter(runtime.scorer, SUGGESTIONS, MAX_CHARS, k * SUGGESTIONS)
            widths[f"{k}n"] = type_text(text, completer).as_dict()
    return {
        "model": f"{label} ({runtime.describe()})",
        "prefix_chars": chars,
        "suggestions": SUGGESTIONS,
        "max_chars": MAX_CHARS,
        "beam_width": f"{BEAM_PER_COMPLETION} x n = {BEAM_PER_COMPLETION * SUGGESTIONS}",
        "train_bytes": sum(map(len, train)),
        "train_seconds": trained_s,
        "rows": rows,
        "widths_on": splits[0].name if widths else None,
        "widths": widths,
    }
