"""Splitting rules, directory mode and the stream layout of the train split."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lnrnn.contract import BOS_ID
from lnrnn.errors import UserError
from lnrnn.train.data import TokenStreams, load_splits, parse_split, split_bounds


def test_default_split_is_90_5_5(tmp_path: Path) -> None:
    path = tmp_path / "corpus.txt"
    path.write_bytes(bytes(range(200)) * 5)  # 1000 bytes
    splits = load_splits(path)
    assert (len(splits.train), len(splits.valid), len(splits.test)) == (900, 50, 50)
    raw = path.read_bytes()
    assert bytes(splits.train) + bytes(splits.valid) + bytes(splits.test) == raw  # contiguous, in order
    assert "train [0, 900)" in splits.description


def test_custom_split(tmp_path: Path) -> None:
    path = tmp_path / "corpus.txt"
    path.write_bytes(b"x" * 1000)
    splits = load_splits(path, parse_split("0.8,0.1,0.1"))
    assert (len(splits.train), len(splits.valid), len(splits.test)) == (800, 100, 100)
    for bad in ("0.5,0.5", "0.9,0.2,0.1", "a,b,c", "0.9,0,0.1"):
        with pytest.raises(UserError):
            parse_split(bad)


@pytest.mark.parametrize("name", ["text8", "enwik8", "text8.zip", "enwik8.zip"])
def test_standard_split_naming_rule(name: str) -> None:
    assert split_bounds(Path(name), 100_000_000, None) == (0, 90_000_000, 95_000_000, 100_000_000)
    # An explicit split wins over the naming rule.
    assert split_bounds(Path(name), 1000, (0.8, 0.1, 0.1)) == (0, 800, 900, 1000)


def test_split_bounds_match_nanogpt_shakespeare_split() -> None:
    # nanoGPT: train = data[: int(n * 0.9)], val = the rest (1,003,854 and 111,540 bytes).
    n = 1_115_394
    assert split_bounds(Path("input.txt"), n, (0.9, 0.1, 0.0)) == (0, 1_003_854, n, n)
    assert split_bounds(Path("x"), 100, (0.29, 0.71, 0.0)) == (0, 29, 100, 100)


def test_other_names_use_fractions() -> None:
    assert split_bounds(Path("text8.txt"), 1000, None) == (0, 900, 950, 1000)
    assert split_bounds(Path("my_enwik8_copy"), 1000, None) == (0, 900, 950, 1000)


def test_tiny_file_named_text8_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "text8"
    path.write_bytes(b"abc" * 100)
    with pytest.raises(UserError, match="90M/5M/5M"):
        load_splits(path)
    assert len(load_splits(path, (0.9, 0.05, 0.05)).train) == 270


def test_directory_mode(tmp_path: Path) -> None:
    (tmp_path / "train.txt").write_bytes(b"a" * 300)
    (tmp_path / "valid.txt").write_bytes(b"b" * 30)
    (tmp_path / "test.txt").write_bytes(b"c" * 20)
    splits = load_splits(tmp_path)
    assert (bytes(splits.train), bytes(splits.valid), bytes(splits.test)) == (
        b"a" * 300,
        b"b" * 30,
        b"c" * 20,
    )


def test_directory_mode_ptb_style_names(tmp_path: Path) -> None:
    (tmp_path / "ptb.char.train.txt").write_bytes(b"a" * 10)
    (tmp_path / "ptb.char.valid.txt").write_bytes(b"b" * 10)
    splits = load_splits(tmp_path)
    assert len(splits.test) == 0 and bytes(splits.valid) == b"b" * 10
    (tmp_path / "val.txt").write_bytes(b"v")
    with pytest.raises(UserError, match="several valid files"):
        load_splits(tmp_path)


def test_directory_without_valid(tmp_path: Path) -> None:
    (tmp_path / "train.txt").write_bytes(b"a" * 10)
    with pytest.raises(UserError, match="no valid file"):
        load_splits(tmp_path)


def test_streams_are_contiguous_and_start_with_bos() -> None:
    data = np.arange(99, dtype=np.uint8)  # tokens: BOS, 0..98 -> 100 tokens, 4 streams of 25
    streams = TokenStreams(data, batch=4, bptt=5)
    assert streams.length == 25
    x, y = streams.get(0, 5)
    assert x[0, 0] == BOS_ID and x[0, 1] == 0 and x[1, 0] == 24  # stream 1 continues where stream 0 ends
    np.testing.assert_array_equal(y[:, :-1], x[:, 1:])
    x_end, _ = streams.get(20, 5)
    assert x_end.shape == (4, 4)  # the tail is shorter, targets never run past a stream
    assert streams.exhausted(24)


def test_streams_are_sliced_per_process() -> None:
    data = np.arange(99, dtype=np.uint8)
    full = TokenStreams(data, batch=4, bptt=5)
    parts = [TokenStreams(data, batch=4, bptt=5, rank=r, world=2) for r in range(2)]
    np.testing.assert_array_equal(np.concatenate([p.get(3, 5)[0] for p in parts]), full.get(3, 5)[0])


def test_train_split_shorter_than_one_batch() -> None:
    with pytest.raises(UserError, match="fewer than one batch"):
        TokenStreams(np.zeros(100, dtype=np.uint8), batch=16, bptt=32)
