"""verify collects every failure as a typed error instead of stopping at the first one."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
import torch

from lnrnn.export.api import export_model
from lnrnn.export.errors import OutputNameError, ToleranceError, VerificationError
from lnrnn.export.verify import checks as verify
from lnrnn.export.verify.checks import verify_export
from tests.helpers import tiny_model


@pytest.fixture
def exported(tmp_path: Path) -> tuple[torch.nn.Module, Path]:
    model = tiny_model("gru", "layer", 1, hidden=16)
    export_model(model, tmp_path, verify_data=b"hello world")
    return model, tmp_path


def test_renamed_output_is_an_output_name_error(exported: tuple[torch.nn.Module, Path]) -> None:
    model, out = exported
    seq = onnx.load(str(out / "sequence.onnx"))
    old = seq.graph.output[1].name
    seq.graph.output[1].name = "logits"
    for node in seq.graph.node:
        node.output[:] = ["logits" if o == old else o for o in node.output]
    onnx.save(seq, str(out / "sequence.onnx"))
    result = verify_export(model, out / "step.onnx", out / "sequence.onnx", b"hello world")
    assert [type(f) for f in result.failures] == [OutputNameError]
    assert any(c.line().startswith("-[x] sequence.onnx outputs") for c in result.checks)


def test_changed_weights_give_tolerance_errors(exported: tuple[torch.nn.Module, Path]) -> None:
    model, out = exported
    with torch.no_grad():
        model.output_bias[65] += 1.0  # the ONNX files still hold the old bias
    result = verify_export(model, out / "step.onnx", out / "sequence.onnx", b"hello world")
    kinds = {type(f) for f in result.failures}
    assert kinds == {ToleranceError} and len(result.failures) >= 4  # step, sequence and BPC all caught


def test_export_model_raises_once_after_writing_the_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(verify, "BPC_TOL", -1.0)
    with pytest.raises(VerificationError, match="ToleranceError") as info:
        export_model(tiny_model("mgu", "none", 1, hidden=16), tmp_path, verify_data=b"hello world")
    assert [type(f) for f in info.value.failures] == [ToleranceError]
    assert info.value.report is not None and not info.value.report.ok
    assert (tmp_path / "export_report.json").is_file()


def test_fresh_export_of_changed_model_passes(exported: tuple[torch.nn.Module, Path], tmp_path: Path) -> None:
    model, _ = exported
    with torch.no_grad():
        model.output_bias[65] += 1.0
    assert export_model(model, tmp_path / "fresh", verify_data=b"hello world").ok
