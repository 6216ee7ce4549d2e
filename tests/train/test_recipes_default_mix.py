"""The default model's data: train parts and validation splits are disjoint, exact and documented.

Reads the real corpora in ../shared/data (about 8 MB).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lnrnn.train.recipes.corpora import SHARED_DATA, VALIDATION_SPLITS
from lnrnn.train.recipes.default_mix import DEFAULT_REPEATS, REPEATS, build, parse_repeats

pytestmark = pytest.mark.data  # builds the mix from ../shared/data

REPO = Path(__file__).resolve().parents[2]
MIX = [sys.executable, "-m", "lnrnn.train.recipes.default_mix"]


def test_mix_is_every_byte_before_each_validation_split(tmp_path: Path) -> None:
    manifest = build(SHARED_DATA, tmp_path / "mix")
    train = (tmp_path / "mix" / "train.txt").read_bytes()
    valid = (tmp_path / "mix" / "valid.txt").read_bytes()
    assert len(train) == manifest["train_bytes"] and len(valid) == manifest["valid_bytes"]
    assert [p["corpus"] for p in manifest["parts"]] == [s.name for s in VALIDATION_SPLITS]
    for part, split in zip(manifest["parts"], VALIDATION_SPLITS, strict=True):
        whole = split.path.read_bytes()  # raw file: nothing normalised
        cut = part["train_file_range"][1]
        assert part["valid_file_range"] == [cut, len(whole)] and cut == int(len(whole) * split.start_frac)
        a, b = part["train_txt_range"]
        c, d = part["valid_txt_range"]
        assert train[a:b] == whole[:cut] * part["repeats"] and valid[c:d] == whole[cut:] == split.read()
    # nanoGPT's Tiny Shakespeare split: the last 111,540 bytes are held out.
    assert manifest["parts"][0]["valid_file_range"] == [1_003_854, 1_115_394]
    # CRLF and the BOM survive (War and Peace starts with EF BB BF).
    assert train[manifest["parts"][1]["train_txt_range"][0] :].startswith(b"\xef\xbb\xbf")
    assert b"\r\n" in valid


def test_a_changed_corpus_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(SHARED_DATA, data)
    target = data / VALIDATION_SPLITS[4].relpath
    target.chmod(0o644)
    target.write_bytes(target.read_bytes() + b"x")
    proc = subprocess.run(
        [*MIX, "--data", str(data), "--out", str(tmp_path / "o")],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("default_mix: error:") and "sha256" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_manifest_is_json_with_ranges(tmp_path: Path) -> None:
    build(SHARED_DATA, tmp_path / "m")
    manifest = json.loads((tmp_path / "m" / "manifest.json").read_text())
    sizes = [
        (s.path.stat().st_size, s.start_frac, REPEATS.get(s.name, DEFAULT_REPEATS)) for s in VALIDATION_SPLITS
    ]
    assert manifest["train_bytes"] == sum(k * int(n * f) for n, f, k in sizes)
    assert manifest["valid_bytes"] == sum(n - int(n * f) for n, f, _ in sizes)
    assert [p["repeats"] for p in manifest["parts"]] == [k for _, _, k in sizes]
    assert {k for _, _, k in sizes} == {1, 2, 3}  # War and Peace once, PTB three times, the rest twice


def test_repeats_override_reweights_only_the_named_corpora(tmp_path: Path) -> None:
    base = build(SHARED_DATA, tmp_path / "base")
    tuned = build(SHARED_DATA, tmp_path / "ft", parse_repeats("tinyshakespeare=3, lcet10=1"))
    before = {p["corpus"]: p["repeats"] for p in base["parts"]}
    after = {p["corpus"]: p["repeats"] for p in tuned["parts"]}
    assert after == {**before, "tinyshakespeare": 3, "lcet10": 1}
    cut = {p["corpus"]: p["train_file_range"][1] for p in base["parts"]}
    assert tuned["train_bytes"] == base["train_bytes"] + cut["tinyshakespeare"] - cut["lcet10"]
    assert (tmp_path / "ft" / "valid.txt").read_bytes() == (tmp_path / "base" / "valid.txt").read_bytes()


def test_bad_repeats_are_one_line(tmp_path: Path) -> None:
    for bad in ("shakespeare=2", "lcet10=0", "lcet10", "lcet10=x"):
        proc = subprocess.run(
            [*MIX, "--out", str(tmp_path / "o"), "--repeats", bad],
            cwd=REPO,
            capture_output=True,
            text=True,
        )
        assert proc.returncode == 2, bad
        assert (
            proc.stderr.startswith("default_mix: error: --repeats: bad item") and proc.stderr.count("\n") == 1
        )
    assert not (tmp_path / "o").exists()
