"""Build the default model's training mix: every corpus's bytes before its validation split, concatenated.

python -m lnrnn.train.recipes.default_mix --out runs/default-data [--data ../shared/data]

Writes ``train.txt`` (the train parts, in the order of ``corpora.py``, each repeated ``REPEATS``
times), ``valid.txt`` (the validation splits once each, same order; the trainer uses it to pick the
checkpoint) and ``manifest.json`` (file, sha256, repeats and the byte ranges of each part). Bytes are copied
as they are: no BOM stripping, no CRLF conversion.

The repeats weight the mix towards the corpora that have the least training text for the hardest target
(the model card's: at least 25% fewer bits than bzip2 -9 on every split): War and Peace (3.1 MB) appears
once, everything else twice, PTB-char (0.7 MB of a format unlike any other corpus) three times.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Collection
from pathlib import Path
from typing import Any

from lnrnn.train.recipes.corpora import SHARED_DATA, VALIDATION_SPLITS

REPEATS = {"warandpeace": 1, "ptb-char-valid": 3}  # every other corpus: DEFAULT_REPEATS
DEFAULT_REPEATS = 2


def build(data_dir: Path, out: Path, repeats_of: dict[str, int] | None = None) -> dict[str, Any]:
    """Write train.txt / valid.txt / manifest.json under ``out``; returns the manifest."""
    weights = {**REPEATS, **(repeats_of or {})}
    out.mkdir(parents=True, exist_ok=True)
    parts: list[dict[str, Any]] = []
    train_off = valid_off = 0
    with (out / "train.txt").open("wb") as train, (out / "valid.txt").open("wb") as valid:
        for split in (s.at(data_dir) for s in VALIDATION_SPLITS):
            data = split.file_bytes()
            cut = split.start(len(data))
            repeats = weights.get(split.name, DEFAULT_REPEATS)
            for _ in range(repeats):
                train.write(data[:cut])
            valid.write(data[cut:])
            parts.append(
                {
                    "corpus": split.name,
                    "file": split.relpath,
                    "sha256": split.sha256,
                    "file_bytes": len(data),
                    "repeats": repeats,
                    "train_file_range": [0, cut],
                    "valid_file_range": [cut, len(data)],
                    "train_txt_range": [train_off, train_off + repeats * cut],
                    "valid_txt_range": [valid_off, valid_off + len(data) - cut],
                }
            )
            train_off += repeats * cut
            valid_off += len(data) - cut
    manifest = {
        "description": "lnrnn default-model mix: each corpus's bytes before its validation split "
        "(lnrnn.train.recipes.corpora), repeated `repeats` times back to back, raw bytes, no normalisation",
        "train_bytes": train_off,
        "valid_bytes": valid_off,
        "parts": parts,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def parse_repeats(text: str, names: Collection[str] = ()) -> dict[str, int]:
    """``name=N,...`` -> {name: N}; names other than ``names`` (default: the English corpora) and N < 1 are
    errors."""
    names = set(names) or {s.name for s in VALIDATION_SPLITS}
    out: dict[str, int] = {}
    for item in filter(None, (s.strip() for s in text.split(","))):
        name, sep, count = item.partition("=")
        if not sep or name not in names or not count.isdigit() or int(count) < 1:
            raise ValueError(f"--repeats: bad item {item!r} (want NAME=N, N >= 1, NAME in {sorted(names)})")
        out[name] = int(count)
    return out


def main(argv: list[str] | None = None) -> int:
    fmt = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=fmt)
    parser.add_argument("--data", type=Path, default=SHARED_DATA, help="the shared data directory")
    parser.add_argument("--out", type=Path, required=True, help="directory to write")
    parser.add_argument(
        "--repeats",
        default="",
        help="override the weights, e.g. tinyshakespeare=3,wikitext2-test=4 (the fine-tuning mix)",
    )
    args = parser.parse_args(argv)
    try:
        manifest = build(args.data, args.out, parse_repeats(args.repeats))
    except (OSError, ValueError) as err:
        print(f"default_mix: error: {err}", file=sys.stderr)
        return 2
    for part in manifest["parts"]:
        a, b = part["valid_file_range"]
        cut, repeats = part["train_file_range"][1], part["repeats"]
        print(f"{part['corpus']:16s} train {cut:>9,} B x{repeats} | valid [{a:,}, {b:,})")
    print(f"total: train {manifest['train_bytes']:,} B, valid {manifest['valid_bytes']:,} B -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
