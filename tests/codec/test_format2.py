"""Format 2 (integer probabilities, rANS): lossless for any bytes and any layout; its network follows the fp32
graph it is built from; ONNX Runtime computes none of its numbers; models it does not implement are refused
in one line; the CLI writes and reads it beside format 1 with one-line failures; and a committed archive made
with the default model still decodes and is re-made byte for byte."""

from __future__ import annotations

import copy
import hashlib
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from lnrnn.cli import main
from lnrnn.codec import StepGraph, compress, decompress, information, unpack
from lnrnn.codec.errors import ModelFileError
from lnrnn.codec.integer import network_for, producer
from lnrnn.codec.integer.network import TOTAL, frequencies
from lnrnn.codec.integer.onnxfile import read_graph
from lnrnn.export.api import export_model
from lnrnn.train.model import ByteLM, ModelConfig
from tests.helpers import REPO, VERIFY_DATA, tiny_model

BLOCK = 64
GOLDEN = Path(__file__).parent / "golden" / "format2"


def roundtrip(data: bytes, graph: StepGraph, **kw: object) -> bytes:
    blob = compress(data, graph, version=2, **kw).blob  # type: ignore[arg-type]
    assert decompress(blob, graph) == data
    return blob


def test_empty_one_byte_random_bytes_and_utf8_text(graph: StepGraph) -> None:
    empty = roundtrip(b"", graph, adaptive=False)
    header, payloads = unpack(empty)
    assert header.length == 0 and payloads == [] and len(empty) == header.overhead
    assert unpack(roundtrip(b"\xff", graph, adaptive=False))[0].n_blocks == 1
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, 3000, dtype=np.uint8).tobytes()
    roundtrip(noise, graph, adaptive=False, block_size=250, lanes=3)  # 12 blocks, 3 lanes of 4 rows
    text = "Ünïcödé: 日本語のテキスト, ελληνικά, emoji 🙂 — and ASCII.\n".encode() * 20
    roundtrip(text, graph, adaptive=False, block_size=300, lanes=2)
    roundtrip(text, graph, adaptive=True, block_size=300, lanes=2)
    every = bytes(range(256)) + bytes(range(255, -1, -1))
    roundtrip(every, graph, adaptive=False, block_size=100)
    roundtrip(every, graph, adaptive=True, block_size=100)


def test_integer_mixer_learns_like_format_1(graph: StepGraph) -> None:
    """On repetitive text the adaptive model beats the network alone by far, and codes within 1% of format
    1's float mixing (same contexts, same learning rate, fixed point instead of float32)."""
    data = bytes(range(40, 120)) * 12 + b"the quick brown fox jumps over the lazy dog. " * 20
    kw = {"block_size": 600, "lanes": 2}
    neural = information(data, graph, adaptive=False, version=2, **kw)
    adaptive = information(data, graph, adaptive=True, version=2, **kw)
    float_mixing = information(data, graph, adaptive=True, version=1, **kw)
    assert adaptive < 0.3 * neural, (adaptive, neural)
    assert abs(adaptive - float_mixing) < 0.01 * float_mixing, (adaptive, float_mixing)


def test_header_size_and_information(graph: StepGraph) -> None:
    data = ("a format 2 archive: integer probabilities, rANS. " * 30).encode()
    result = compress(data, graph, adaptive=False, block_size=200, lanes=2, version=2)
    header = result.header
    assert header.producer == producer() and "integer format 2" in header.producer
    assert header.fingerprint == hashlib.sha256(graph.file.read_bytes()).digest()[:16]
    # the information content is the code length: the payloads are 4 to 8 bytes per block above it
    info = result.nats / math.log(2) / 8
    assert info + 4 * header.n_blocks - 1 <= result.payload_bytes <= info + 8 * header.n_blocks + 1
    assert information(data, graph, adaptive=False, block_size=200, lanes=2, version=2) == result.nats


def test_an_int8_graph_codes_with_its_fp32_weights(graph: StepGraph, int8_dir: Path) -> None:
    """Format 2 is derived from step.onnx whatever precision was loaded: same archive from either."""
    int8 = StepGraph.load(int8_dir, "int8")
    fp32 = StepGraph.load(int8_dir, "fp32")
    data = b"two layers of 48 units " * 10
    blob = compress(data, int8, adaptive=False, block_size=100, version=2).blob
    assert blob == compress(data, fp32, adaptive=False, block_size=100, version=2).blob
    assert unpack(blob)[0].fingerprint == fp32.fingerprint and decompress(blob, fp32) == data
    assert decompress(blob, int8) == data  # the same model given by its int8 graph


