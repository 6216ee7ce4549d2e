"""Which files of a kind are held out, which are trained on, and how much of each: by path hash, reproducibly.

A kind's candidate files (every source of the kind, every selected path) are ordered by
``sha256("<registry>/<package>/<path>")``: a fixed shuffle that depends on nothing but the names, so that a
size budget takes files from all over a package rather than its alphabetically first directories. In that
order, the first usable files are held out until the validation budget is full, and the following ones are
trained on until the train budget is full. A file is therefore held out whole or not at all: no file is
split across train and valid. A piece is a prefix of one file, cut after a newline (or, without one, at a
UTF-8 character boundary) so that a long file cannot fill a kind alone.

A file is not used when it is shorter than ``MIN_FILE_BYTES`` (``.so`` redirects between man pages), not UTF-8
text, has a line longer than the kind allows (minified code), repeats a file already taken (same content
anywhere in the mix), or is under a licence that forbids derived models (``licences.forbidden``).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from lnrnn.train.recipes import licences
from lnrnn.train.recipes.packages import Package, read_text_file, select
from lnrnn.train.recipes.sources import Kind, Source

MIN_FILE_BYTES = 64
MIN_PIECE_BYTES = 64  # a budget with less than this left is full


@dataclass(frozen=True)
class Candidate:
    key: str
    source: Source
    package: Package
    path: str


@dataclass(frozen=True)
class Piece:
    kind: str
    split: str  # train | valid | ood
    package: str
    version: str
    file: str  # path inside the package (for ../shared/data: inside the data directory)
    file_bytes: int  # of the file as read (gunzipped for .gz)
    data: bytes  # the file's bytes [offset, offset + len(data)), once
    licence: str
    repeats: int = 1
    offset: int = (
        0  # where ``data`` starts in the file (a validation split of ../shared/data starts inside it)
    )


@dataclass
class Selection:
    held_out: list[Piece] = field(default_factory=list)  # valid, or ood for out-of-domain kinds
    train: list[Piece] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)
    licence_skips: list[dict[str, Any]] = field(default_factory=list)


def candidates(
    kind: Kind, opened: dict[str, tuple[Package, list[str]]], chosen: list[Source]
) -> list[Candidate]:
    """Every (package, path) of the kind's sources, once, in path-hash order."""
    out: dict[tuple[str, str], Candidate] = {}
    for source in chosen:
        package, paths = opened[f"{source.registry}/{source.package}"]
        for path in select(paths, source):
            key = hashlib.sha256(f"{source.registry}/{source.package}/{path}".encode()).hexdigest()
            out.setdefault((source.package, path), Candidate(key, source, package, path))
    return sorted(out.values(), key=lambda c: c.key)


def cut(data: bytes, limit: int) -> int:
    """End of a prefix of at most ``limit`` bytes: after a newline in its second half, else at a character."""
    if len(data) <= limit:
        return len(data)
    newline = data.rfind(b"\n", 0, limit)
    if newline + 1 >= limit // 2:
        return newline + 1
    end = limit
    while end > 0 and data[end] & 0xC0 == 0x80:  # a UTF-8 continuation byte: the character started earlier
        end -= 1
    return end


def _problem(data: bytes, kind: Kind) -> str:
    """Why the file is not usable text for the kind ('' when it is)."""
    if len(data) < MIN_FILE_BYTES:
        return "small"
    if b"\x00" in data:
        return "binary"
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return "not-utf8"
    if kind.max_line_bytes and max(len(line) for line in data.split(b"\n")) > kind.max_line_bytes:
        return "long-lines"
    return ""


def _usable(cands: list[Candidate], kind: Kind, seen: set[str], sel: Selection) -> Iterator[Piece]:
    """The candidates that pass every check, as whole-file pieces, in order."""
    for c in cands:
        try:
            data = read_text_file(c.package, c.path)
        except (OSError, EOFError, ValueError):  # EOFError/ValueError: a truncated or corrupt .gz
            sel.skipped["unreadable"] += 1
            continue
        problem = _problem(data, kind)
        digest = hashlib.sha256(data).hexdigest()
        licence = c.package.licence_of(c.path, c.source.licence)
        if not problem and digest in seen:
            problem = "duplicate"
        if not problem and licences.forbidden(licence):
            problem = "licence"
            sel.licence_skips.append({"package": c.package.name, "file": c.path, "licence": licence})
        if problem:
            sel.skipped[problem] += 1
            continue
        seen.add(digest)
        yield Piece(kind.name, "", c.package.name, c.package.version, c.path, len(data), data, licence)


def select_kind(kind: Kind, cands: list[Candidate], seen: set[str]) -> Selection:
    """Fill the kind's held-out budget, then its train budget, from the candidates in order."""
    sel = Selection()
    held_split = "ood" if kind.ood else "valid"
    budgets = [(sel.held_out, held_split, kind.valid_bytes, kind.valid_file_bytes)]
    if not kind.ood:
        budgets.append((sel.train, "train", kind.train_bytes, kind.max_file_bytes))
    usable = _usable(cands, kind, seen, sel)
    for pieces, split, budget, per_file in budgets:
        left = budget
        while left >= MIN_PIECE_BYTES:
            whole = next(usable, None)
            if whole is None:
                return sel
            end = cut(whole.data, min(per_file, left))
            pieces.append(replace(whole, split=split, data=whole.data[:end]))
            left -= end
    return sel
