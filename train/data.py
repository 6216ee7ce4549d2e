"""Byte corpora: split a file (or a directory of split files) and carve the train split into streams.

A corpus is read as raw bytes through ``numpy.memmap`` (``.zip`` members are read into memory once); nothing
becomes a Python list of characters. The train split is one document: the token stream is ``[BOS, b0, ...]``
(BOS only at the start of the document), cut into ``B`` contiguous streams as in awd-lstm-lm's ``batchify``.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lnrnn.contract import document_array
from lnrnn.errors import UserError

DEFAULT_SPLIT = (0.9, 0.05, 0.05)
# text8 / enwik8: the standard 90M / 5M / 5M split of the first 10^8 bytes (Mahoney; Mikolov et al. 2012).
STANDARD_NAMES = ("text8", "enwik8")
STANDARD_SPLIT = (90_000_000, 5_000_000, 5_000_000)
SPLIT_ALIASES = {"train": ("train",), "valid": ("valid", "val", "validation", "dev"), "test": ("test",)}


@dataclass
class Splits:
    train: np.ndarray  # uint8 bytes
    valid: np.ndarray
    test: np.ndarray  # may be empty (directory without a test file)
    description: str  # which data and which split, for checkpoints (``train_data``)


def parse_split(text: str) -> tuple[float, float, float]:
    """``"0.9,0.05,0.05"`` -> fractions; they must be three positive-ish numbers summing to 1."""
    try:
        parts = tuple(float(p) for p in text.split(","))
    except ValueError as err:
        raise UserError(f"--split must be three comma-separated fractions, got {text!r}") from err
    if len(parts) != 3 or parts[0] <= 0 or parts[1] <= 0 or parts[2] < 0 or abs(sum(parts) - 1) > 1e-6:
        raise UserError(
            f"--split needs train,valid,test fractions > 0 (test >= 0) summing to 1, got {text!r}"
        )
    return parts[0], parts[1], parts[2]


def is_standard(path: Path) -> bool:
    """Files named text8 / enwik8 (or their .zip) use the standard 90M/5M/5M split."""
    name = path.name.lower()
    return name in STANDARD_NAMES or (name.endswith(".zip") and name[:-4] in STANDARD_NAMES)


def split_bounds(
    path: Path, size: int, split: tuple[float, float, float] | None
) -> tuple[int, int, int, int]:
    """Contiguous split boundaries ``(0, end_train, end_valid, end_test)`` of a file of ``size`` bytes.

    An explicit ``split`` wins; otherwise text8/enwik8 get 90M/5M/5M and every other file 90/5/5 %.
    """
    if split is None and is_standard(path):
        total = sum(STANDARD_SPLIT)
        if size < total:
            raise UserError(
                f"{path.name} uses the standard 90M/5M/5M split but has only {size:,} bytes "
                f"(expected {total:,}); rename it or pass --split"
            )
        a, b = STANDARD_SPLIT[0], STANDARD_SPLIT[0] + STANDARD_SPLIT[1]
        return 0, a, b, total
    fractions = split or DEFAULT_SPLIT
    # Floor, as nanoGPT does (``int(n * 0.9)``), so "0.9,0.1,0" is exactly its split; with no test
    # fraction the valid split runs to the end of the file.
    a = int(size * fractions[0] + 1e-6)  # + 1e-6: 0.29 * 100 is 28.999...
    b = a + int(size * fractions[1] + 1e-6) if fractions[2] > 0 else size
    return 0, a, min(b, size), size if fractions[2] > 0 else b


def read_bytes(path: Path) -> np.ndarray:
    """The whole file as a read-only uint8 array (memmap; a ``.zip`` holding one member is read once)."""
    if not path.exists():
        raise UserError(f"data file {path} does not exist")
    if not path.is_file():
        raise UserError(f"data path {path} is not a file")
    if path.stat().st_size == 0:
        raise UserError(f"data file {path} is empty")
    if path.suffix.lower() == ".zip":
        try:
            with zipfile.ZipFile(path) as zf:
                members = [m for m in zf.namelist() if not m.endswith("/")]
                if len(members) != 1:
                    raise UserError(f"{path} must hold exactly one file, found {len(members)}")
                return np.frombuffer(zf.read(members[0]), dtype=np.uint8)
        except zipfile.BadZipFile as err:
            raise UserError(f"{path} is not a valid zip file ({err})") from err
    return np.memmap(path, dtype=np.uint8, mode="r")


def find_split_file(directory: Path, split: str) -> Path | None:
    """The file in ``directory`` whose dot-separated name holds the split (train.txt, ptb.valid.txt)."""
    aliases = SPLIT_ALIASES[split]
    found = [
        f
        for f in sorted(directory.iterdir())
        if f.is_file() and not f.name.startswith(".") and any(p in aliases for p in f.name.lower().split("."))
    ]
    if len(found) > 1:
        names = ", ".join(f.name for f in found)
        raise UserError(f"{directory}: several {split} files ({names}); keep one")
    return found[0] if found else None


def load_splits(path: Path, split: tuple[float, float, float] | None = None) -> Splits:
    """``--data FILE`` (contiguous split) or ``--data DIR`` (train/valid[/test] files)."""
    path = Path(path)
    if path.is_dir():
        if split is not None:
            raise UserError("--split applies to a single file, not a directory of split files")
        files = {name: find_split_file(path, name) for name in ("train", "valid", "test")}
        for name in ("train", "valid"):
            if files[name] is None:
                raise UserError(f"{path}: no {name} file (expected e.g. {name}.txt)")
        arrays = {k: read_bytes(f) if f else np.zeros(0, np.uint8) for k, f in files.items()}
        listing = ", ".join(f"{k}={f.name}" for k, f in files.items() if f)
        return Splits(arrays["train"], arrays["valid"], arrays["test"], f"{path.resolve()} ({listing})")
    data = read_bytes(path)
    bounds = split_bounds(path, len(data), split)
    train, valid, test = (data[bounds[i] : bounds[i + 1]] for i in range(3))
    if len(valid) == 0:
        raise UserError(f"{path} ({len(data)} bytes) is too short for a validation split")
    desc = (
        f"{path.resolve()} ({len(data):,} bytes; train [0, {bounds[1]:,}), valid [{bounds[1]:,}, "
        f"{bounds[2]:,}), test [{bounds[2]:,}, {bounds[3]:,}))"
    )
    return Splits(train, valid, test, desc)


class TokenStreams:
    """The train split as ``B`` contiguous token streams; this process holds streams ``[lo, hi)``.

    Stream ``i`` is ``tokens[i * n : (i + 1) * n]`` of ``[BOS, b0, b1, ...]`` with ``n = len // B`` (the tail
    that does not fill a column is dropped, as in awd-lstm-lm). A batch at position ``pos`` is
    ``x = streams[:, pos : pos + T]``, ``y = streams[:, pos + 1 : pos + T + 1]``.
    """

    def __init__(self, data: np.ndarray, batch: int, bptt: int, rank: int = 0, world: int = 1) -> None:
        n_tokens = len(data) + 1
        self.length = n_tokens // batch
        if self.length < bptt + 1:
            raise UserError(
                f"train split has {len(data):,} bytes, fewer than one batch "
                f"(batch {batch} x (bptt {bptt} + 1) = {batch * (bptt + 1):,}); "
                "use a larger file or a smaller --batch-size / --bptt"
            )
        # 2 bytes per token: 257 ids fit
        tokens = document_array(data[: self.length * batch - 1], dtype=np.uint16)
        per_rank = batch // world
        self.streams = tokens.reshape(batch, self.length)[rank * per_rank : (rank + 1) * per_rank]

    def get(self, pos: int, seq_len: int) -> tuple[np.ndarray, np.ndarray]:
        """Inputs and targets ``(b, t)`` at ``pos``; ``t = min(seq_len, length - 1 - pos)``."""
        t = min(seq_len, self.length - 1 - pos)
        return self.streams[:, pos : pos + t], self.streams[:, pos + 1 : pos + t + 1]

    def exhausted(self, pos: int) -> bool:
        return pos >= self.length - 1
