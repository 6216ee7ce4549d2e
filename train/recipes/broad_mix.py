"""Build the broad training mix: the default model's English mix plus code, markup and other languages.

python -m lnrnn.train.recipes.broad_mix --out runs/broad-data [--data ../shared/data] [--src runs/broad-src]
    [--allow-drift] [--repeats tinyshakespeare=3,code-c=2,...]

Needs the packages of ``sources.py`` fetched under ``--src`` first
(``python -m lnrnn.train.recipes.broad_fetch``; ``make default-data`` runs both). Writes under ``--out``:

* ``train.txt``: the default mix's English train part, byte for byte with its repeats (``default_mix``), then
  each kind's train pieces, kinds in ``sources.KINDS`` order. ``--repeats`` reweights the English corpora as
  ``default_mix --repeats`` does (the broad model's second stage: the default model's fine-tuning weights;
  its third: Tiny Shakespeare six times) and, by kind name, every train piece of a kind (the kind-weighted
  stage, tried and not shipped); everything else, ``valid.txt`` included, is unchanged by it.
* ``valid.txt``: the English validation splits (the default mix's ``valid.txt``), then each kind's held-out
  pieces; ``valid/<kind>.txt``: the same per kind (``valid/english.txt`` included).
* ``ood/<kind>.txt``: the out-of-domain kinds, which are in neither file above.
* ``manifest.json``: every piece (package, version, file, byte ranges, sha256, licence), per-kind totals, the
  packages with their versions and copyright licences, and what was skipped and why.

Deterministic: the same package versions give byte-identical output (sorted listings, path-hash order, no
timestamps). A package at another version than pinned is refused (one line, exit 2): the output would differ
from the documented one. ``--allow-drift`` builds from it anyway, warning once per package and recording both
versions in the manifest.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from lnrnn.train.recipes.broad_select import Piece, Selection, candidates, select_kind
from lnrnn.train.recipes.corpora import REPO, SHARED_DATA, VALIDATION_SPLITS, Split
from lnrnn.train.recipes.default_mix import DEFAULT_REPEATS, REPEATS, parse_repeats
from lnrnn.train.recipes.packages import Package, SourceError, files, open_package
from lnrnn.train.recipes.sources import KINDS, SOURCES, Kind, Source, packages

SRC = REPO / "runs" / "broad-src"
# From ../shared/data/README.md ("License/terms" of each file).
ENGLISH_LICENCES = {
    "ptb-char-valid": "LDC (Penn Treebank-3, LDC99T42)",
    "wikitext2-test": "CC-BY-SA-3.0 and GFDL",
}  # the other six: Project Gutenberg / Shakespeare, public domain


def open_all(
    src: Path, sources: Sequence[Source], allow_drift: bool, warn: Callable[[str], None]
) -> tuple[dict[str, tuple[Package, list[str]]], list[dict[str, Any]]]:
    """Every package of the sources with its file list, after the version check."""
    opened: dict[str, tuple[Package, list[str]]] = {}
    records = []
    for registry, name, pinned in packages(tuple(sources)):
        package = open_package(src, registry, name)
        if package.version != pinned:
            drift = f"{registry} package {name} is {package.version}, pinned {pinned} in sources.py"
            if not allow_drift:
                raise SourceError(f"{drift}: update the pin and docs/broad-mix.md, or pass --allow-drift")
            warn(f"broad_mix: warning: {drift}; building from {package.version} (--allow-drift)")
        opened[f"{registry}/{name}"] = (package, files(package))
        records.append(
            {
                "registry": registry,
                "package": name,
                "version": package.version,
                "pinned": pinned,
                "licences": list(package.copyright.licences),
                "licences_from": package.licence_note,
            }
        )
    return opened, records


def parse_mix_repeats(text: str, kinds: Sequence[Kind] = KINDS) -> dict[str, int]:
    """``name=N,...`` -> {English corpus or kind: N}; out-of-domain kinds (never trained on), unknown names
    and N < 1 are errors."""
    return parse_repeats(text, {s.name for s in VALIDATION_SPLITS} | {k.name for k in kinds if not k.ood})


def english_pieces(
    splits: Sequence[Split], repeats_of: dict[str, int] | None = None
) -> tuple[list[Piece], list[Piece]]:
    """The default mix, as pieces: each corpus's train part (with its repeats) and its validation split."""
    weights = {**REPEATS, **(repeats_of or {})}
    train, valid = [], []
    for split in splits:
        data = split.file_bytes()
        cut = split.start(len(data))
        licence = ENGLISH_LICENCES.get(split.name, "public-domain")
        # "version" of a shared-data file: its sha256, which corpora.py pins
        base = Piece(
            "english", "train", "shared-data", split.sha256, split.relpath, len(data), data[:cut], licence
        )
        train.append(replace(base, repeats=weights.get(split.name, DEFAULT_REPEATS)))
        valid.append(replace(base, split="valid", data=data[cut:], offset=cut))
    return train, valid


