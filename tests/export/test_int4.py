"""int4: 4-bit weights (MatMulNBits, GatherBlockQuantized), fp32 activations; LayerNormalization stays.

The tiny random models of the other quantize tests; the default model's numbers are in its model card and
tests/bench/test_default_model.py."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper

from lnrnn.bpc import bits_per_byte
from lnrnn.cli import main
from lnrnn.contract import (
    INT4_MAX_BPC_DELTA,
    PRECISION_FILES,
    SEQUENCE_FILE,
    SEQUENCE_INT4_FILE,
    STEP_INT4_FILE,
    ArtifactMetadata,
)
from lnrnn.export.api import count_ops, export_model
from lnrnn.export.quantize import int4, weights
from lnrnn.export.verify import runtime
from lnrnn.export.verify.checks import default_verify_data
from lnrnn.scorer import Scorer
from lnrnn.serve.app import create_app
from lnrnn.serve.config import Settings
from lnrnn.serve.engine.runtime import ModelLoadError, Runtime
from tests.export.test_int8 import initializers
from tests.helpers import TestClient, settings_for, tiny_model

# Measured |BPC(int4) - BPC(fp32)| of these random models on the held-out bytes below: at most 0.0069
# (H = 48 and 64, fast and generic sequence graphs). Packing mistakes moved it further on the H = 48 model:
# nibbles swapped -0.027, every scale one block off +0.037.
RANDOM_MODEL_INT4_BOUND = 0.02
BATCH_TOLERANCE = 1e-4  # nats per byte: what the serving tests allow between batchings of one text


@pytest.fixture(scope="module")
def held_out() -> bytes:
    """Bytes the export did not measure on (the verify text is the first 1,200)."""
    return default_verify_data()[2000:4000]


@pytest.fixture(scope="module")
def int4_dir(tmp_path_factory: pytest.TempPathFactory, verify_text: bytes) -> Path:
    """A 2x64 GRU (D = 64: the step graph's tied embedding shares the output layer's 4-bit values) with its
    int4 pair and, beside it, the int8 pair."""
    out = tmp_path_factory.mktemp("tiny-int4")
    report = export_model(
        tiny_model("gru", "layer", 2, hidden=64), out, quantize="int8,int4", verify_data=verify_text
    )
    assert report.int4 is not None and report.int4["kept"]
    return out


def test_packing_layout_and_error() -> None:
    # one column holding -8..7 twice: its extreme (-8) gives the scale 1 and every value is exact
    column = np.tile(np.arange(-8, 8, dtype=np.float32), 2)[:, None]
    packed = int4.quantize_blocks(column, 32)
    assert packed.data.shape == (1, 1, 16) and packed.scales.dtype == np.float16
    assert packed.scales[0, 0] == -1.0 or packed.scales[0, 0] == 1.0
    u = (column[:, 0] / float(packed.scales[0, 0])).astype(np.int64) + 8  # 4-bit values around 8
    expected = (u[0::2] | (u[1::2] << 4)).astype(np.uint8)  # in order of K, the first in the low nibble
    np.testing.assert_array_equal(packed.data[0, 0], expected)
    np.testing.assert_array_equal(int4.dequantize(packed), column)

    rng = np.random.default_rng(0)
    w = rng.standard_normal((100, 30)).astype(np.float32)  # K = 100: the last block of 32 is padded
    w[:, 3] = 0.0
    packed = int4.quantize_blocks(w, 32)
    assert packed.data.shape == (30, 4, 16) and packed.scales.shape == (30, 4)
    back = int4.dequantize(packed)
    assert back.shape == w.shape and (back[:, 3] == 0).all()
    # each block's value of largest magnitude is its scale times -8; the rest round to the nearest step, or
    # clip to 7 steps on the other side (half a step off, or one step at most)
    padded = np.zeros((30, 128), dtype=np.float32)
    padded[:, :100] = w.T
    blocks = padded.reshape(30, 4, 32)
    extreme = np.take_along_axis(blocks, np.argmax(np.abs(blocks), axis=2)[..., None], axis=2)
    s = packed.scales.astype(np.float32)[..., None]
    live = extreme[..., 0] != 0  # the all-zero column keeps the scale 1
    assert not live[3].any() and live.sum() == 29 * 4
    np.testing.assert_allclose(extreme[..., 0][live], -8 * s[..., 0][live], rtol=2**-10)
    ours = np.zeros((30, 128), dtype=np.float32)
    ours[:, :100] = back.T
    err = np.abs(ours.reshape(30, 4, 32) - blocks)
    clipped = blocks / s > 7.5
    assert clipped.any() and (err <= np.abs(s) * np.where(clipped, 1.0, 0.5) * (1 + 1e-5)).all()
    with pytest.raises(ValueError, match="block size"):
        int4.quantize_blocks(w, 48)


def dequantized_reference(model: onnx.ModelProto, block_size: int = int4.BLOCK_SIZE) -> onnx.ModelProto:
    """The fp32 ``model`` with every MatMul weight and Gather table replaced by its 4-bit value."""
    ref = onnx.ModelProto()
    ref.CopyFrom(model)
    for graph in weights.all_graphs(ref.graph):
        ops = {name: n.op_type for n in graph.node for name in n.input}
        for init in graph.initializer:
            w = numpy_helper.to_array(init)
            if w.dtype != np.float32 or w.ndim != 2 or w.size < int4.MIN_ELEMENTS:
                continue
            if ops.get(init.name) == "MatMul":
                back = int4.dequantize(int4.quantize_blocks(w, block_size))
            elif ops.get(init.name) == "Gather":
                back = int4.dequantize(int4.quantize_blocks(w.T, block_size)).T
            else:
                continue
            init.CopyFrom(numpy_helper.from_array(back, init.name))
    return ref


def run(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


@pytest.mark.parametrize(("hidden", "sequence"), [(48, "fast"), (48, "generic"), (64, "fast")])
def test_export_writes_the_int4_pair(
    hidden: int, sequence: str, tmp_path: Path, verify_text: bytes, held_out: bytes
) -> None:
    model = tiny_model("gru", "layer", 2, hidden=hidden)  # H = 48: blocks of 64 padded; 64: tied and exact
    report = export_model(model, tmp_path, sequence=sequence, quantize="int4", verify_data=verify_text)
    assert report.ok and report.int8 is None and report.int4 is not None and report.int4["kept"]
    assert report.int4["scheme"] == int4.SCHEME and report.int4["max_delta"] == INT4_MAX_BPC_DELTA
    rng = np.random.default_rng(1)
    state = rng.standard_normal((2, 3, hidden)).astype(np.float32)
    feeds = {
        "step": {"token": np.array([256, 7, 200], dtype=np.int64), "state": state},
        "sequence": {"tokens": rng.integers(0, 257, (3, 20)).astype(np.int64), "state": state},
    }
    for graph in ("step", "sequence"):
        fp32 = onnx.load(str(tmp_path / f"{graph}.onnx"))
        q = onnx.load(str(tmp_path / f"{graph}.int4.onnx"))
        # the fp32 graph on the 4-bit weights: the packing puts every value and scale where ORT reads it
        reference = run(dequantized_reference(fp32), feeds[graph])
        for got, want in zip(run(q, feeds[graph]), reference, strict=True):
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
        ops = int4.int4_summary(q)
        assert all(counts.get("MatMul", 0) == 0 and counts.get("Gemm", 0) == 0 for counts in ops.values())
        assert count_ops(q, "MatMulNBits") == count_ops(fp32, "MatMul") > 0
        assert count_ops(q, "GatherBlockQuantized") == 1  # the byte table (embedding or layer-0 input path)
        assert count_ops(q, "LayerNormalization") == count_ops(fp32, "LayerNormalization") > 0
        # no big fp32 tensor is left: every weight of the embedding's size or larger is 4-bit (uint8 pairs)
        big = [t for t in initializers(q.graph) if np.prod(t.dims) >= model.embedding.weight.numel() // 2]
        assert big and all(t.data_type == onnx.TensorProto.UINT8 for t in big)
        size = (tmp_path / f"{graph}.int4.onnx").stat().st_size
        assert size < (tmp_path / f"{graph}.onnx").stat().st_size / 3
        meta = ArtifactMetadata.from_props({p.key: p.value for p in q.metadata_props})
        assert meta.int8_bpc_delta == pytest.approx(report.int4["bpc_delta"])
    if sequence == "fast":  # the layer Scans' bodies hold their recurrent MatMuls
        found = report.int4["quantized_ops"][SEQUENCE_INT4_FILE]
        bodies = [g for g in found if g != "main"]
        assert bodies and all(found[g]["MatMulNBits"] for g in bodies)
    step = onnx.load(str(tmp_path / STEP_INT4_FILE))
    gather = next(n for n in step.graph.node if n.op_type == "GatherBlockQuantized")
    matmul_b = {n.input[1] for n in step.graph.node if n.op_type == "MatMulNBits"}
    assert (gather.input[0] in matmul_b) is (hidden % int4.BLOCK_SIZE == 0)  # tied: one copy of the values

    initial = np.asarray(meta.initial_state, dtype=np.float32)
    bits = {
        name: bits_per_byte(runtime.document_nats(tmp_path / name, initial, held_out), len(held_out))
        for name in ("sequence.onnx", SEQUENCE_INT4_FILE)
    }
    delta = bits[SEQUENCE_INT4_FILE] - bits["sequence.onnx"]
    assert delta != 0.0 and abs(delta) <= RANDOM_MODEL_INT4_BOUND


def test_numbers_do_not_depend_on_batching_or_cuts(int4_dir: Path, held_out: bytes) -> None:
    path = int4_dir / SEQUENCE_INT4_FILE
    meta = ArtifactMetadata.from_props({p.key: p.value for p in onnx.load(str(path)).metadata_props})
    initial = np.asarray(meta.initial_state, dtype=np.float32)
    texts = [held_out[i * 300 : (i + 1) * 300] for i in range(4)]
    alone = [runtime.scorer(path, initial).score(t, per_byte=True).byte_nats for t in texts]
    for chunk in (1, 7, 512):
        scorer = Scorer(runtime.open_session(path), initial, chunk_tokens=chunk)
        batch = scorer.score_many(texts, per_byte=True)  # equal lengths: one batch of 4 rows
        for got, want in zip(batch, alone, strict=True):
            assert np.abs(got.byte_nats - want).max() <= BATCH_TOLERANCE
    scorer = runtime.scorer(path, initial)
    whole = scorer.feed_text(texts[0])
    first = scorer.feed_text(texts[0][:123])
    second = scorer.feed_text(texts[0][123:], first.state, first.last)  # two calls, one text
    parts = float(first.nats[0] + second.nats[0])
    assert abs(parts - float(whole.nats[0])) <= BATCH_TOLERANCE * len(texts[0])
    np.testing.assert_allclose(second.last, whole.last, atol=BATCH_TOLERANCE)


def fp32_export(tmp_path: Path, verify_text: bytes, hidden: int) -> tuple[Path, Path]:
    """A 2-layer GRU exported without quantized files, and the verify text as a file for ``--data``."""
    out, data = tmp_path / "model", tmp_path / "data.txt"
    export_model(tiny_model("gru", "layer", 2, hidden=hidden), out, verify_data=verify_text)
    data.write_bytes(verify_text)
    return out, data


def test_quantize_cli_bits_4_and_precision_int4(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], verify_text: bytes
) -> None:
    out, data = fp32_export(tmp_path, verify_text, hidden=48)
    assert main(["quantize", str(out), "--bits", "4", "--data", str(data)]) == 0
    printed = capsys.readouterr().out
    assert "int4 BPC delta" in printed and "(<= 0.03); int4 files kept" in printed
    assert f"int4 ({int4.SCHEME}): kept" in printed
    report = json.loads((out / "export_report.json").read_text())
    assert report["int4"]["kept"] and report["int4"]["scheme"] == int4.SCHEME and report["int8"] is None
    assert all(report["files"][name] > 0 for name in PRECISION_FILES["int4"])
    assert "quantize_int4" in report["timings_s"]
    first = (out / STEP_INT4_FILE).read_bytes()
    assert main(["quantize", str(out), "--precision", "int4", "--data", str(data)]) == 0  # the same thing
    assert (out / STEP_INT4_FILE).read_bytes() == first
    names = [c["name"] for c in json.loads((out / "export_report.json").read_text())["checks"]]
    assert names.count("int4 BPC delta") == 1
    capsys.readouterr()
    for args in (["--bits", "4", "--precision", "int8w"], ["--bits", "8", "--precision", "int4"]):
        assert main(["quantize", str(out), *args]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and err.startswith("lnrnn quantize: error: --bits")
    assert main(["quantize", str(out), "--bits", "8", "--data", str(data)]) == 0  # --bits 8: int8
    assert all((out / name).is_file() for name in PRECISION_FILES["int8"])


def test_int4_files_deleted_when_the_delta_is_too_big(
    tmp_path: Path, verify_text: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(int4, "MAX_BPC_DELTA", -1.0)
    report = export_model(tiny_model("gru", "layer", 1), tmp_path, quantize="int4", verify_data=verify_text)
    assert report.ok and report.int4 is not None and not report.int4["kept"]
    assert not any((tmp_path / name).exists() for name in PRECISION_FILES["int4"])


def block_sizes(path: Path) -> set[int]:
    """The ``block_size`` attributes of a graph's 4-bit nodes, Scan bodies included."""
    sizes = set()
    for graph in weights.all_graphs(onnx.load(str(path)).graph):
        for node in graph.node:
            if node.op_type in int4.INT4_OPS:
                sizes |= {a.i for a in node.attribute if a.name == "block_size"}
    return sizes


