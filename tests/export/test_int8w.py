"""int8w: weight-only int8. int8 weights (one scale per output column, per row for Gather tables) turned back
into fp32 when the file loads; every operation after that is the fp32 graph's, so the numbers are exactly
those of an fp32 graph holding the dequantized weights."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper

from lnrnn.cli import main
from lnrnn.contract import PRECISION_FILES, ArtifactMetadata
from lnrnn.errors import UserError
from lnrnn.export.api import export_model
from lnrnn.export.quantize import weights
from lnrnn.export.quantize.directory import quantize_kinds
from tests.export.test_int8 import initializers
from tests.helpers import tiny_model


def test_quantize_array_scales_rows_or_columns() -> None:
    rng = np.random.default_rng(0)
    w = rng.standard_normal((40, 30)).astype(np.float32)
    w[:, 3] = 0.0  # an all-zero column keeps a positive scale and quantizes to zeros
    for axis in (0, 1):
        q, scales = weights.quantize_array(w, axis)
        assert q.dtype == np.int8 and q.shape == w.shape and np.abs(q).max() == weights.QMAX
        assert scales.shape == ((40, 1) if axis == 0 else (1, 30)) and (scales > 0).all()
        back = weights.dequantize(q, scales)
        assert back.dtype == np.float32
        assert (np.abs(back - w) <= scales / 2 * (1 + 1e-6)).all()  # round to nearest: half a step at most
    assert (weights.quantize_array(w, 1)[0][:, 3] == 0).all()
    with pytest.raises(ValueError, match="2-D array and axis 0 or 1"):
        weights.quantize_array(w[None], 0)


def dequantized_reference(model: onnx.ModelProto) -> onnx.ModelProto:
    """The fp32 ``model`` with each weight the int8w rewrite quantizes replaced by its dequantized value."""
    ref = onnx.ModelProto()
    ref.CopyFrom(model)
    graphs = [ref.graph, *weights.all_graphs(ref.graph)]
    for graph in graphs:
        uses: dict[str, list[tuple[str, int]]] = {}
        for node in graph.node:
            for slot, name in enumerate(node.input):
                uses.setdefault(name, []).append((node.op_type, slot))
        for init in graph.initializer:
            w = numpy_helper.to_array(init)
            axis = weights._axis(uses.get(init.name, []))
            if w.dtype == np.float32 and w.ndim == 2 and axis is not None and w.size >= weights.MIN_ELEMENTS:
                init.CopyFrom(
                    numpy_helper.from_array(weights.dequantize(*weights.quantize_array(w, axis)), init.name)
                )
    return ref


def run(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


@pytest.mark.parametrize("sequence", ["fast", "generic"])
def test_weight_only_graphs_compute_the_fp32_graph_on_dequantized_weights(
    sequence: str, tmp_path: Path, verify_text: bytes
) -> None:
    model = tiny_model("gru", "layer", 2, hidden=48)
    report = export_model(model, tmp_path, sequence=sequence, quantize="int8w", verify_data=verify_text)
    assert report.int8 is None and report.int8w is not None and report.int8w["kept"]
    assert report.int8w["scheme"] == weights.SCHEME and abs(report.int8w["bpc_delta"]) < 0.01
    rng = np.random.default_rng(1)
    state = rng.standard_normal((2, 3, 48)).astype(np.float32)
    feeds = {
        "step": {"token": np.array([256, 7, 200], dtype=np.int64), "state": state},
        "sequence": {"tokens": rng.integers(0, 257, (3, 20)).astype(np.int64), "state": state},
    }
    for graph in ("step", "sequence"):
        fp32 = onnx.load(str(tmp_path / f"{graph}.onnx"))
        int8w = onnx.load(str(tmp_path / f"{graph}.int8w.onnx"))
        for got, want in zip(
            run(int8w, feeds[graph]), run(dequantized_reference(fp32), feeds[graph]), strict=True
        ):
            np.testing.assert_array_equal(got, want)  # bit for bit: the same fp32 arithmetic
        # every weight of the embedding's size or larger is int8, in the main graph (Scan bodies read it)
        big = [t for t in initializers(int8w.graph) if np.prod(t.dims) >= model.embedding.weight.numel()]
        assert big and all(t.data_type == onnx.TensorProto.INT8 for t in big)
        assert {t.name for t in big} <= {t.name for t in int8w.graph.initializer}  # none left in a body
        assert (tmp_path / f"{graph}.int8w.onnx").stat().st_size < (
            tmp_path / f"{graph}.onnx"
        ).stat().st_size / 2.5
        meta = ArtifactMetadata.from_props({p.key: p.value for p in int8w.metadata_props})
        assert meta.int8_bpc_delta == pytest.approx(report.int8w["bpc_delta"])
    summary = report.int8w["quantized_ops"]["sequence.int8w.onnx"]
    assert summary["int8_tensors"] >= 4 and summary["int8_values"] > 10 * summary["fp32_values"]


def test_quantize_cli_writes_the_int8w_pair_beside_the_int8_pair(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], verify_text: bytes
) -> None:
    out = tmp_path / "model"
    export_model(tiny_model("gru", "layer", 2, hidden=48), out, quantize="int8", verify_data=verify_text)
    data = tmp_path / "data.txt"
    data.write_bytes(verify_text)
    assert main(["quantize", str(out), "--precision", "int8w", "--data", str(data)]) == 0
    printed = capsys.readouterr().out
    assert "int8w BPC delta" in printed and "int8w (int8 weights" in printed and "kept" in printed
    report = json.loads((out / "export_report.json").read_text())
    assert report["int8w"]["kept"] and report["int8"]["kept"]  # both sections, both pairs
    assert all(report["files"][name] > 0 for name in (*PRECISION_FILES["int8"], *PRECISION_FILES["int8w"]))
    names = [c["name"] for c in report["checks"]]
    assert main(["quantize", str(out), "--data", str(data)]) == 0  # int8 again: int8w's checks stay
    again = [c["name"] for c in json.loads((out / "export_report.json").read_text())["checks"]]
    assert (
        sorted(again) == sorted(names)
        and again.count("int8w BPC delta") == again.count("int8 BPC delta") == 1
    )


def test_quantize_kinds() -> None:
    assert quantize_kinds(None) == ()
    assert quantize_kinds("int8") == ("int8",)
    assert quantize_kinds("int8w, int8,int8w") == ("int8w", "int8")
    assert quantize_kinds(["int8w"]) == ("int8w",)
    for bad in ("fp16", "", "int8,nope"):
        with pytest.raises(UserError, match="expected one or more of int8, int8w, int4"):
            quantize_kinds(bad)


def test_export_cli_refuses_an_unknown_quantization_before_loading(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["export", str(tmp_path / "no-run"), "--out", str(tmp_path / "o"), "--quantize", "int8,int3"])
    assert exit_.value.code == 2
    assert "unknown quantization 'int8,int3'" in capsys.readouterr().err
