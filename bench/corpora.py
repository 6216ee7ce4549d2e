"""Validation splits of the corpora in ../shared/data used by the benchmarks (which bytes, stated once).

Tiny Shakespeare: the last 10% (nanoGPT's split, 111,540 bytes). PTB-char valid and WikiText-2 test are
already held-out files: used whole. War and Peace and the Canterbury texts have no standard LM split here:
their last 5% (lnrnn's default 90/5/5 split puts validation at [90%, 95%); the bench uses the tail so that
the same bytes are held out by `make default-model`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bench.common import SHARED_DATA


@dataclass(frozen=True)
class Split:
    name: str
    path: Path
    start_frac: float
    end_frac: float = 1.0

    def read(self, max_bytes: int | None = None) -> bytes:
        data = self.path.read_bytes()
        piece = data[int(len(data) * self.start_frac) : int(len(data) * self.end_frac)]
        return piece[:max_bytes] if max_bytes else piece


VALIDATION_SPLITS = (
    Split("tinyshakespeare", SHARED_DATA / "tinyshakespeare" / "input.txt", 0.9),
    Split("warandpeace", SHARED_DATA / "warandpeace" / "input.txt", 0.95),
    Split("ptb-char-valid", SHARED_DATA / "ptb" / "ptb.char.valid.txt", 0.0),
    Split("wikitext2-test", SHARED_DATA / "wikitext2_raw" / "wiki.test.raw", 0.0),
    Split("alice29", SHARED_DATA / "canterbury" / "alice29.txt", 0.95),
    Split("asyoulik", SHARED_DATA / "canterbury" / "asyoulik.txt", 0.95),
    Split("lcet10", SHARED_DATA / "canterbury" / "lcet10.txt", 0.95),
    Split("plrabn12", SHARED_DATA / "canterbury" / "plrabn12.txt", 0.95),
)
