"""Every cell x norm x depth exports and passes verify; LayerNormalization nodes are explicit and counted."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest

from lnrnn.export.api import export_model
from lnrnn.export.quantize.scheme import op_counts
from tests.helpers import tiny_model, verify_text_for

LN_PER_LAYER = {"gru": 4, "mgu": 4, "lstm": 3}  # Ba et al.: x and h paths ([r;z] and n for GRU/MGU), LSTM + c
LN_X_PATH = {"gru": 2, "mgu": 2, "lstm": 1}  # of those, on the input path (layer 0's are in the fast table)

MATRIX = [
    (c, n, layers) for c in ("gru", "lstm", "mgu") for n in ("layer", "none", "batch") for layers in (1, 2)
]


def _scan_bodies(model: onnx.ModelProto) -> dict[str, dict[str, int]]:
    return {k: v for k, v in op_counts(model).items() if k != "main"}


@pytest.mark.parametrize(("cell", "norm", "layers"), MATRIX, ids=[f"{c}-{n}-L{k}" for c, n, k in MATRIX])
def test_fast_export_verifies(cell: str, norm: str, layers: int, tmp_path: Path) -> None:
    model = tiny_model(cell, norm, layers, hidden=16 if layers == 2 else 24)
    report = export_model(model, tmp_path, verify_data=verify_text_for(cell))
    assert report.ok and not report.failures
    assert report.bpc["abs_diff"] <= 1e-4
    assert max(report.max_abs_diff.values()) <= 1e-4

    step = onnx.load(str(tmp_path / "step.onnx"))
    seq = onnx.load(str(tmp_path / "sequence.onnx"))
    step_counts = op_counts(step)
    assert set(step_counts) == {"main"}  # no control flow in the step graph
    assert not {"Loop", "Scan", "If"} & set(step_counts["main"])
    per_layer = LN_PER_LAYER[cell] if norm == "layer" else 0
    assert step_counts["main"].get("LayerNormalization", 0) == layers * per_layer
    for counts in op_counts(seq).values():  # LN is never decomposed into ReduceMean & co.
        assert "ReduceMean" not in counts
    bodies = _scan_bodies(seq)
    assert len(bodies) == layers  # one Scan per layer, only the recurrent step inside
    x_lns = LN_X_PATH[cell] if norm == "layer" else 0
    assert sum(b.get("LayerNormalization", 0) for b in bodies.values()) == layers * (per_layer - x_lns)
    assert op_counts(seq)["main"].get("LayerNormalization", 0) == (layers - 1) * x_lns
    if norm == "batch":  # eval-mode BN: running statistics as an affine op, layer 0's inside the table
        assert step_counts["main"].get("BatchNormalization", 0) == layers
        assert op_counts(seq)["main"].get("BatchNormalization", 0) == layers - 1
        assert all(
            a.i == 0
            for n in step.graph.node
            if n.op_type == "BatchNormalization"
            for a in n.attribute
            if a.name == "training_mode"
        )


@pytest.mark.slow
@pytest.mark.parametrize("cell", ["gru", "lstm", "mgu"])
def test_generic_export_verifies(cell: str, tmp_path: Path) -> None:
    model = tiny_model(cell, "layer", 2, hidden=16)
    report = export_model(model, tmp_path, sequence="generic", verify_data=verify_text_for(cell))
    assert report.ok
    seq = onnx.load(str(tmp_path / "sequence.onnx"))
    bodies = _scan_bodies(seq)
    assert len(bodies) == 1
    (body,) = bodies.values()
    assert body["LayerNormalization"] == 2 * LN_PER_LAYER[cell]  # the whole step graph, per step
    assert op_counts(seq)["main"].get("LayerNormalization", 0) == 0


@pytest.mark.slow
@pytest.mark.parametrize(
    ("cell", "norm", "kw"),
    [
        ("lstm", "layer", {"embedding": 12}),  # E != H: projection before the tied output layer
        ("gru", "batch", {"embedding": 20, "sum_layers": True}),
        ("mgu", "layer", {"sum_layers": True}),
    ],
    ids=["lstm-E12", "gru-batch-E20-sum", "mgu-sum"],
)
@pytest.mark.parametrize("sequence", ["fast", "generic"])
def test_projection_and_sum_layers(
    cell: str, norm: str, kw: dict[str, object], sequence: str, tmp_path: Path
) -> None:
    model = tiny_model(cell, norm, 2, hidden=16, **kw)
    report = export_model(model, tmp_path, sequence=sequence, verify_data=verify_text_for(cell))
    assert report.ok and report.bpc["abs_diff"] <= 1e-4