def test_no_onnxruntime_call_makes_a_number(graph: StepGraph) -> None:
    """The step graph's session is never run by format 2: replace it by one that fails."""

    def refuse(tokens: np.ndarray, state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        raise AssertionError("format 2 ran the ONNX Runtime session")

    blind = copy.copy(graph)
    object.__setattr__(blind, "step", refuse)
    object.__setattr__(blind, "session", None)
    data = b"no floats from onnxruntime " * 8
    blob = compress(data, blind, adaptive=False, block_size=50, version=2).blob
    assert decompress(blob, blind) == data
    assert blob == compress(data, graph, adaptive=False, block_size=50, version=2).blob


def integer_vs_fp32(graph: StepGraph, data: bytes) -> tuple[float, float, float]:
    """(bits/byte integer, bits/byte fp32 over the 256 bytes, max |difference| of a byte's log-prob)."""
    network, _ = network_for(graph)
    state, fp_state = network.start(1), graph.initial_state(1)
    token = np.array([256])
    bits_int = bits_fp = worst = 0.0
    for byte in data:
        logits, state = network.step(token, state)
        f = frequencies(logits)[0]
        logp, fp_state = graph.step(token, fp_state)
        lp = logp[0, :256].astype(np.float64)
        lp -= np.log(np.exp(lp).sum())
        a, b = -math.log2(f[byte] / TOTAL), -lp[byte] / math.log(2)
        bits_int, bits_fp, worst = bits_int + a, bits_fp + b, max(worst, abs(a - b) * math.log(2))
        token = np.array([byte])
    return bits_int / len(data), bits_fp / len(data), worst


def test_integer_network_follows_the_fp32_graph(graph: StepGraph, int8_dir: Path) -> None:
    for g in (graph, StepGraph.load(int8_dir, "fp32")):  # 1 x 24 and 2 x 48 random GRUs
        integer, fp32, worst = integer_vs_fp32(g, VERIFY_DATA * 4)
        assert abs(integer - fp32) < 0.01 and worst < 0.1, (integer, fp32, worst)


@pytest.fixture(scope="module")
def default_graph() -> StepGraph:
    model = REPO / "models" / "default"
    if not (model / "step.onnx").is_file():
        pytest.skip("models/default has no step.onnx")
    return StepGraph.load(model, "fp32")


def test_default_model_integer_network_is_within_0_02_bits_of_fp32(default_graph: StepGraph) -> None:
    text = (GOLDEN / "lighthouse.txt").read_bytes()[:600]
    integer, fp32, worst = integer_vs_fp32(default_graph, text)
    assert abs(integer - fp32) < 0.02 and worst < 1.0, (integer, fp32, worst)


def test_onnx_reader_reads_what_the_onnx_package_reads(graph: StepGraph) -> None:
    ours = read_graph(graph.file.read_bytes())
    model = onnx.load(str(graph.file))
    theirs = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer if i.data_type == 1}
    assert set(ours.initializers) == set(theirs)
    for name, value in theirs.items():
        assert np.array_equal(ours.initializers[name], value) and ours.initializers[name].dtype == np.float32
    assert [(n.op_type, n.inputs, n.outputs) for n in ours.nodes] == [
        (n.op_type, list(n.input), list(n.output)) for n in model.graph.node
    ]


