"""The ONNX files alone are enough: metadata round-trips; a contract-only scorer reproduces PyTorch BPC."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import onnx
import pytest

from lnrnn import __version__
from lnrnn.contract import ArtifactMetadata
from lnrnn.export.api import artifact_metadata, export_model
from lnrnn.export.verify import runtime
from lnrnn.train.evaluate import evaluate_bpc
from lnrnn.train.model import ByteLM
from tests.helpers import score_bpc, score_nats, tiny_model

TEXT = "To be, or not to be: that is the question. Naïve café, 東京, ✓\n".encode() * 5


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[ByteLM, Path]:
    model = tiny_model("gru", "layer", 2, hidden=24, embedding=16, sum_layers=True)
    out = tmp_path_factory.mktemp("gru2")
    export_model(model, out, valid_bpc=2.5, train_data="tinyshakespeare train split", verify_data=TEXT[:300])
    return model, out


def torch_bpc(model: ByteLM, data: bytes) -> float:
    return evaluate_bpc(model, data)


@pytest.mark.parametrize(("name", "graph"), [("step.onnx", "step"), ("sequence.onnx", "sequence-fast")])
def test_metadata_round_trips(exported: tuple[ByteLM, Path], name: str, graph: str) -> None:
    model, out = exported
    props = {p.key: p.value for p in onnx.load(str(out / name)).metadata_props}
    meta = ArtifactMetadata.from_props(props)
    assert meta == artifact_metadata(model, 2.5, "tinyshakespeare train split", graph)
    assert meta.graph == graph and meta.version == __version__ and meta.valid_bpc == 2.5
    assert meta.config.cell == "gru" and meta.config.layers == 2 and meta.config.embedding == 16
    np.testing.assert_array_equal(
        np.asarray(meta.initial_state, np.float32), model.initial_state.detach().numpy()
    )


def test_contract_only_scorer_matches_pytorch(exported: tuple[ByteLM, Path]) -> None:
    model, out = exported
    want = torch_bpc(model, TEXT)
    one_piece = score_bpc(out, TEXT, chunk=len(TEXT) + 1)
    three_chunks = score_bpc(out, TEXT, chunk=math.ceil((len(TEXT) + 1) / 3))
    assert abs(one_piece - want) <= 1e-4
    assert abs(three_chunks - one_piece) <= 1e-5


@pytest.mark.parametrize("n_bytes", [1, 2, 3, 7])
@pytest.mark.parametrize("chunk", [2, 3, 5])
def test_chunk_edges(exported: tuple[ByteLM, Path], n_bytes: int, chunk: int) -> None:
    """Tiny texts and chunks (a final chunk of one byte is paid by the previous call) are exact."""
    model, out = exported
    data = TEXT[:n_bytes]
    want = torch_bpc(model, data) * math.log(2) * n_bytes
    assert score_nats(out, data, chunk) == pytest.approx(want, abs=1e-4)


def test_runtime_guards_reject_before_ort(exported: tuple[ByteLM, Path]) -> None:
    """ORT's Scan over an empty sequence kills the process (SIGFPE): helpers must refuse first."""
    _, out = exported
    sess = runtime.open_session(out / "sequence.onnx")
    state = np.zeros((2, 1, 24), np.float32)
    scorer = runtime.scorer(sess, state[:, 0])
    for bad in (np.zeros((1, 0), np.int64), np.zeros((0, 5), np.int64)):
        with pytest.raises(ValueError, match="T >= 1"):
            scorer.sequence(bad, state)
    with pytest.raises(ValueError, match="at least one token"):
        scorer.feed(np.zeros(0, np.int64), state)
    with pytest.raises(ValueError, match="empty"):
        runtime.document_nats(sess, state[:, 0], b"")
    with pytest.raises(ValueError, match="B >= 1"):
        runtime.run_step(runtime.open_session(out / "step.onnx"), np.zeros(0, np.int64), state)