def test_quantize_block_size_and_max_delta(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], verify_text: bytes
) -> None:
    out, data = fp32_export(tmp_path, verify_text, hidden=64)
    assert main(["quantize", str(out), "--bits", "4", "--data", str(data)]) == 0
    at_64 = json.loads((out / "export_report.json").read_text())["int4"]
    assert at_64["block_size"] == 64 and block_sizes(out / STEP_INT4_FILE) == {64}
    args = [
        "quantize",
        str(out),
        "--bits",
        "4",
        "--block-size",
        "16",
        "--max-delta",
        "0.5",
        "--data",
        str(data),
    ]
    assert main(args) == 0
    at_16 = json.loads((out / "export_report.json").read_text())["int4"]
    assert at_16["block_size"] == 16 and at_16["max_delta"] == 0.5 and at_16["scheme"] == int4.scheme(16)
    assert block_sizes(out / STEP_INT4_FILE) == block_sizes(out / SEQUENCE_INT4_FILE) == {16}
    assert at_16["bpc_delta"] != at_64["bpc_delta"]  # other scales, other numbers, measured again
    assert Runtime.load(out, device="cpu", precision="int4").score(data.read_bytes()).nats > 0
    capsys.readouterr()
    # a bound below the measured delta deletes the files, as the export's own bound does
    assert at_16["bpc_delta"] > 0
    tight = ["--max-delta", str(at_16["bpc_delta"] / 2)]
    assert main([*args[:6], *tight, "--data", str(data)]) == 1
    assert not any((out / name).exists() for name in PRECISION_FILES["int4"])
    for bad, message in ((["--block-size", "8"], "block size"), (["--max-delta", "0"], "must be > 0")):
        assert main(["quantize", str(out), "--bits", "4", *bad, "--data", str(data)]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and message in err
    assert main(["quantize", str(out), "--block-size", "16", "--data", str(data)]) == 2  # int8 has no blocks
    assert "int4 setting" in capsys.readouterr().err


def test_quantized_files_carry_no_shape_hints(tmp_path: Path, verify_text: bytes) -> None:
    """int8's quantizer writes ``value_info`` (shape hints ONNX Runtime infers again); the kept files drop
    them: 5% of a small model's bytes."""
    from lnrnn.export.quantize import scheme

    out = tmp_path / "model"
    export_model(
        tiny_model("gru", "layer", 2, hidden=64), out, quantize="int8,int8w,int4", verify_data=verify_text
    )

    def hints(path: Path) -> int:
        return sum(len(g.value_info) for g in weights.all_graphs(onnx.load(str(path)).graph))

    scheme.quantize_file(out / SEQUENCE_FILE, tmp_path / "raw.onnx")  # the quantizer's own output
    assert hints(tmp_path / "raw.onnx") > 0
    for precision in ("int8", "int8w", "int4"):
        assert all(hints(out / name) == 0 for name in PRECISION_FILES[precision]), precision


def test_export_cli_accepts_quantize_int4(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from lnrnn.train.checkpoint import save_model

    run = tmp_path / "run"
    save_model(run, "best", tiny_model("gru", "layer", 1, hidden=32), {"valid_bpc": 3.2, "train_data": "t"})
    out = tmp_path / "model"
    assert main(["export", str(run), "--out", str(out), "--quantize", "int8w,int4"]) == 0
    printed = capsys.readouterr().out
    assert "int4 BPC delta" in printed and "int4 files kept" in printed
    assert all((out / name).is_file() for name in (*PRECISION_FILES["int4"], *PRECISION_FILES["int8w"]))


def test_runtime_loads_int4_only_when_asked(int4_dir: Path, tmp_path: Path) -> None:
    loaded = Runtime.load(int4_dir, device="cpu", precision="int4")
    fp32 = Runtime.load(int4_dir, device="cpu", precision="fp32")
    assert loaded.precision == "int4" and not loaded.int8 and "int4" in loaded.describe()
    assert loaded.meta.int8_bpc_delta is not None and loaded.meta.int8_bpc_delta <= INT4_MAX_BPC_DELTA
    text = "int4: héllo wörld ".encode() * 4
    a, b = loaded.score(text).nats, fp32.score(text).nats
    assert a != b and abs(a - b) / len(text) < 0.05  # really another graph, and close
    assert Runtime.load(int4_dir, device="cpu").precision == "int8"  # auto: what it chose before
    no_int8 = tmp_path / "no-int8"
    shutil.copytree(int4_dir, no_int8, ignore=shutil.ignore_patterns("*.int8.onnx"))
    assert Runtime.load(no_int8, device="cpu").precision == "fp32"  # auto never picks int4
    plain = tmp_path / "plain"
    shutil.copytree(int4_dir, plain, ignore=shutil.ignore_patterns("*.int4.onnx"))
    with pytest.raises(ModelLoadError, match=r"no step.int4.onnx and sequence.int4.onnx .*--bits 4"):
        Runtime.load(plain, device="cpu", precision="int4")


def test_server_at_precision_int4(int4_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = "int4 over HTTP: héllo wörld"
    with TestClient(create_app(settings_for(int4_dir, precision="int4"))) as client:
        response = client.get("/v1/models")
        assert response.status_code == 200
        info = response.json()["models"][0]
        assert info["precision"] == "int4" and info["int8"] is False and info["int8_bpc_delta"] is not None
        scored = client.post("/v1/score", json={"text": text})
        assert scored.status_code == 200
        expected = Runtime.load(int4_dir, device="cpu", precision="int4").score(text.encode()).nats
        assert scored.json()["bits"] == pytest.approx(expected / np.log(2), abs=1e-6)
        predicted = client.post("/v1/predict", json={"text": "héllo", "top_k": 3})
        assert predicted.status_code == 200 and len(predicted.json()["candidates"]) == 3
    monkeypatch.setenv("LNRNN_PRECISION", "int4")
    assert Settings(model_dir=int4_dir).precision == "int4"


def test_cli_precision_int4(
    int4_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "t.txt"
    path.write_bytes(b"int4 from the command line")
    assert main(["score", str(path), "--model", str(int4_dir), "--precision", "int4", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["precision"] == "int4"
    monkeypatch.setenv("LNRNN_PRECISION", "int4")
    assert main(["predict", "int", "--model", str(int4_dir), "--top-k", "2"]) == 0
    capsys.readouterr()
    plain = tmp_path / "plain"
    shutil.copytree(int4_dir, plain, ignore=shutil.ignore_patterns("*.int4.onnx"))
    for argv in (["score", str(path)], ["predict", "x"], ["serve"]):
        model = [str(plain)] if argv[0] == "serve" else ["--model", str(plain)]
        assert main([*argv, *model]) == 2  # LNRNN_PRECISION=int4, and the files are not there
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "no step.int4.onnx" in err and "--bits 4" in err


def test_export_mobile_converts_the_int4_pair(int4_dir: Path, tmp_path: Path) -> None:
    from lnrnn.export.mobile import CONFIG_FILE, export_mobile
    from tests.export.test_mobile import TOLERANCE, sequence_bpb, step_bpb

    report = export_mobile(int4_dir, tmp_path, precisions=("int4",))
    assert [f.name for f in report.files] == ["step.int4.ort", "sequence.int4.ort"]
    for f in report.files:
        score = sequence_bpb if f.name.startswith("sequence") else step_bpb
        assert abs(score(tmp_path / f.name) - score(int4_dir / f.source)) <= TOLERANCE, f.name
    config = (tmp_path / CONFIG_FILE).read_text()
    assert all(op in config for op in ("MatMulNBits", "GatherBlockQuantized", "LayerNormalization"))
    assert main(["export-mobile", str(int4_dir), "--out", str(tmp_path / "cli"), "--precision", "int4"]) == 0


def test_adaptive_score_at_int4_and_no_archive_from_it(
    int4_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from lnrnn.codec import StepGraph, information

    text = "the codec at int4: héllo wörld, héllo wörld".encode() * 3
    path = tmp_path / "t.txt"
    path.write_bytes(text)
    graph = StepGraph.load(int4_dir, "int4")
    assert graph.file.name == "step.int4.onnx"
    nats = information(text, graph)
    other = information(text, StepGraph.load(int4_dir, "fp32"))
    assert nats != other and abs(nats - other) / len(text) < 0.05  # the int4 graph, close to fp32
    assert (
        main(["score", str(path), "--model", str(int4_dir), "--precision", "int4", "--adaptive", "--json"])
        == 0
    )
    scored = json.loads(capsys.readouterr().out)
    assert scored["precision"] == "int4" and scored["bits"] == pytest.approx(nats / np.log(2), rel=1e-9)
    # a format-1 header records fp32 or int8 only: an int4 archive could not name its graph
    one = ["compress", str(path), "--model", str(int4_dir), "--precision", "int4", "--format", "1"]
    assert main(one) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "fp32 or int8" in err
    assert not (tmp_path / "t.txt.lnrz").exists()
    # format 2 (the default) derives its integers from step.onnx whatever --precision says, and says so
    assert main(["compress", str(path), "--model", str(int4_dir), "--precision", "int4"]) == 0
    assert "format 2 (integer)" in capsys.readouterr().err
    path.unlink()
    assert main(["decompress", str(tmp_path / "t.txt.lnrz"), "--model", str(int4_dir)]) == 0
    assert path.read_bytes() == text