class Output:
    """One output file being assembled in memory (the whole mix is ~30 MB)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.data = bytearray()

    def add(self, piece: Piece) -> list[int]:
        start = len(self.data)
        self.data += piece.data * piece.repeats
        return [start, len(self.data)]


def _record(piece: Piece, out: Output, span: list[int]) -> dict[str, Any]:
    return {
        "kind": piece.kind,
        "split": piece.split,
        "package": piece.package,
        "version": piece.version,
        "file": piece.file,
        "file_bytes": piece.file_bytes,
        "file_range": [piece.offset, piece.offset + len(piece.data)],
        "repeats": piece.repeats,
        "out": out.name,
        "out_range": span,
        "sha256": hashlib.sha256(piece.data).hexdigest(),
        "licence": piece.licence,
    }


def _kind_summary(kind: str, group: str, sel: Selection, spans: dict[str, Any]) -> dict[str, Any]:
    train = sum(len(p.data) * p.repeats for p in sel.train)
    held = sum(len(p.data) for p in sel.held_out)
    return {
        "kind": kind,
        "group": group,
        "train_bytes": train,
        "train_files": len(sel.train),
        "held_out_bytes": held,
        "held_out_files": len(sel.held_out),
        "packages": sorted({p.package for p in sel.train + sel.held_out}),
        "skipped": dict(sorted(sel.skipped.items())),
        **spans,
    }


def build(
    src: Path,
    out: Path,
    data: Path = SHARED_DATA,
    *,
    sources: Sequence[Source] = SOURCES,
    kinds: Sequence[Kind] = KINDS,
    english: Sequence[Split] = VALIDATION_SPLITS,
    allow_drift: bool = False,
    repeats: dict[str, int] | None = None,
    warn: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Write the mix under ``out`` (see the module docstring); returns the manifest. ``repeats``: by English
    corpus or kind name, how many times each of its train pieces is given."""
    opened, package_records = open_all(src, sources, allow_drift, warn)
    # a bad --data fails before the work
    eng_train, eng_valid = english_pieces([s.at(data) for s in english], repeats)
    selections: list[tuple[Kind, Selection]] = []
    seen: set[str] = set()
    for kind in kinds:
        chosen = [s for s in sources if s.kind == kind.name]
        sel = select_kind(kind, candidates(kind, opened, chosen), seen)
        if times := (repeats or {}).get(kind.name):
            sel = replace(sel, train=[replace(p, repeats=times) for p in sel.train])
        selections.append((kind, sel))

    english_sel = Selection(held_out=eng_valid, train=eng_train)
    train, valid = Output("train.txt"), Output("valid.txt")
    pieces: list[dict[str, Any]] = []
    summaries: list[dict[str, Any]] = []
    licence_skips: list[dict[str, Any]] = []
    extra: dict[str, Output] = {}
    for kind, sel in [(Kind("english", "english", 0, 0), english_sel), *selections]:
        held = Output(f"{'ood' if kind.ood else 'valid'}/{kind.name}.txt")
        extra[held.name] = held
        t0, v0 = len(train.data), len(valid.data)
        for piece in sel.train:
            pieces.append(_record(piece, train, train.add(piece)))
        for piece in sel.held_out:
            record = _record(piece, held, held.add(piece))
            if not kind.ood:
                record["valid_txt_range"] = valid.add(piece)
            pieces.append(record)
        spans: dict[str, Any] = {"held_out_file": held.name}
        if not kind.ood:
            spans |= {"train_txt_range": [t0, len(train.data)], "valid_txt_range": [v0, len(valid.data)]}
        summaries.append(_kind_summary(kind.name, kind.group, sel, spans))
        licence_skips += sel.licence_skips

    for sub in ("valid", "ood"):  # kinds of an earlier run must not linger
        shutil.rmtree(out / sub, ignore_errors=True)
        (out / sub).mkdir(parents=True)
    for output in (train, valid, *extra.values()):
        (out / output.name).write_bytes(bytes(output.data))
    manifest = {
        "description": "lnrnn broad mix: the default mix's English (train part with its repeats, validation "
        "splits) plus code, markup and other languages from pinned Debian/npm packages; per kind, whole "
        "files held out by path hash; out-of-domain kinds only in ood/",
        "version_policy": "drift allowed (--allow-drift)" if allow_drift else "pinned versions only",
        "train_bytes": len(train.data),
        "valid_bytes": len(valid.data),
        "kinds": summaries,
        "packages": package_records,
        "licence_skips": licence_skips,
        "pieces": pieces,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n")
    return manifest


def summary_lines(manifest: dict[str, Any]) -> list[str]:
    total = manifest["train_bytes"]
    lines = [f"{'kind':16s} {'train B':>11s} {'share':>6s} {'files':>5s} {'held-out B':>10s} {'files':>5s}"]
    for k in manifest["kinds"]:
        share = f"{100 * k['train_bytes'] / total:5.1f}%" if total else "-"
        held = "ood" if k["group"] == "ood" else "valid"
        lines.append(
            f"{k['kind']:16s} {k['train_bytes']:>11,} {share:>6s} {k['train_files']:>5} "
            f"{k['held_out_bytes']:>10,} {k['held_out_files']:>5} {held}"
        )
    lines.append(f"total: train {total:,} B, valid {manifest['valid_bytes']:,} B")
    return lines


def main(argv: list[str] | None = None) -> int:
    fmt = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=fmt)
    parser.add_argument("--out", type=Path, required=True, help="directory to write")
    parser.add_argument("--data", type=Path, default=SHARED_DATA, help="the shared data directory (English)")
    parser.add_argument("--src", type=Path, default=SRC, help="the fetched packages (broad_fetch --into)")
    parser.add_argument("--allow-drift", action="store_true", help="build from other versions than pinned")
    parser.add_argument(
        "--repeats",
        default="",
        help="reweight English corpora and kinds, e.g. tinyshakespeare=3,code-c=2 (the later stages' mixes)",
    )
    args = parser.parse_args(argv)
    try:
        manifest = build(
            args.src,
            args.out,
            args.data,
            allow_drift=args.allow_drift,
            repeats=parse_mix_repeats(args.repeats),
            warn=lambda m: print(m, file=sys.stderr),
        )
    except (OSError, ValueError) as err:  # SourceError is a ValueError
        print(f"broad_mix: error: {err}", file=sys.stderr)
        return 2
    print("\n".join(summary_lines(manifest)) + f" -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
