"""What a part-pass stage of the broad model reads of each corpus, checked against the trainer's reader."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from lnrnn.train.data import TokenStreams
from lnrnn.train.recipes.broad_coverage import coverage, main, read_spans, union_length


def targets_the_trainer_reads(n_bytes: int, batch: int, bptt: int, steps: int) -> np.ndarray:
    """Which bytes of a ``n_bytes`` train file are predicted at least once in ``steps`` steps, by walking
    ``TokenStreams`` as ``Trainer.train_step`` does (back to position 0 when a pass is exhausted)."""
    streams = TokenStreams(np.zeros(n_bytes, dtype=np.uint8), batch, bptt)
    seen = np.zeros(n_bytes, dtype=bool)
    pos = 0
    for _ in range(steps):
        if streams.exhausted(pos):
            pos = 0
        _, ys = streams.get(pos, bptt)
        t = ys.shape[1]
        for row in range(batch):  # targets: stream positions pos+1 .. pos+t, token index - 1 = byte offset
            lo = row * streams.length + pos + 1 - 1
            seen[lo : lo + t] = True
        pos += t
    return seen


@pytest.mark.parametrize(("steps", "bptt"), [(3, 7), (11, 5), (40, 4)])
def test_read_spans_are_the_bytes_the_trainer_predicts(steps: int, bptt: int) -> None:
    n_bytes, batch = 1_001, 8  # 1,002 tokens: 125 per stream, 2 bytes of tail dropped
    seen = targets_the_trainer_reads(n_bytes, batch, bptt, steps)
    length = (n_bytes + 1) // batch
    read = min(steps * bptt, length - 1)
    for start, size in [(0, n_bytes), (0, 124), (123, 130), (300, 377), (990, 11)]:
        spans = read_spans(start, size, length, batch, read)
        mine = np.zeros(size, dtype=bool)
        for lo, hi in spans:
            mine[lo:hi] = True
        assert np.array_equal(mine, seen[start : start + size]), (start, size)
        assert union_length(spans) == int(seen[start : start + size].sum())


def piece(kind: str, split: str, size: int, copies: int, at: int) -> dict:
    out = "train.txt" if split == "train" else "valid/english.txt"
    return {"kind": kind, "split": split, "file": f"{kind}.txt", "file_range": [0, size], "repeats": copies,
            "out": out, "out_range": [at, at + copies * size]}  # fmt: skip


def manifest(corpus_size: int, copies: int, before: int, train_bytes: int) -> dict:
    """One English corpus, ``copies`` times from byte ``before`` of train.txt; the rest is one kind."""
    after = before + copies * corpus_size
    pieces = [
        piece("code-c", "train", before, 1, 0),
        piece("english", "train", corpus_size, copies, before),
        piece("code-c", "train", train_bytes - after, 1, after),
        piece("english", "valid", 9, 1, 0),
    ]
    return {"train_bytes": train_bytes, "pieces": pieces}


def test_copies_one_stream_long_all_read_the_same_part() -> None:
    # the fifth stage's PTB-char: each copy as long as a stream, so every copy starts at a stream's start and
    # a stage of 55% of a pass reads the same first 55% of each; 64 streams of 1,000 tokens
    rows = coverage(manifest(1_000, 4, 24_999, 63_999), batch=64, bptt=50, steps=11)
    corpus = rows[0]
    # bytes 1..550 of each copy (byte 0 is a stream's first token, never a target, so a pass reads 999)
    assert (corpus.name, corpus.copies, corpus.size, corpus.read, corpus.whole) == (
        "english.txt",
        4,
        1_000,
        550,
        999,
    )
    assert corpus.gap == (551, 1_000)  # never read: the part next to its validation split
    kind = rows[1]  # 60 streams of code, 550 of each read
    assert (kind.name, kind.size, kind.read, kind.whole) == ("code-c", 59_999, 60 * 550, 60 * 999)


def test_copies_out_of_step_with_the_streams_are_read_whole() -> None:
    # the same stage with copies of 1.5 streams: their starts fall half a stream apart, so 55% covers all
    rows = coverage(manifest(1_500, 4, 24_999, 63_999), batch=64, bptt=50, steps=11)
    assert (rows[0].read, rows[0].whole, rows[0].size, rows[0].share) == (1_500, 1_500, 1_500, 1.0)


def test_the_cli_reports_a_corpus_not_read_whole(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "manifest.json").write_text(json.dumps(manifest(1_000, 4, 24_999, 63_999)))
    # 64 x 128 and 3,000 steps are more than a pass here (1,000 positions < 384,000): all a pass reads
    assert main(["--data", str(tmp_path), "--preset", "broad-splits"]) == 0
    assert "english.txt" in capsys.readouterr().out
    assert main(["--data", str(tmp_path), "--preset", "broad-splits", "--steps", "4"]) == 1
    out, err = capsys.readouterr()
    assert "51.2%" in out.splitlines()[1] and "51%-100%" in out.splitlines()[1]  # 512 of 1,000 bytes
    assert err == "not read whole in 4 steps: english.txt\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--preset", "broad-splits"], "manifest.json: "),
        (["--preset", "awd-enwik8"], "draws random BPTT lengths"),
    ],
)
def test_the_cli_refuses_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    assert main(["--data", str(tmp_path / "missing"), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("broad_coverage: error: ") and message in err and err.count("\n") == 1
