"""Format 1 is lossless for any bytes: random bytes around block edges, empty, 1 byte, every byte value, the
shared corpora, any lane count; deterministic; the default model's adaptive mixing beats the network alone."""

from __future__ import annotations

import copy
import sysconfig
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from lnrnn.codec import StepGraph, compress, decompress, unpack
from lnrnn.codec.errors import ContainerError
from tests.helpers import REPO, SHARED_DATA

BLOCK = 64  # small blocks: a few hundred bytes straddle several block edges


def roundtrip(data: bytes, graph: StepGraph, **kw: object) -> bytes:
    """Format 1 (format 2 has its own tests) round trip."""
    kw.setdefault("version", 1)
    blob = compress(data, graph, **kw).blob  # type: ignore[arg-type]
    assert decompress(blob, graph) == data
    return blob


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    data=st.one_of(
        st.binary(max_size=4 * BLOCK + 3),
        st.integers(1, 4).flatmap(lambda n: st.binary(min_size=n * BLOCK - 1, max_size=n * BLOCK + 1)),
    ),
    adaptive=st.booleans(),
    lanes=st.integers(1, 3),
)
@example(data=b"", adaptive=True, lanes=2)
@example(data=b"\x00", adaptive=True, lanes=2)
@example(data=b"x" * BLOCK, adaptive=True, lanes=2)
@example(data=b"y" * (BLOCK + 1), adaptive=False, lanes=2)
@pytest.mark.parametrize("version", [1, 2])  # format 2 (integer-only) keeps every promise of format 1
def test_any_bytes_round_trip(
    graph: StepGraph, version: int, data: bytes, adaptive: bool, lanes: int
) -> None:
    blob = roundtrip(data, graph, version=version, adaptive=adaptive, block_size=BLOCK, lanes=lanes)
    header, payloads = unpack(blob)
    assert header.length == len(data) and header.n_blocks == len(payloads) == -(-len(data) // BLOCK)
    assert header.adaptive is adaptive and header.lanes == lanes
    assert header.version == version and not header.int8  # the fp32 graph: format 2 reads its weights


def test_empty_one_byte_and_every_byte_value(graph: StepGraph) -> None:
    empty = roundtrip(b"", graph)
    header, payloads = unpack(empty)
    assert header.length == 0 and payloads == [] and len(empty) == header.overhead
    one = roundtrip(b"\xff", graph)
    assert unpack(one)[0].n_blocks == 1
    every = bytes(range(256)) + bytes(range(255, -1, -1))
    roundtrip(every, graph, block_size=100)
    roundtrip(every, graph, adaptive=False, block_size=100)


def test_deterministic_output(graph: StepGraph) -> None:
    data = b"the same input, the same container " * 20
    once = compress(data, graph, block_size=128, version=1).blob
    assert once == compress(data, graph, block_size=128, version=1).blob


@pytest.mark.data
def test_every_shared_corpus_round_trips(graph: StepGraph) -> None:
    from lnrnn.train.recipes.corpora import VALIDATION_SPLITS

    for split in VALIDATION_SPLITS:
        data = split.at(SHARED_DATA).read(3000)
        assert len(data) == 3000
        roundtrip(data, graph, block_size=512)


@pytest.fixture(scope="module")
def default_graph() -> StepGraph:
    model = REPO / "models" / "default"
    if not (model / "step.int8.onnx").is_file():
        pytest.skip("models/default has no int8 step graph")
    return StepGraph.load(model)


@pytest.mark.slow
def test_default_model_int8_adaptive_beats_the_network_on_repetitive_text(default_graph: StepGraph) -> None:
    assert default_graph.precision == "int8"
    source = (Path(sysconfig.get_paths()["stdlib"]) / "json" / "encoder.py").read_bytes()[:3000]
    adaptive = roundtrip(source, default_graph, block_size=750)
    neural = roundtrip(source, default_graph, adaptive=False, block_size=750)
    assert unpack(adaptive)[0].int8 and unpack(adaptive)[0].adaptive and not unpack(neural)[0].adaptive
    assert len(adaptive) < 0.8 * len(neural), (len(adaptive), len(neural))


def test_a_failing_lane_reports_its_own_error(graph: StepGraph) -> None:
    """The second lane fails while the first still runs: the caller sees that lane's error, not the
    first lane's "stopped" signal (which once escaped as a traceback instead of the one-line error)."""

    def step(tokens: np.ndarray, state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if threading.current_thread() is not threading.main_thread():
            raise ContainerError("corrupted payload in block 4: lane 1 broke")
        time.sleep(0.005)  # the first lane is still at work when the second one fails
        return graph.step(tokens, state)

    broken = copy.copy(graph)
    object.__setattr__(broken, "step", step)  # StepGraph is frozen: swap the method on a copy only
    with pytest.raises(ContainerError, match="lane 1 broke"):
        compress(bytes(range(256)) * 2, broken, block_size=BLOCK, lanes=2, version=1)
