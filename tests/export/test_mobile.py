"""`lnrnn export-mobile`: every ORT-format file loads in onnxruntime, keeps the contract metadata, and scores
within 1e-5 bits/byte of its ONNX file; the operator config and the report say what a reduced build needs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from lnrnn.bpc import bits_per_byte
from lnrnn.cli import main
from lnrnn.contract import ArtifactMetadata
from lnrnn.export.mobile import CONFIG_FILE, REPORT_FILE, export_mobile
from lnrnn.scorer import Scorer, document_array

TEXT = "Mobile: the same bits on a phone. Größe, 日本語, emoji 🙂.\n".encode() * 4
TOLERANCE = 1e-5  # bits/byte


def session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def sequence_bpb(path: Path) -> float:
    graph = session(path)
    meta = ArtifactMetadata.from_props(graph.get_modelmeta().custom_metadata_map)
    scorer = Scorer(graph, np.asarray(meta.initial_state, dtype=np.float32))
    return bits_per_byte(scorer.score(TEXT).nats, len(TEXT))


def step_bpb(path: Path) -> float:
    graph = session(path)
    meta = ArtifactMetadata.from_props(graph.get_modelmeta().custom_metadata_map)
    state = np.asarray(meta.initial_state, dtype=np.float32)[:, None, :]
    tokens = document_array(TEXT)
    nats = 0.0
    for token, target in zip(tokens[:-1], tokens[1:], strict=True):
        logprobs, state = graph.run(None, {"token": np.array([token]), "state": state})
        nats -= float(logprobs[0, target])
    return bits_per_byte(nats, len(TEXT))


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_ort_files_score_as_their_onnx(
    precision: str, model_dir: Path, int8_dir: Path, tmp_path: Path
) -> None:
    source = model_dir if precision == "fp32" else int8_dir
    report = export_mobile(source, tmp_path, precisions=(precision,))
    assert [f.name for f in report.files] == (
        ["step.ort", "sequence.ort"] if precision == "fp32" else ["step.int8.ort", "sequence.int8.ort"]
    )
    for f in report.files:
        assert (tmp_path / f.name).stat().st_size == f.bytes > 0
        score = sequence_bpb if f.name.startswith("sequence") else step_bpb
        assert abs(score(tmp_path / f.name) - score(source / f.source)) <= TOLERANCE, f.name
        assert f.opsets["ai.onnx"] >= 17  # LayerNormalization is an ai.onnx operator from opset 17
    assert any(op.endswith(";LayerNormalization") for op in report.operators)
    config = (tmp_path / CONFIG_FILE).read_text()
    assert "LayerNormalization" in config and ("MatMulInteger" in config) == (precision == "int8")
    written = json.loads((tmp_path / REPORT_FILE).read_text())
    assert written["operators"] == report.operators and written["target_platform"] == "arm"


def test_cli_and_bad_input(model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export-mobile", str(model_dir), "--out", str(tmp_path / "m"), "--precision", "fp32"]) == 0
    out = capsys.readouterr().out
    assert "step.ort" in out and "sequence.ort" in out and CONFIG_FILE in out
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["export-mobile", str(empty), "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "lnrnn export" in err
    assert main(["export-mobile", str(tmp_path / "missing"), "--out", str(tmp_path / "x")]) == 2
    assert "does not exist" in capsys.readouterr().err
