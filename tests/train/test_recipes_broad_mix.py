"""The broad mix recipe on a tiny fake package tree: deterministic, exact, held out whole, licences honoured.

The tree under ``tmp_path/src`` looks like what ``broad_fetch`` leaves (extracted Debian packages with
``DEBIAN/control`` and a copyright file, an npm ``node_modules``); the English part is two small fake corpora.
No apt, npm or ../shared/data is needed, except by the last test (marked ``slow`` and ``data``), which
rebuilds the real mix from ``runs/broad-src`` when it has been fetched.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import subprocess
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from lnrnn.train.recipes import licences
from lnrnn.train.recipes.broad_mix import build, parse_mix_repeats
from lnrnn.train.recipes.broad_select import cut
from lnrnn.train.recipes.corpora import REPO, Split
from lnrnn.train.recipes.default_mix import DEFAULT_REPEATS
from lnrnn.train.recipes.packages import SourceError
from lnrnn.train.recipes.sources import KINDS, SOURCES, Kind, Source

DEP5 = "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\n"
COPYRIGHT = DEP5 + (
    "Files: *\nCopyright: someone\nLicense: MIT\n\n"
    "Files: fake/bad/*\nCopyright: someone else\nLicense: CC-BY-ND-4.0\n\n"
    "Files: man1/special.1\nCopyright: a third\nLicense: BSD-2-clause\n"
)
TEST_KINDS = (
    Kind("code", "code", 3_000, 600, max_file_bytes=400, valid_file_bytes=200, max_line_bytes=200),
    Kind("man", "markup", 2_000, 500, max_file_bytes=500, valid_file_bytes=250),
    Kind("lisp", "ood", 0, 700, valid_file_bytes=300),
)
TEST_SOURCES = (
    Source("code", "deb", "fake-src", "1.0-1", ("usr/src/fake/*.go",), "MIT", exclude=("*/testdata/*",)),
    Source("code", "npm", "fakejs", "0.1.0", ("src/*.js",), "ISC"),
    Source("man", "deb", "fake-man", "2:3.4", ("usr/share/man/*.gz",), "GPL-2+"),
    Source("lisp", "deb", "fake-lisp", "5", ("usr/share/lisp/*.el",), "GPL-3+"),
)


def _text(name: str, n_lines: int, stem: str) -> bytes:
    """Distinct, deterministic lines (some UTF-8) so that every file has its own content."""
    return "".join(
        f"{stem} {name} line {i}: {'é' * (i % 3)}{'x' * (i % 17)}\n" for i in range(n_lines)
    ).encode()


def _deb(src: Path, name: str, version: str, copyright_text: str, files: dict[str, bytes]) -> Path:
    root = src / "deb" / name
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text(f"Package: {name}\nVersion: {version}\nArchitecture: all\n")
    doc = root / "usr" / "share" / "doc" / name
    doc.mkdir(parents=True)
    (doc / "copyright").write_text(copyright_text)
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return root


@dataclass(frozen=True)
class Fake:
    root: Path  # tmp_path: src/ (packages), data/ (English), and the outputs
    splits: list[Split]


@pytest.fixture
def fake(tmp_path: Path) -> Fake:
    return fake_tree(tmp_path)


def fake_tree(tmp: Path) -> Fake:
    """Packages with every kind of file the selection must take or skip, and two English corpora."""
    src = tmp / "src"
    go = {f"usr/src/fake/pkg{i % 4}/f{i}.go": _text(f"f{i}", 10 + 7 * i, "func") for i in range(24)}
    go["usr/src/fake/bad/nd.go"] = _text("nd", 30, "func")  # CC-BY-ND: never used
    go["usr/src/fake/min.go"] = b"var x = [" + b"1," * 400 + b"]\n"  # one 800-byte line: minified
    go["usr/src/fake/copy.go"] = go["usr/src/fake/pkg0/f0.go"]  # same content, another path
    go["usr/src/fake/tiny.go"] = b"package x\n"  # below MIN_FILE_BYTES
    go["usr/src/fake/blob.go"] = b"\x00\x01" * 100  # binary
    go["usr/src/fake/testdata/t.go"] = _text("t", 30, "func")  # excluded by the source
    root = _deb(src, "fake-src", "1.0-1", COPYRIGHT, go)
    (root / "usr/src/fake/link.go").symlink_to("pkg1/f1.go")  # symlinks are not files of their own
    man = {
        f"usr/share/man/man1/p{i}.1.gz": gzip.compress(_text(f"p{i}", 20 + 5 * i, ".TH"), mtime=0)
        for i in range(9)
    }
    man["usr/share/man/man1/special.1.gz"] = gzip.compress(_text("special", 30, ".SH"), mtime=0)
    _deb(src, "fake-man", "2:3.4", "free-form copyright text, no Format line\n", man)
    lisp = {f"usr/share/lisp/m{i}.el": _text(f"m{i}", 25, "(defun") for i in range(6)}
    _deb(src, "fake-lisp", "5", DEP5 + "Files: *\nCopyright: x\nLicense: GPL-3+\n", lisp)
    js = src / "npm" / "node_modules" / "fakejs"
    (js / "src").mkdir(parents=True)
    (js / "package.json").write_text(json.dumps({"name": "fakejs", "version": "0.1.0", "license": "ISC"}))
    for i in range(8):
        (js / "src" / f"m{i}.js").write_bytes(_text(f"m{i}", 12 + 3 * i, "const"))
    data = tmp / "data"
    splits = []
    for name, frac in (("prose-a", 0.9), ("prose-b", 0.95)):
        body = _text(name, 300, "Once upon a time")
        (data / name).mkdir(parents=True)
        (data / name / "input.txt").write_bytes(body)
        splits.append(Split(name, f"{name}/input.txt", frac, hashlib.sha256(body).hexdigest()))
    return Fake(tmp, splits)


def run(fake: Fake, out: str = "out", **kw: Any) -> tuple[dict[str, Any], Path]:
    kw = {"sources": TEST_SOURCES, "kinds": TEST_KINDS, "english": fake.splits, "warn": lambda _: None, **kw}
    return build(fake.root / "src", fake.root / out, fake.root / "data", **kw), fake.root / out


def source_bytes(tmp: Path, piece: dict[str, Any]) -> bytes:
    if piece["package"] == "shared-data":
        return (tmp / "data" / piece["file"]).read_bytes()
    registry = "npm" if piece["package"] == "fakejs" else "deb"
    root = tmp / "src" / "npm" / "node_modules" if registry == "npm" else tmp / "src" / "deb"
    raw = (root / piece["package"] / piece["file"]).read_bytes()
    return gzip.decompress(raw) if piece["file"].endswith(".gz") else raw


def tree(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def test_two_runs_are_byte_identical(fake: Fake) -> None:
    run(fake, "a")
    run(fake, "b")
    a, b = tree(fake.root / "a"), tree(fake.root / "b")
    assert sorted(a) == [
        "manifest.json", "ood/lisp.txt", "train.txt", "valid.txt",
        "valid/code.txt", "valid/english.txt", "valid/man.txt",
    ]  # fmt: skip
    assert a == b


def test_manifest_ranges_and_sha256_match_the_files(fake: Fake) -> None:
    manifest, out = run(fake)
    outputs = tree(out)
    assert (
        len(outputs["train.txt"]) == manifest["train_bytes"]
        and len(outputs["valid.txt"]) == manifest["valid_bytes"]
    )
    ends: dict[str, int] = {}
    for piece in manifest["pieces"]:
        whole = source_bytes(fake.root, piece)
        a, b = piece["file_range"]
        assert piece["file_bytes"] == len(whole)
        assert hashlib.sha256(whole[a:b]).hexdigest() == piece["sha256"]
        c, d = piece["out_range"]
        assert outputs[piece["out"]][c:d] == whole[a:b] * piece["repeats"]
        assert c == ends.get(piece["out"], 0)  # pieces tile each output in order, no gaps
        ends[piece["out"]] = d
        if "valid_txt_range" in piece:
            e, f = piece["valid_txt_range"]
            assert outputs["valid.txt"][e:f] == whole[a:b] and e == ends.get("valid.txt", 0)
            ends["valid.txt"] = f
        assert piece["version"] and piece["licence"]
    assert ends == {name: len(data) for name, data in outputs.items() if name.endswith(".txt")}
    english = [p for p in manifest["pieces"] if p["kind"] == "english"]
    assert [p["repeats"] for p in english if p["split"] == "train"] == [DEFAULT_REPEATS] * 2  # as default_mix
    assert outputs["valid/english.txt"] == outputs["valid.txt"][: len(outputs["valid/english.txt"])]


def test_no_file_is_in_both_train_and_valid(fake: Fake) -> None:
    manifest, _ = run(fake)
    by_split: dict[str, set[tuple[str, str]]] = {"train": set(), "valid": set(), "ood": set()}
    for piece in manifest["pieces"]:
        if piece["kind"] == "english":  # one corpus, two disjoint byte ranges (as in default_mix)
            continue
        by_split[piece["split"]].add((piece["package"], piece["file"]))
        if piece["split"] != "train":
            assert piece["file_range"][0] == 0  # a held-out piece is a prefix of a held-out file
    assert by_split["train"] and by_split["valid"] and by_split["ood"]
    assert not by_split["train"] & by_split["valid"]
    digests = [p["sha256"] for p in manifest["pieces"] if p["kind"] != "english"]
    assert len(digests) == len(set(digests))  # the copy of f0.go is not used twice
    kinds = {k["kind"]: k for k in manifest["kinds"]}
    for kind in TEST_KINDS[:2]:  # budgets are upper bounds, and the fake tree fills them
        assert kind.train_bytes - 64 < kinds[kind.name]["train_bytes"] <= kind.train_bytes
        assert kind.valid_bytes - 64 < kinds[kind.name]["held_out_bytes"] <= kind.valid_bytes


def test_out_of_domain_kinds_are_only_in_ood(fake: Fake) -> None:
    manifest, out = run(fake)
    train, valid = (out / "train.txt").read_bytes(), (out / "valid.txt").read_bytes()
    ood = [p for p in manifest["pieces"] if p["kind"] == "lisp"]
    assert ood and {p["split"] for p in ood} == {"ood"} and {p["out"] for p in ood} == {"ood/lisp.txt"}
    assert b"(defun" not in train and b"(defun" not in valid
    assert (out / "ood" / "lisp.txt").read_bytes().startswith(b"(defun")


def test_skips_and_licences_are_recorded(fake: Fake) -> None:
    everything = [replace(k, train_bytes=10**6) for k in TEST_KINDS]  # every candidate file gets looked at
    manifest, _ = run(fake, kinds=everything)
    code = next(k for k in manifest["kinds"] if k["kind"] == "code")
    assert code["packages"] == ["fake-src", "fakejs"]
    skipped = code["skipped"]
    assert skipped["long-lines"] == skipped["binary"] == skipped["small"] == skipped["licence"] == 1
    assert skipped["duplicate"] == 1
    assert manifest["licence_skips"] == [
        {"package": "fake-src", "file": "usr/src/fake/bad/nd.go", "licence": "CC-BY-ND-4.0"}
    ]
    files = {p["file"] for p in manifest["pieces"]}
    assert not any("testdata" in f or "link.go" in f or "bad/" in f for f in files)
    lic = {p["file"]: p["licence"] for p in manifest["pieces"]}
    assert lic["usr/src/fake/pkg0/f0.go"] == "MIT"  # DEP-5 "Files: *"
    assert {lic[f] for f in files if f.startswith("src/")} == {"ISC"}  # npm: package.json
    assert {lic[f] for f in files if "/man1/" in f} == {"GPL-2+"}  # free-form copyright: the declared one
    packages = {p["package"]: p for p in manifest["packages"]}
    assert packages["fake-src"]["licences"] == ["BSD-2-clause", "CC-BY-ND-4.0", "MIT"]
    assert packages["fake-man"]["version"] == packages["fake-man"]["pinned"] == "2:3.4"


def test_a_version_other_than_pinned_is_refused_or_recorded(fake: Fake) -> None:
    control = fake.root / "src" / "deb" / "fake-man" / "DEBIAN" / "control"
    control.write_text(control.read_text().replace("2:3.4", "2:3.5"))
    with pytest.raises(SourceError, match=r"fake-man is 2:3\.5, pinned 2:3\.4 .* --allow-drift"):
        run(fake)
    assert not (fake.root / "out").exists()  # refused before writing anything
    warnings: list[str] = []
    manifest, _ = run(fake, allow_drift=True, warn=warnings.append)
    assert warnings == [
        "broad_mix: warning: deb package fake-man is 2:3.5, pinned 2:3.4 in sources.py; building from 2:3.5 "
        "(--allow-drift)"
    ]
    record = next(p for p in manifest["packages"] if p["package"] == "fake-man")
    assert (record["version"], record["pinned"]) == ("2:3.5", "2:3.4")
    assert manifest["version_policy"] == "drift allowed (--allow-drift)"
    assert {p["version"] for p in manifest["pieces"] if p["package"] == "fake-man"} == {"2:3.5"}


def test_the_command_refuses_drift_and_missing_packages_in_one_line(tmp_path: Path) -> None:
    first = SOURCES[0]  # the real recipe checks its packages in order: a drifted first one stops it
    _deb(tmp_path / "src", first.package, "0.0-drifted", DEP5, {})
    cmd = [sys.executable, "-m", "lnrnn.train.recipes.broad_mix", "--src", str(tmp_path / "src")]
    proc = subprocess.run([*cmd, "--out", str(tmp_path / "o")], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert proc.stderr.startswith(f"broad_mix: error: deb package {first.package} is 0.0-drifted, pinned")
    proc = subprocess.run(
        [*cmd, "--out", str(tmp_path / "o"), "--allow-drift"], cwd=REPO, capture_output=True, text=True
    )
    assert (
        proc.returncode == 2 and proc.stderr.count("\n") == 2
    )  # the warning, then the next package is missing
    assert "is missing: fetch it first" in proc.stderr.splitlines()[1]
    assert not (tmp_path / "o").exists()


def test_english_repeats_reweight_only_the_english_train_part(fake: Fake) -> None:
    plain, a = run(fake, "a")
    heavier, b = run(fake, "b", repeats={"prose-a": 5})
    english = [p for p in heavier["pieces"] if p["kind"] == "english" and p["split"] == "train"]
    assert [p["repeats"] for p in english] == [5, DEFAULT_REPEATS]
    first = source_bytes(fake.root, english[0])
    lo, hi = english[0]["file_range"]
    assert (b / "train.txt").read_bytes().startswith(first[lo:hi] * 5)
    grown = (5 - DEFAULT_REPEATS) * (hi - lo)
    assert heavier["train_bytes"] == plain["train_bytes"] + grown
    # every other byte is where it was: the other kinds only move by the English growth, validation not at all
    assert (b / "train.txt").read_bytes()[grown:] == (a / "train.txt").read_bytes()
    assert {k: v for k, v in tree(b).items() if k != "train.txt" and k != "manifest.json"} == {
        k: v for k, v in tree(a).items() if k != "train.txt" and k != "manifest.json"
    }


def test_kind_repeats_repeat_every_train_piece_of_that_kind_and_nothing_else(fake: Fake) -> None:
    plain, a = run(fake, "a")
    heavier, b = run(fake, "b", repeats={"man": 3})
    kinds = {k["kind"]: k for k in heavier["kinds"]}
    before = {k["kind"]: k for k in plain["kinds"]}
    man = [p for p in heavier["pieces"] if p["kind"] == "man" and p["split"] == "train"]
    assert man and all(p["repeats"] == 3 for p in man)
    assert all(p["repeats"] == 1 for p in heavier["pieces"] if p["kind"] == "code")
    assert kinds["man"]["train_bytes"] == 3 * before["man"]["train_bytes"]
    assert kinds["man"]["train_files"] == before["man"]["train_files"]  # the same files, each three times
    train = (b / "train.txt").read_bytes()
    for piece in man:  # each piece's bytes three times in a row, where the manifest says
        c, d = piece["out_range"]
        lo, hi = piece["file_range"]
        assert train[c:d] == source_bytes(fake.root, piece)[lo:hi] * 3
    lo, hi = before["man"]["train_txt_range"]
    old = (a / "train.txt").read_bytes()
    assert train[:lo] == old[:lo] and train[kinds["man"]["train_txt_range"][1] :] == old[hi:]
    assert {k: v for k, v in tree(b).items() if k not in ("train.txt", "manifest.json")} == {
        k: v for k, v in tree(a).items() if k not in ("train.txt", "manifest.json")
    }


def test_repeats_take_english_corpora_and_kinds_but_never_an_out_of_domain_kind() -> None:
    repeats = parse_mix_repeats("tinyshakespeare=3, code-c=2,csv=3", KINDS)
    assert repeats == {"tinyshakespeare": 3, "code-c": 2, "csv": 3}
    assert parse_mix_repeats("", KINDS) == {}
    for bad in ("perl=2", "code-c=0", "code-c", "csv=x", "nosuch=2"):
        with pytest.raises(ValueError, match=f"--repeats: bad item '{bad}'"):
            parse_mix_repeats(bad, KINDS)
    with pytest.raises(ValueError, match="NAME in .*'code-c'.*'tinyshakespeare'"):  # kinds, corpora named
        parse_mix_repeats("perl=2", KINDS)


def test_the_command_refuses_a_bad_repeats_item_in_one_line(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "lnrnn.train.recipes.broad_mix", "--out", str(tmp_path / "o")]
    proc = subprocess.run([*cmd, "--repeats", "nosuchcorpus=3"], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert proc.stderr.startswith("broad_mix: error: --repeats: bad item 'nosuchcorpus=3'")
    assert not (tmp_path / "o").exists()


def test_licence_lookup_and_forbidden_names() -> None:
    parsed = licences.parse(COPYRIGHT)
    assert parsed.licence_of("usr/src/fake/bad/x.go", "D") == "CC-BY-ND-4.0"  # a tail matches
    assert parsed.licence_of("usr/share/man/man1/special.1.gz", "D") == "BSD-2-clause"  # .gz dropped
    assert parsed.licence_of("usr/share/go/src/ok.go", "D") == "MIT"
    assert licences.parse("no format line\nLicense: MIT\n").licence_of("a", "Declared") == "Declared"
    for name in ("CC-BY-ND-4.0", "noderivs", "CC-BY-NC-SA-3.0", "GPL-2+ and CC-BY-NC-4.0"):
        assert licences.forbidden(name), name
    for name in ("MIT", "GPL-2+", "Apache-2.0 or CC-BY-ND-4.0", "Linux-syscall-note", "BSD-3-clause and ISC"):
        assert not licences.forbidden(name), name


def test_pieces_end_after_a_newline_or_on_a_character() -> None:
    assert cut(b"ab\ncd\nef", 7) == 6 and cut(b"short", 10) == 5
    text = "é" * 10  # two bytes each, no newline: never cut inside a character
    assert cut(text.encode(), 7) == 6
    assert cut(b"a\n" + b"x" * 20, 10) == 10  # the only newline is too early: cut at the limit


def test_the_declared_mix_keeps_english_at_least_40_percent() -> None:
    kinds = {k.name: k for k in KINDS}
    assert {s.kind for s in SOURCES} == set(kinds)
    in_mix = {(s.registry, s.package) for s in SOURCES if not kinds[s.kind].ood}
    assert not {(s.registry, s.package) for s in SOURCES if kinds[s.kind].ood} & in_mix
    english = 11_801_624  # the default mix's train.txt (models/default/README.md)
    assert english / (english + sum(k.train_bytes for k in KINDS)) >= 0.40
    assert all(s.version and s.licence and s.include for s in SOURCES)


@pytest.mark.slow
@pytest.mark.data
def test_the_real_mix_matches_docs(tmp_path: Path) -> None:
    """Rebuilt from the fetched packages (make default-data): the sha256s are those in docs/broad-mix.md."""
    src = REPO / "runs" / "broad-src"
    if not src.is_dir():
        pytest.skip(f"{src} not fetched (python -m lnrnn.train.recipes.broad_fetch)")
    build(src, tmp_path / "mix", warn=lambda _: None)
    doc = (REPO / "docs" / "broad-mix.md").read_text()
    for name in ("train.txt", "valid.txt", "ood/perl.txt", "ood/sql.txt", "ood/korean.txt", "ood/greek.txt"):
        assert hashlib.sha256((tmp_path / "mix" / name).read_bytes()).hexdigest() in doc, name
