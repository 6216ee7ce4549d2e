"""``--model NAME`` / ``LNRNN_MODEL_DIR=NAME``: a shipped model by its name, from any directory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lnrnn.cli import main
from lnrnn.serve.config import Settings, shipped_model


def test_a_bare_name_is_the_shipped_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert Settings(model_dir=Path("default")).model_dir == shipped_model("default")
    monkeypatch.setenv("LNRNN_MODEL_DIR", "default")
    assert Settings().model_dir == shipped_model("default")
    (tmp_path / "default").mkdir()  # a directory of that name here wins: paths mean what they say
    assert Settings(model_dir=Path("default")).model_dir == Path("default")
    assert Settings(model_dir=Path("no-such-model")).model_dir == Path("no-such-model")
    assert Settings(model_dir=Path("sub/default")).model_dir == Path("sub/default")  # not a bare name


def test_an_unknown_name_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["predict", "Th", "--model", "no-such-model"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no-such-model" in err


def test_score_by_name_from_another_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "t.txt").write_bytes(b"The quick brown fox")
    assert main(["score", "t.txt", "--model", "default", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["model"] == str(shipped_model("default"))
