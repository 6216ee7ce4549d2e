"""Which part of each English corpus and kind a training stage of the broad model reads.

python -m lnrnn.train.recipes.broad_coverage --data runs/broad-data-splits --preset broad-splits [--steps N]

A stage shorter than one pass reads the first ``steps x bptt`` positions of each of its ``batch`` contiguous
streams (``TokenStreams``), so which bytes of a corpus it reads depends on where the corpus's copies fall in
the mix: when a corpus's copies are each about one stream long, every copy starts near a stream's start and
they all read the same part of it. That is what a longer mix did to PTB-char in the broad model's fifth stage
(docs/broad-mix.md): 59% of its train part read, the last 35%, next to its validation split, never. This
prints, from the mix's manifest, the share of every train piece's bytes that the stage predicts at least once
(per English corpus, and per kind over all its pieces), and exits 1 when the stage reads less of an English
corpus than a full pass would.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lnrnn.errors import UserError
from lnrnn.train.presets import PRESETS, resolve

Span = tuple[int, int]  # [start, end) in bytes


def positions_read(length: int, bptt: int, steps: int) -> int:
    """How many positions of each stream ``steps`` fixed-length steps predict: targets are stream positions
    ``1 .. steps x bptt`` (position 0 is only an input), all ``length - 1`` once the pass is complete."""
    return min(steps * bptt, length - 1)


def read_spans(start: int, size: int, length: int, streams: int, read: int) -> list[Span]:
    """The offsets (within the piece) of the bytes at ``[start, start + size)`` of ``train.txt`` that are
    targets: byte ``o`` is token ``o + 1`` (the tokens begin with one BOS), at stream ``(o + 1) // length``,
    position ``(o + 1) % length``; streams past ``streams`` are the dropped tail."""
    spans = []
    first, last = (start + 1) // length, (start + size) // length
    for stream in range(first, min(last, streams - 1) + 1):
        lo = max(stream * length + 1, start + 1)  # token indices
        hi = min(stream * length + read + 1, start + size + 1)
        if lo < hi:
            spans.append((lo - 1 - start, hi - 1 - start))
    return spans


def union_length(spans: Iterable[Span]) -> int:
    total, end = 0, -1
    for lo, hi in sorted(spans):
        if hi > end:
            total += hi - max(lo, end)
            end = hi
    return total


def largest_gap(spans: Iterable[Span], size: int) -> Span:
    """The longest run of ``[0, size)`` no span covers."""
    best, end = (0, 0), 0
    for lo, hi in sorted([*spans, (size, size)]):
        if lo > end and lo - end > best[1] - best[0]:
            best = (end, lo)
        end = max(end, hi)
    return best


@dataclass(frozen=True)
class Coverage:
    name: str  # an English corpus's file, or a kind
    kind: str
    copies: int
    size: int  # bytes of one copy (summed over a kind's pieces)
    read: int  # of those, bytes predicted at least once
    whole: int  # bytes a full pass predicts (a stream's first token is never a target)
    gap: Span  # an English corpus's longest unread run (offsets in its file range)

    @property
    def share(self) -> float:
        return self.read / self.size if self.size else 1.0


def coverage(manifest: dict[str, Any], batch: int, bptt: int, steps: int) -> list[Coverage]:
    """Per English corpus (one train piece each) and per kind (its train pieces together)."""
    length = (manifest["train_bytes"] + 1) // batch
    if length < bptt + 1:
        raise UserError(f"train.txt has {manifest['train_bytes']:,} bytes, fewer than one batch")
    read = positions_read(length, bptt, steps)
    english: list[Coverage] = []
    kinds: dict[str, list[int]] = {}  # kind -> [bytes, read, whole]
    kind_copies: dict[str, int] = {}
    for piece in manifest["pieces"]:
        if piece["split"] != "train" or piece.get("out", "train.txt") != "train.txt":
            continue
        lo, hi = piece["file_range"]
        size, copies = hi - lo, piece["repeats"]
        start = piece["out_range"][0]
        spans, full = (
            [s for k in range(copies) for s in read_spans(start + k * size, size, length, batch, n)]
            for n in (read, length - 1)
        )
        if piece["kind"] == "english":
            gap = largest_gap(spans, size)
            english.append(
                Coverage(piece["file"], "english", copies, size, union_length(spans), union_length(full), gap)
            )
        else:
            kind_copies.setdefault(piece["kind"], copies)
            total = kinds.setdefault(piece["kind"], [0, 0, 0])
            total[0] += size
            total[1] += union_length(spans)
            total[2] += union_length(full)
    return english + [
        Coverage(kind, kind, kind_copies[kind], total_bytes, total_read, total_whole, (0, 0))
        for kind, (total_bytes, total_read, total_whole) in kinds.items()
    ]


def report(rows: Sequence[Coverage]) -> list[str]:
    lines = [f"{'corpus or kind':32} {'copies':>6} {'bytes':>11} {'read':>7}  longest unread run"]
    for row in rows:
        gap = ""
        if row.gap[1] > row.gap[0]:
            gap = f"{row.gap[0] / row.size:.0%}-{row.gap[1] / row.size:.0%} of the file's train part"
        lines.append(f"{row.name:32} {row.copies:>6} {row.size:>11,} {row.share:>7.1%}  {gap}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, required=True, help="a broad mix directory (its manifest.json)")
    parser.add_argument("--preset", required=True, choices=sorted(PRESETS), help="the stage's preset")
    parser.add_argument("--steps", type=int, help="steps instead of the preset's max_steps")
    args = parser.parse_args(argv)
    try:
        _, train = resolve(args.preset, {"max_steps": args.steps})
        if train.random_bptt:
            raise UserError(f"preset {args.preset} draws random BPTT lengths: what it reads is not fixed")
        if train.max_steps <= 0:
            raise UserError(f"preset {args.preset} has no step limit: give --steps")
        path = args.data / "manifest.json"
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
            rows = coverage(manifest, train.batch_size, train.bptt, train.max_steps)
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise UserError(f"{path}: not a broad mix manifest ({type(err).__name__}: {err})") from err
    except UserError as err:
        print(f"broad_coverage: error: {err}", file=sys.stderr)
        return 2
    print("\n".join(report(rows)))
    partial = [row.name for row in rows if row.kind == "english" and row.read < row.whole]
    if partial:
        print(f"not read whole in {train.max_steps:,} steps: {', '.join(partial)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
