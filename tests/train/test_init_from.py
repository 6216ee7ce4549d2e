"""`lnrnn train --init-from RUN`: fine-tuning starts from RUN's best weights and architecture."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from lnrnn.cli import main
from lnrnn.train.checkpoint import load_model
from lnrnn.train.presets import resolve
from lnrnn.train.trainer import Trainer
from tests.helpers import read_jsonl, write_corpus

TINY = ["--preset", "tiny", "--quiet"]  # tiny says hidden 64; the source run below has 16


pytestmark = pytest.mark.slow  # trains a source run first


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("init_from")
    corpus = write_corpus(tmp / "c.txt", n=20_000)
    argv = ["train", "--data", str(corpus), "--out", str(tmp / "src"), *TINY, "--hidden", "16"]
    assert main([*argv, "--max-steps", "150", "--eval-interval", "150"]) == 0
    return corpus, tmp / "src"


def test_the_start_is_the_source_best_weights(source: tuple[Path, Path], tmp_path: Path) -> None:
    corpus, src = source
    model_cfg, cfg = resolve("tiny", {"hidden": 16, "data": str(corpus), "init_from": str(src)})
    trainer = Trainer(model_cfg, cfg, tmp_path / "ft", quiet=True)
    donor = load_model(src)[0].state_dict()
    mine = trainer.model.state_dict()
    assert mine.keys() == donor.keys()
    assert all(torch.equal(mine[k].cpu(), donor[k]) for k in donor)


def test_fine_tuning_starts_where_the_source_ended(source: tuple[Path, Path], tmp_path: Path) -> None:
    corpus, src = source
    common = ["--data", str(corpus), *TINY, "--max-steps", "1", "--log-interval", "1", "--eval-interval", "1"]
    assert (
        main(
            [
                "train",
                "--out",
                str(tmp_path / "ft"),
                "--init-from",
                str(src),
                "--dropout-output",
                "0.1",
                *common,
            ]
        )
        == 0
    )
    assert main(["train", "--out", str(tmp_path / "scratch"), "--hidden", "16", *common]) == 0
    first = {
        name: next(r["train/bpc"] for r in read_jsonl(tmp_path / name / "metrics.jsonl") if "train/bpc" in r)
        for name in ("ft", "scratch")
    }
    source_valid = json.loads((src / "best.json").read_text())["valid_bpc"]
    assert first["ft"] < first["scratch"] - 0.5, first  # a random start pays ~log2(257) bits
    assert first["ft"] == pytest.approx(source_valid, abs=0.3)
    config = json.loads((tmp_path / "ft" / "config.json").read_text())
    assert config["model"]["hidden"] == 16  # the source's architecture beats the preset's 64 ...
    assert config["model"]["dropout_output"] == 0.1  # ... but training-only fields come from the flags
    assert config["train"]["init_from"] == str(src.resolve())


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--hidden", "32"], "its weights fix hidden; drop those flags"),
        (["--cell", "lstm"], "its weights fix cell; drop those flags"),
    ],
)
def test_contradicting_the_source_is_one_line(
    source: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    message: str,
) -> None:
    corpus, src = source
    argv = [
        "train",
        "--data",
        str(corpus),
        "--out",
        str(tmp_path / "x"),
        *TINY,
        "--init-from",
        str(src),
        *extra,
    ]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("lnrnn train: error: --init-from ") and message in err and err.count("\n") == 1
    assert not (tmp_path / "x").exists()


def test_a_missing_source_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    corpus = write_corpus(tmp_path / "c.txt", n=5_000)
    argv = ["train", "--data", str(corpus), "--out", str(tmp_path / "x"), *TINY, "--init-from", "nope"]
    assert main(argv) == 2
    assert capsys.readouterr().err == (
        "lnrnn train: error: --init-from: nope does not exist (nor is it a shipped model's name)\n"
    )


def test_a_fine_tuning_preset_needs_a_source(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    corpus = write_corpus(tmp_path / "c.txt", n=5_000)
    argv = ["train", "--data", str(corpus), "--out", str(tmp_path / "x"), "--preset", "mix-finetune"]
    assert main(argv) == 2
    assert capsys.readouterr().err == (
        "lnrnn train: error: --preset mix-finetune fine-tunes a trained run: add --init-from RUN\n"
    )


def test_resuming_a_fine_tune_needs_resume_pt_not_the_source(
    source: tuple[Path, Path], tmp_path: Path
) -> None:
    corpus, src = source
    copy = tmp_path / "src-copy"
    shutil.copytree(src, copy)
    out = tmp_path / "ft"
    common = ["--data", str(corpus), *TINY, "--eval-interval", "1"]
    assert main(["train", "--out", str(out), "--init-from", str(copy), "--max-steps", "2", *common]) == 0
    shutil.rmtree(copy)  # the source run is gone; resume.pt has everything
    assert main(["train", "--out", str(out), "--resume", "--quiet", "--max-steps", "4"]) == 0
    assert json.loads((out / "last.json").read_text())["step"] == 4
