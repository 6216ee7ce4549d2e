"""`lnrnn export-triton`: configs that Triton's own schema accepts, and the batch-first graphs run in ONNX
Runtime the way Triton's sequence batcher would drive them (interleaved sequences, START, READY)."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path
from types import ModuleType

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from google.protobuf import text_format

from lnrnn.cli import main
from lnrnn.contract import BOS_ID, ArtifactMetadata
from lnrnn.export.api import export_model
from lnrnn.export.triton import INITIAL_STATE_DIR, export_triton
from lnrnn.serve.engine.runtime import Runtime
from tests.helpers import tiny_model


def triton_model_config() -> ModuleType:
    """tritonclient's compiled ``model_config.proto``, loaded on its own: importing the
    ``tritonclient.grpc`` package would register its service protos, whose ``inference.*`` names clash
    with the kserve client's in protobuf's one default pool (the v2 tests import kserve)."""
    root = importlib.util.find_spec("tritonclient")
    assert root is not None and root.origin is not None
    path = Path(root.origin).parent / "grpc" / "model_config_pb2.py"
    spec = importlib.util.spec_from_file_location("triton_model_config_pb2", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


mc = triton_model_config()
DOCS = [
    b"First Citizen: Before we proceed any further, hear me speak.",
    b"All: Speak, speak.",
    "ünïcödé bytes \xff".encode("utf-8", "surrogateescape") + b"\x00\xfe",
    b"x",
    b"You are all resolved rather to die than to famish?",
]
ONNX_TYPES = {mc.TYPE_INT64: "tensor(int64)", mc.TYPE_FP32: "tensor(float)", mc.TYPE_INT32: "tensor(int32)"}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("triton-src")
    model = tiny_model("gru", "layer", 2, hidden=24)
    export_model(model, out, quantize="int8", verify_data=DOCS[0] * 4, train_data="random (tests)")
    return out


def parse_config(path: Path) -> mc.ModelConfig:
    return text_format.Parse(path.read_text(), mc.ModelConfig())


def doc_bits(runtime: Runtime, data: bytes) -> float:
    return runtime.score(data).nats / math.log(2)


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_configs_follow_tritons_schema_and_match_the_graphs(
    model_dir: Path, tmp_path: Path, precision: str
) -> None:
    repo = export_triton(model_dir, tmp_path / "repo", precision=precision, max_batch_size=8)
    meta = ArtifactMetadata.from_props(
        {p.key: p.value for p in onnx.load(str(model_dir / "step.onnx")).metadata_props}
    )
    L, S = meta.config.layers, meta.config.state_size
    step = parse_config(tmp_path / "repo" / repo.step / "config.pbtxt")
    assert step.name == repo.step and step.platform == "onnxruntime_onnx" and step.max_batch_size == 8
    batcher = step.sequence_batching
    assert batcher.HasField("direct") and batcher.max_sequence_idle_microseconds >= 60_000_000
    (state,) = batcher.state
    assert (state.input_name, state.output_name, list(state.dims)) == ("state", "state_out", [L, S])
    (init,) = state.initial_state
    initial = tmp_path / "repo" / repo.step / INITIAL_STATE_DIR / init.data_file
    assert list(init.dims) == [L, S] and init.data_type == mc.TYPE_FP32
    assert np.fromfile(initial, dtype="<f4").reshape(L, S) == pytest.approx(np.array(meta.initial_state))
    controls = {c.name: c.control[0] for c in batcher.control_input}
    assert controls["START"].kind == mc.ModelSequenceBatching.Control.CONTROL_SEQUENCE_START
    assert controls["READY"].kind == mc.ModelSequenceBatching.Control.CONTROL_SEQUENCE_READY
    assert list(controls["START"].int32_false_true) == [0, 1]

    # every tensor the config names is in the graph, batch dimension first (Triton batches only then)
    session = ort.InferenceSession(str(tmp_path / "repo" / repo.step / "1" / "model.onnx"))
    inputs = {i.name: i for i in session.get_inputs()}
    outputs = {o.name: o for o in session.get_outputs()}
    assert set(inputs) == {"token", "state", "START", "READY"} and set(outputs) == {"logprobs", "state_out"}
    for tensor in step.input:
        assert inputs[tensor.name].type == ONNX_TYPES[tensor.data_type]
        shape = list(tensor.reshape.shape) if tensor.HasField("reshape") else list(tensor.dims)
        assert inputs[tensor.name].shape[1:] == shape
    for tensor in step.output:
        assert outputs[tensor.name].shape[1:] == list(tensor.dims)
    assert inputs["state"].shape[1:] == [L, S] and outputs["state_out"].shape[1:] == [L, S]
    for name in controls:
        assert inputs[name].type == "tensor(int32)" and inputs[name].shape[1:] == [1]

    seq = parse_config(tmp_path / "repo" / repo.sequence / "config.pbtxt")
    assert seq.max_batch_size == 8 and seq.HasField("dynamic_batching")
    seq_session = ort.InferenceSession(str(tmp_path / "repo" / repo.sequence / "1" / "model.onnx"))
    assert [i.name for i in seq_session.get_inputs()] == [t.name for t in seq.input]
    assert [o.name for o in seq_session.get_outputs()] == [t.name for t in seq.output]


def simulate_sequence_batcher(
    session: ort.InferenceSession, docs: list[bytes], slots: int, L: int, S: int, send_start: bool = True
) -> list[float]:
    """Triton's direct sequence batcher, by hand: each sequence owns a slot until it ends, then the next
    waiting sequence takes the slot (its state still holds the old sequence's: START must reset it);
    empty slots run with READY = 0 and a zeroed state; state_out is kept per slot (implicit state)."""
    waiting = list(range(len(docs)))
    owner: list[int | None] = [None] * slots
    position = [0] * slots  # tokens of the owner already sent
    state = np.zeros((slots, L, S), dtype=np.float32)
    nats = [0.0] * len(docs)
    pending: list[int | None] = [None] * slots  # the byte the last call's logprobs must pay for
    while waiting or any(o is not None for o in owner):
        for slot in range(slots):
            if owner[slot] is None and waiting:
                owner[slot], position[slot], pending[slot] = waiting.pop(0), 0, None
        tokens = np.zeros(slots, dtype=np.int64)
        start = np.zeros((slots, 1), dtype=np.int32)
        ready = np.zeros((slots, 1), dtype=np.int32)
        for slot, doc in enumerate(owner):
            if doc is None:
                state[slot] = 0.0  # Triton gives an empty slot a zeroed copy of the state
                continue
            stream = [BOS_ID, *docs[doc]]
            tokens[slot] = stream[position[slot]]
            start[slot] = 1 if position[slot] == 0 and send_start else 0
            ready[slot] = 1
        feeds = {"token": tokens, "state": state, "START": start, "READY": ready}
        logprobs, state = session.run(["logprobs", "state_out"], feeds)
        for slot, doc in enumerate(owner):
            if doc is None:
                continue
            position[slot] += 1
            data = docs[doc]
            if position[slot] <= len(data):
                nats[doc] -= float(logprobs[slot, data[position[slot] - 1]])
            if position[slot] == len(data):  # sequence_end: the slot is free for the next sequence
                owner[slot] = None
    return nats


def step_bits(runtime: Runtime, data: bytes) -> float:
    state, nats, stream = runtime.scorer.start_state(), 0.0, [BOS_ID, *data]
    for i, token in enumerate(stream[:-1]):
        logprobs, state = runtime.step_session.run(None, {"token": np.array([token]), "state": state})
        nats -= float(logprobs[0, stream[i + 1]])
    return nats / math.log(2)


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_sequence_batcher_simulation_equals_lnrnn_score(
    model_dir: Path, tmp_path: Path, precision: str
) -> None:
    repo = export_triton(model_dir, tmp_path / "repo", precision=precision)
    runtime = Runtime.load(model_dir, precision=precision)
    L, S = runtime.meta.config.layers, runtime.meta.config.state_size
    session = ort.InferenceSession(str(tmp_path / "repo" / repo.step / "1" / "model.onnx"))
    nats = simulate_sequence_batcher(session, DOCS, slots=3, L=L, S=S)
    for doc, n in zip(DOCS, nats, strict=True):
        bits = n / math.log(2)
        # the model's own step graph, one sequence at a time: the wrapping changes nothing
        assert abs(bits - step_bits(runtime, doc)) / len(doc) <= 1e-4
        # and lnrnn score (the sequence graph) in fp32. The int8 step and sequence graphs are separate
        # quantized graphs whose numbers differ a little (models/default: 0.0018 bits/byte on 3 kB of Tiny
        # Shakespeare), so in int8 the step graph is the reference
        if precision == "fp32":
            assert abs(bits - doc_bits(runtime, doc)) / len(doc) <= 1e-4
    # without START the reused slots carry the previous sequence's state: the bits change
    stale = simulate_sequence_batcher(session, DOCS, slots=3, L=L, S=S, send_start=False)
    assert max(abs(a - b) for a, b in zip(stale, nats, strict=True)) > 1e-2


def test_sequence_model_scores_whole_texts(model_dir: Path, tmp_path: Path) -> None:
    repo = export_triton(model_dir, tmp_path / "repo")
    runtime = Runtime.load(model_dir, precision="fp32")
    session = ort.InferenceSession(str(tmp_path / "repo" / repo.sequence / "1" / "model.onnx"))
    docs = [DOCS[0][:18], DOCS[1]]  # equal lengths: one batch of two, as Triton's dynamic batcher sends
    tokens = np.array([[BOS_ID, *d] for d in docs], dtype=np.int64)
    token_logprobs, last = session.run(None, {"tokens": tokens})
    for row, doc in enumerate(docs):
        assert -token_logprobs[row].sum() / math.log(2) == pytest.approx(
            doc_bits(runtime, doc), abs=1e-4 * len(doc)
        )
        assert last[row] == pytest.approx(runtime.score(doc).last, abs=1e-4)


def test_cli(model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export-triton", str(model_dir), "--out", str(tmp_path / "repo"), "--name", "shakes"]) == 0
    out = capsys.readouterr().out
    assert "shakes_step (sequence batcher, implicit state) and shakes_sequence" in out
    assert "tritonserver --model-repository=/models" in out
    assert (tmp_path / "repo" / "shakes_step" / "1" / "model.onnx").is_file()
    fp32_only = tmp_path / "fp32-only"
    fp32_only.mkdir()
    for name in ("step.onnx", "sequence.onnx"):
        (fp32_only / name).write_bytes((model_dir / name).read_bytes())
    for argv, needle in (
        ([str(tmp_path / "missing")], "does not exist"),
        ([str(fp32_only), "--precision", "int8"], "step.int8.onnx does not exist"),
        ([str(model_dir), "--max-batch-size", "0"], "max-batch-size must be >= 1"),
        ([str(model_dir), "--name", "a/b"], "--name 'a/b'"),
    ):
        assert main(["export-triton", *argv, "--out", str(tmp_path / "r2")]) == 2
        err = capsys.readouterr().err
        assert needle in err and len(err.strip().splitlines()) == 1, err
