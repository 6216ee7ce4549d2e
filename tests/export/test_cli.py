"""`lnrnn export` end to end: success output, failed verification (exit 1), broken checkpoints (exit 2)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lnrnn.cli import main
from lnrnn.export.verify import checks as verify
from lnrnn.train.checkpoint import save_model
from tests.helpers import tiny_model


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    save_model(
        run,
        "best",
        tiny_model("lstm", "layer", 1, hidden=16),
        {"valid_bpc": 3.25, "train_data": "t", "step": 1},
    )
    return run


@pytest.fixture
def verify_file(tmp_path: Path) -> Path:
    path = tmp_path / "verify.txt"
    path.write_bytes(b"First Citizen:\nBefore we proceed any further, hear me speak.\n"[:48])
    return path


def test_export_cli_success(
    run_dir: Path, verify_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "model"
    code = main(
        [
            "export",
            str(run_dir),
            "--out",
            str(out),
            "--sequence",
            "generic",
            "--verify-data",
            str(verify_file),
        ]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "-[✓] BPC on 48 verify bytes" in captured.out and "-[x]" not in captured.out
    report = json.loads((out / "export_report.json").read_text())
    assert report["ok"] and report["sequence"] == "generic" and report["bpc"]["n_bytes"] == 48
    assert {"step.onnx", "sequence.onnx"} <= set(report["files"])


def test_export_cli_failed_check_exits_1(
    run_dir: Path,
    verify_file: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(verify, "ATOL_LOGPROB", -1.0)  # every log-prob comparison must now fail
    code = main(["export", str(run_dir), "--out", str(tmp_path / "m"), "--verify-data", str(verify_file)])
    captured = capsys.readouterr()
    assert code == 1
    assert "-[x] sequence.onnx token_logprobs" in captured.out
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "ToleranceError" in lines[0] and "Traceback" not in captured.err
    assert not json.loads((tmp_path / "m" / "export_report.json").read_text())["ok"]


def _truncate(run: Path) -> None:
    weights = run / "best.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])


def _inconsistent(run: Path) -> None:
    meta_path = run / "best.json"
    meta = json.loads(meta_path.read_text())
    meta["model"]["hidden"] = 20
    meta_path.write_text(json.dumps(meta))


def _bad_cell(run: Path) -> None:
    meta_path = run / "best.json"
    meta = json.loads(meta_path.read_text())
    meta["model"]["cell"] = "transformer"
    meta_path.write_text(json.dumps(meta))


@pytest.mark.parametrize(
    "breakage",
    [None, _truncate, _inconsistent, _bad_cell],
    ids=["missing", "truncated", "inconsistent", "bad-cell"],
)
def test_bad_checkpoint_one_line_exit_2(
    breakage: object, run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "does-not-exist" if breakage is None else run_dir
    if callable(breakage):
        breakage(run_dir)
    code = main(["export", str(source), "--out", str(tmp_path / "m")])
    captured = capsys.readouterr()
    assert code == 2
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lnrnn export: error: ")
    assert "Traceback" not in captured.err + captured.out
    assert not (tmp_path / "m" / "step.onnx").exists()


def test_missing_verify_data_exit_2(
    run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        ["export", str(run_dir), "--out", str(tmp_path / "m"), "--verify-data", str(tmp_path / "nope")]
    )
    assert code == 2 and "is not a file" in capsys.readouterr().err


def test_quantize_cli_rewrites_the_int8_pair_of_an_export(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`lnrnn quantize DIR` needs no checkpoint: it reads the fp32 graphs and updates the export report."""
    from lnrnn.export.api import export_model

    out = tmp_path / "model"
    text = verify.default_verify_data()[:2000]
    export_model(tiny_model("gru", "layer", 2, hidden=48), out, verify_data=text)
    assert not (out / "sequence.int8.onnx").exists()
    data = tmp_path / "data.txt"
    data.write_bytes(text)
    assert main(["quantize", str(out), "--data", str(data)]) == 0
    printed = capsys.readouterr().out
    assert "int8 BPC delta" in printed and "kept" in printed
    report = json.loads((out / "export_report.json").read_text())
    assert report["int8"]["kept"] and report["files"]["sequence.int8.onnx"] > 0
    assert [c["name"] for c in report["checks"]].count("int8 BPC delta") == 1
    assert main(["quantize", str(out), "--data", str(data)]) == 0  # again: replaces, never duplicates
    report = json.loads((out / "export_report.json").read_text())
    assert [c["name"] for c in report["checks"]].count("int8 BPC delta") == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["quantize", "{tmp}/nope"], "does not exist"),
        (["quantize", "{tmp}", "--data", "{tmp}/missing.txt"], "is not a file"),
    ],
)
def test_quantize_cli_bad_input_is_one_line(
    args: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if "--data" in args:
        from lnrnn.export.api import export_model

        export_model(tiny_model("gru", "layer", 1), tmp_path, verify_data=b"some text")
    assert main([a.format(tmp=tmp_path) for a in args]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("lnrnn quantize: error:") and message in err
