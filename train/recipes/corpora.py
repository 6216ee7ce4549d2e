"""Validation splits of the corpora in ../shared/data (which bytes, stated once).

The benchmarks score these splits, and ``default_mix`` trains the default model on every byte *before*
them, so the same bytes are held out everywhere:

* Tiny Shakespeare: the last 10% (nanoGPT's split: bytes [1,003,854, 1,115,394), 111,540 bytes).
* PTB-char valid and WikiText-2 test: the last 10%. The shared data directory holds no train split of
  either, so the default model learns their formats from their first 90%; its numbers on these splits are
  therefore *not* comparable with published PTB / WikiText-2 test results. ``ptb/ptb.valid.txt`` holds the
  same sentences as the char file and is never used.
* War and Peace and the four Canterbury texts: the last 5%.

A split starts at ``int(len(file) * start_frac)`` and runs to the end of the file. Nothing is normalised:
War and Peace keeps its BOM (in the train part) and CRLF line endings, as do WikiText-2 and three
Canterbury files.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]  # the source checkout: the recipe runs from it
SHARED_DATA = REPO.parent / "shared" / "data"


@dataclass(frozen=True)
class Split:
    name: str
    relpath: str  # inside the data directory
    start_frac: float  # the split is [int(n * start_frac), n)
    sha256: str  # of the whole file: a changed or different copy is refused, never silently scored
    root: Path = SHARED_DATA

    @property
    def path(self) -> Path:
        return self.root / self.relpath

    def at(self, root: Path) -> Split:
        """The same split of the copy under another data directory."""
        return Split(self.name, self.relpath, self.start_frac, self.sha256, root)

    def file_bytes(self) -> bytes:
        data = self.path.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        if digest != self.sha256:
            raise ValueError(f"{self.path}: sha256 {digest} is not the expected {self.sha256}")
        return data

    def start(self, size: int) -> int:
        return int(size * self.start_frac)

    def read(self, max_bytes: int | None = None) -> bytes:
        """The validation bytes (the first ``max_bytes`` of them if given)."""
        data = self.file_bytes()
        piece = data[self.start(len(data)) :]
        return piece[:max_bytes] if max_bytes else piece

    def train_part(self) -> bytes:
        """Every byte before the validation split."""
        data = self.file_bytes()
        return data[: self.start(len(data))]


VALIDATION_SPLITS = (
    Split("tinyshakespeare", "tinyshakespeare/input.txt", 0.9,
          "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"),
    Split("warandpeace", "warandpeace/input.txt", 0.95,
          "fb66ba999dafe24017cdd59e04c56d385a9c8466993d374fd4c6f08b2142985e"),
    Split("ptb-char-valid", "ptb/ptb.char.valid.txt", 0.9,
          "21661f63ec355085879458b6524644d4add5573541b4be14fb52ab2e2e995eb8"),
    Split("wikitext2-test", "wikitext2_raw/wiki.test.raw", 0.9,
          "4f3e427e4aff23acff917a8a51aeae21bf12832256e26914c8fc250dcef4103c"),
    Split("alice29", "canterbury/alice29.txt", 0.95,
          "7467306ee0feed4971260f3c87421154a05be571d944e9cb021a5713700c38f0"),
    Split("asyoulik", "canterbury/asyoulik.txt", 0.95,
          "eaa3526fe53859f34ecdf255712f9ecf0b2c903451d4755b2edaa2e2599cb0fc"),
    Split("lcet10", "canterbury/lcet10.txt", 0.95,
          "5314ba1dbb03f471df88bec6cd120a938ef60d0fd3511c5c1dce61bf7463245f"),
    Split("plrabn12", "canterbury/plrabn12.txt", 0.95,
          "07e2e0b461af78c7c647cb53dab39de560198e16f799b4516eccf0fbd69f764c"),
)  # fmt: skip
