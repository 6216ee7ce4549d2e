"""`lnrnn train --init-from MODEL_DIR`: fine-tuning a shipped or exported model whose training run is gone.

The weights come back from ``step.onnx`` exactly (every tensor equal to the model that was exported), so the
fine-tune starts where the export ended; anything that is not an exported layer-norm GRU is one line.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from lnrnn.cli import main
from lnrnn.export.api import export_model
from lnrnn.train.from_export import model_from_export, resolve_source
from lnrnn.train.model import ByteLM, ModelConfig
from tests.helpers import VERIFY_DATA, TinyModel, write_corpus


def test_weights_come_back_exactly(tiny: TinyModel) -> None:
    restored = model_from_export(tiny.dir).state_dict()
    original = tiny.model.state_dict()
    assert restored.keys() == original.keys()
    assert all(torch.equal(restored[k], original[k]) for k in original)


def test_restored_model_scores_as_the_original(tiny: TinyModel) -> None:
    text = b"the restored model predicts what the exported one did\n"
    ids = torch.tensor([[256, *text]])
    with torch.no_grad():
        a = model_from_export(tiny.dir)(ids)[0]
        b = tiny.model(ids)[0]
    assert torch.equal(a, b)


def test_a_shipped_name_resolves_to_its_directory() -> None:
    resolved = resolve_source(Path("default"))
    assert resolved.name == "default" and (resolved / "step.onnx").is_file()


def test_fine_tune_from_an_export_via_the_cli(tiny: TinyModel, tmp_path: Path) -> None:
    corpus = write_corpus(tmp_path / "c.txt", n=6_000)
    out = tmp_path / "ft"
    argv = ["train", "--data", str(corpus), "--out", str(out), "--init-from", str(tiny.dir), "--quiet"]
    argv += ["--batch-size", "4", "--bptt", "16", "--max-steps", "1", "--eval-interval", "1", "--lr", "1e-12"]
    assert main(argv) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["model"]["hidden"] == 32 and config["model"]["layers"] == 2  # the export's architecture
    assert config["train"]["init_from"] == str(tiny.dir.resolve())
    # one step at lr 1e-12 leaves the weights as they came from step.onnx (up to Adam's first step size)
    from lnrnn.train.checkpoint import load_model

    tuned = load_model(out, "last")[0].state_dict()
    for k, v in tiny.model.state_dict().items():
        assert torch.allclose(tuned[k], v, atol=1e-9), k


def test_architecture_flags_that_contradict_the_export_are_refused(
    tiny: TinyModel, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    corpus = write_corpus(tmp_path / "c.txt", n=2_000)
    argv = ["train", "--data", str(corpus), "--out", str(tmp_path / "ft"), "--init-from", str(tiny.dir)]
    assert main([*argv, "--hidden", "64", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "hidden" in err


def test_an_lstm_export_is_refused_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    torch.manual_seed(0)
    lstm = ByteLM(ModelConfig(cell="lstm", hidden=16, layers=1))
    export_model(lstm, tmp_path / "lstm", verify_data=VERIFY_DATA, train_data="tests")
    corpus = write_corpus(tmp_path / "c.txt", n=2_000)
    argv = [
        "train",
        "--data",
        str(corpus),
        "--out",
        str(tmp_path / "ft"),
        "--init-from",
        str(tmp_path / "lstm"),
    ]
    assert main([*argv, "--quiet", "--max-steps", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "layer-norm GRU" in err


def test_a_missing_source_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    corpus = write_corpus(tmp_path / "c.txt", n=2_000)
    argv = ["train", "--data", str(corpus), "--out", str(tmp_path / "ft"), "--init-from", "no-such-model"]
    assert main([*argv, "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "no-such-model" in err