@pytest.mark.parametrize(
    "config",
    [
        {"cell": "lstm"},
        {"cell": "mgu"},
        {"norm": "none"},
        {"sum_layers": True, "layers": 2},
        {"embedding": 16},
    ],
    ids=["lstm", "mgu", "no-norm", "sum-layers", "projection"],
)
def test_models_format_2_does_not_implement_are_refused_in_one_line(
    config: dict[str, object], tmp_path: Path
) -> None:
    if config.get("cell") == "lstm" or config.get("norm") == "none" or config.get("cell") == "mgu":
        model = tiny_model(**config)  # type: ignore[arg-type]
    else:
        model = ByteLM(ModelConfig(hidden=24, **config)).eval()  # type: ignore[arg-type]
    export_model(model, tmp_path, verify_data=VERIFY_DATA[:40], train_data="format 2 refusal test")
    graph = StepGraph.load(tmp_path, "fp32")
    with pytest.raises(ModelFileError, match="format 2 needs a layer-norm GRU") as err:
        compress(b"abc", graph, adaptive=False, version=2)
    assert "\n" not in str(err.value)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_writes_format_2_by_default_and_reads_both(
    model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = b"The CLI: format 2 by default, --format 1 on request; decompress reads both by the version. " * 6
    one, two = tmp_path / "one.txt", tmp_path / "two.txt"
    one.write_bytes(text)
    two.write_bytes(text[::-1])
    model = ["--model", str(model_dir), "--block-size", "128"]
    code, _, err = run(capsys, "compress", str(one), *model, "--neural-only", "--format", "1")
    assert code == 0
    code, _, err = run(capsys, "compress", str(two), *model, "--neural-only")
    assert code == 0 and "format 2 (integer)" in err and err.count("\n") == 1
    assert unpack((tmp_path / "one.txt.lnrz").read_bytes())[0].version == 1
    assert unpack((tmp_path / "two.txt.lnrz").read_bytes())[0].version == 2
    one.unlink()
    two.unlink()
    archives = [str(tmp_path / "one.txt.lnrz"), str(tmp_path / "two.txt.lnrz")]
    code, _, err = run(capsys, "decompress", *archives, "--model", str(model_dir))
    assert code == 0 and err.count("\n") == 2
    assert one.read_bytes() == text and two.read_bytes() == text[::-1]


@pytest.mark.parametrize("where", ["state", "body", "last"])
def test_cli_corrupted_format_2_payload_is_one_line_and_exit_2(
    where: str, graph: StepGraph, model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = b"corrupt me, the decoder must say so in one line. " * 10
    blob = compress(data, graph, adaptive=False, block_size=200, version=2).blob
    header, _ = unpack(blob)
    at = {"state": header.overhead + 2, "body": header.overhead + 30, "last": len(blob) - 1}[where]
    bad = blob[:at] + bytes([blob[at] ^ 0x08]) + blob[at + 1 :]
    path = tmp_path / "bad.lnrz"
    path.write_bytes(bad)
    target = tmp_path / "never.txt"
    code, out, err = run(capsys, "decompress", str(path), "-o", str(target), "--model", str(model_dir))
    assert code == 2 and out == "" and err.count("\n") == 1, err
    assert err.startswith("lnrnn decompress: error: ")
    assert "corrupted payload in block" in err or "checksum" in err
    assert not target.exists()


def test_golden_archive_decodes_and_is_remade_byte_for_byte(default_graph: StepGraph) -> None:
    """Made once with ``make_golden`` (below) and committed: today's code on this machine must decode it
    and write the same payloads (the reproducibility tests run that under other BLAS kernels and SIMD)."""
    text = (GOLDEN / "lighthouse.txt").read_bytes()
    for name, adaptive in GOLDEN_FILES:
        blob = (GOLDEN / name).read_bytes()
        header, payloads = unpack(blob)
        assert header.version == 2 and header.adaptive is adaptive
        assert decompress(blob, default_graph) == text
        again = compress(text, default_graph, adaptive=adaptive, **GOLDEN_LAYOUT, version=2)
        assert unpack(again.blob)[1] == payloads
        assert again.blob[: header.overhead] == blob[: header.overhead] or header.producer != producer()


GOLDEN_LAYOUT = {"block_size": 400, "lanes": 2}
GOLDEN_FILES = (("lighthouse.neural.lnrz", False), ("lighthouse.adaptive.lnrz", True))


def make_golden() -> None:  # pragma: no cover - run by hand: python -c "...; make_golden()"
    graph = StepGraph.load(REPO / "models" / "default", "fp32")
    text = (GOLDEN / "lighthouse.txt").read_bytes()
    for name, adaptive in GOLDEN_FILES:
        blob = compress(text, graph, adaptive=adaptive, **GOLDEN_LAYOUT, version=2).blob  # type: ignore[arg-type]
        (GOLDEN / name).write_bytes(blob)


def test_format_2_needs_no_constriction_and_format_1_says_so(model_dir: Path) -> None:
    """constriction has no Linux ARM wheel: with it unimportable, format 2 still compresses and decompresses,
    and format 1 fails with one line naming format 2."""
    code = f"""
import sys
sys.modules["constriction"] = None  # import constriction -> ImportError
from lnrnn.codec import StepGraph, compress, decompress
from lnrnn.codec.errors import CodecError
graph = StepGraph.load({str(model_dir)!r}, "fp32")
data = b"no constriction here " * 20
for adaptive in (False, True):
    assert decompress(compress(data, graph, adaptive=adaptive, block_size=100, version=2).blob, graph) == data
try:
    compress(data, graph, version=1)
except CodecError as err:
    print(err)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    line = done.stdout.strip()
    assert "format 1 needs the constriction package" in line and "--format 2" in line and "\n" not in line
