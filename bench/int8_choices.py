"""Ways to run the default model's sequence graph in int8 on the CPU, side by side with fp32 (1 thread).

Variants, all built here from models/default/sequence.onnx into a temporary directory:

* fp32: the exported graph.
* dynamic int8: ONNX Runtime's ``quantize_dynamic`` (MatMul + Gather, int8 weights, one activation scale
  per call from the call's min/max).
* MatMulNBits 8-bit, block 32 and 128: Gather tables weight-only, MatMul weights with one scale per block;
  accuracy level 4 quantizes the activations to int8 inside the kernel, per row and block.
* calibrated: the dynamic graph with every activation scale fixed from a calibration run over
  export/verify/verify_sample.txt (``QuantizeLinear`` with constant scale and zero point). Built here: the
  export does not ship it.
* row-wise: ``lnrnn.export.quantize.scheme.quantize_file``, what ``lnrnn export --quantize int8`` writes and
  the server loads: one activation scale per row (stream and time step).

Per variant: BPC on held-out Tiny Shakespeare, the largest per-byte log-prob difference between scoring in
chunks of 512 and chunks of 7 (does a text's score depend on how it is cut?), and between 8 texts scored as
one batch and each alone (does it depend on the other rows?), speed at batch 1 and 32, T = 1 latency, size.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
from onnx import AttributeProto, GraphProto, NodeProto, TensorProto, helper, numpy_helper

from bench.common import REPO, repeat
from lnrnn.contract import SEQUENCE_FILE, SEQUENCE_INPUTS, ArtifactMetadata
from lnrnn.export.quantize import scheme as quantize
from lnrnn.scorer import Scorer, document_array
from lnrnn.train.recipes.corpora import VALIDATION_SPLITS

MODEL = REPO / "models" / "default"
CALIBRATION = REPO / "export" / "verify" / "verify_sample.txt"
CHUNK = 512
DYNAMIC = "DynamicQuantizeLinear"
SHIPPED = "int8 row-wise"  # the scheme `lnrnn export --quantize int8` writes and the server loads
BATCH_ROWS = 8


@dataclass(frozen=True)
class Plan:
    """How much to measure: quick mode keeps every number but on less text (the bench's < 3 min run)."""

    text_bytes: int  # held-out bytes for BPC (chunks of 512)
    cut_bytes: int  # prefix scored in chunks of 7 against chunks of 512
    row_bytes: int  # each of the 8 batch rows
    b32_steps: int  # T of the [32, T] speed call
    runs: int  # timed repetitions (medians)


FULL = Plan(text_bytes=50_000, cut_bytes=50_000, row_bytes=2_000, b32_steps=512, runs=7)
QUICK = Plan(text_bytes=20_000, cut_bytes=5_000, row_bytes=1_000, b32_steps=128, runs=5)


# --- building the variants ------------------------------------------------------------------------


def build_dynamic(src: Path, dst: Path) -> None:
    quantize.quantize_dynamic_file(src, dst, ["MatMul", "Gather"])


def build_nbits(src: Path, dst: Path, block: int) -> None:
    from onnxruntime.quantization.matmul_nbits_quantizer import (
        DefaultWeightOnlyQuantConfig,
        MatMulNBitsQuantizer,
    )

    gathered = dst.with_name(dst.name + ".gather")  # Gather tables weight-only first: NBits skips them
    quantize.quantize_dynamic_file(src, gathered, ["Gather"])
    config = DefaultWeightOnlyQuantConfig(block_size=block, is_symmetric=True, accuracy_level=4, bits=8)
    with quantize.quiet_root_logger():
        quantizer = MatMulNBitsQuantizer(onnx.load(str(gathered)), algo_config=config)
        quantizer.process()
    gathered.unlink()
    onnx.save(quantizer.model.model, str(dst))


def _graphs(
    graph: GraphProto, owner: NodeProto | None = None
) -> Iterator[tuple[GraphProto, NodeProto | None]]:
    """Every graph with the Scan node that owns it (None: the main graph), sub-graphs one level deep."""
    yield graph, owner
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == AttributeProto.GRAPH:
                if owner is not None:
                    raise NotImplementedError("calibration handles sub-graphs one level deep")
                yield from _graphs(attr.g, node)


def _probe(model: onnx.ModelProto) -> tuple[onnx.ModelProto, list[str]]:
    """A copy that also outputs every ``DynamicQuantizeLinear`` input (Scan bodies: stacked over time)."""
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    names = []
    for graph, owner in list(_graphs(probe.graph)):
        for node in [n for n in graph.node if n.op_type == DYNAMIC]:
            x = node.input[0]
            tapped = f"{x}/probe"  # an Identity: a body input cannot be a body output as is
            graph.node.append(helper.make_node("Identity", [x], [tapped]))
            graph.output.append(helper.make_tensor_value_info(tapped, TensorProto.FLOAT, None))
            if owner is not None:  # a new scan output of the Scan node, exposed by the main graph
                owner.output.append(tapped)
                for attr in owner.attribute:
                    if attr.name in ("scan_output_axes", "scan_output_directions"):
                        attr.ints.append(0)
                probe.graph.output.append(helper.make_tensor_value_info(tapped, TensorProto.FLOAT, None))
            names.append(tapped)
    return probe, names


def calibration_ranges(
    model: onnx.ModelProto, data: bytes, initial: np.ndarray
) -> dict[str, tuple[float, float]]:
    """Min and max of every dynamically quantized activation over ``data`` (chunks of 512, state carried)."""
    probe, names = _probe(model)
    session = _session(probe.SerializeToString())
    outputs = [o.name for o in session.get_outputs()]
    tokens, state = document_array(data), initial[:, None, :]
    lo = dict.fromkeys(names, np.inf)
    hi = dict.fromkeys(names, -np.inf)
    for start in range(0, len(tokens), CHUNK):
        feeds = dict(zip(SEQUENCE_INPUTS, (tokens[None, start : start + CHUNK], state), strict=True))
        got = dict(zip(outputs, session.run(None, feeds), strict=True))
        state = got["state_out"]
        for name in names:
            lo[name] = min(lo[name], float(got[name].min()))
            hi[name] = max(hi[name], float(got[name].max()))
    return {name.removesuffix("/probe"): (lo[name], hi[name]) for name in names}


def freeze_scales(model: onnx.ModelProto, ranges: dict[str, tuple[float, float]]) -> onnx.ModelProto:
    """Each ``DynamicQuantizeLinear`` becomes a ``QuantizeLinear`` with the scale and zero point it would
    compute for the calibrated range (uint8, range widened to include 0, as ONNX Runtime does)."""
    frozen = onnx.ModelProto()
    frozen.CopyFrom(model)
    for graph, _ in list(_graphs(frozen.graph)):
        for node in [n for n in graph.node if n.op_type == DYNAMIC]:
            x, (q, scale, zero) = node.input[0], node.output
            lo, hi = min(0.0, ranges[x][0]), max(0.0, ranges[x][1])
            s = max(hi - lo, 1e-12) / 255
            graph.initializer.extend(
                [
                    numpy_helper.from_array(np.array(s, dtype=np.float32), scale),
                    numpy_helper.from_array(np.array(np.clip(round(-lo / s), 0, 255), dtype=np.uint8), zero),
                ]
            )
            node.op_type = "QuantizeLinear"
            del node.output[:]
            node.output.append(q)
            node.input.extend([scale, zero])
    return frozen


def build_calibrated(src: Path, dst: Path, initial: np.ndarray) -> None:
    dynamic = dst.with_name(dst.name + ".dynamic")
    build_dynamic(src, dynamic)
    model = onnx.load(str(dynamic))
    dynamic.unlink()
    ranges = calibration_ranges(model, CALIBRATION.read_bytes(), initial)
    onnx.save(freeze_scales(model, ranges), str(dst))


def variants(initial: np.ndarray) -> list[tuple[str, Callable[[Path, Path], None] | None]]:
    """(name, builder from the fp32 file to a destination); None = the fp32 file itself."""
    return [
        ("fp32", None),
        ("dynamic int8", build_dynamic),
        ("MatMulNBits 8-bit, block 32", lambda s, d: build_nbits(s, d, 32)),
        ("MatMulNBits 8-bit, block 128", lambda s, d: build_nbits(s, d, 128)),
        ("int8 calibrated scales", lambda s, d: build_calibrated(s, d, initial)),
        (SHIPPED, quantize.quantize_file),
    ]


# --- measuring one variant ------------------------------------------------------------------------


def _session(model: Path | bytes) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    source = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])


def _max_diff(a: np.ndarray | None, b: np.ndarray | None) -> float:
    assert a is not None and b is not None  # scored with per_byte=True
    return float(np.abs(a - b).max())


def quality(session: ort.InferenceSession, initial: np.ndarray, text: bytes, plan: Plan) -> dict[str, Any]:
    """BPC in chunks of 512, per-byte log-prob differences across chunk sizes and across batching."""
    scorer = Scorer(session, initial, chunk_tokens=CHUNK)
    whole = scorer.score(text, per_byte=True)
    cut = Scorer(session, initial, chunk_tokens=7).score(text[: plan.cut_bytes], per_byte=True)
    assert whole.byte_nats is not None
    whole_cut = whole.byte_nats[: plan.cut_bytes]  # a prefix of a document scores the same on its own
    size = plan.row_bytes
    rows = [text[i * size : (i + 1) * size] for i in range(BATCH_ROWS)]
    batched = scorer.score_many(rows, per_byte=True)  # equal lengths: one batch of 8 rows
    alone = [scorer.score(row, per_byte=True) for row in rows]
    return {
        "bpc": whole.nats / np.log(2) / len(text),
        "chunk_delta_nats": _max_diff(whole_cut, cut.byte_nats),
        "batch_delta_nats": max(
            _max_diff(b.byte_nats, a.byte_nats) for b, a in zip(batched, alone, strict=True)
        ),
    }


def speed(session: ort.InferenceSession, initial: np.ndarray, text: bytes, plan: Plan) -> dict[str, float]:
    """µs per byte for [1, 512] and [32, T] calls; µs per T = 1 call at B = 1 and B = 32 (medians)."""
    tokens = np.frombuffer(text[: 32 * CHUNK], dtype=np.uint8).astype(np.int64).reshape(32, CHUNK)
    runs = plan.runs

    def call(batch: int, steps: int) -> Callable[[], Any]:
        feeds = {
            "tokens": np.ascontiguousarray(tokens[:batch, :steps]),
            "state": np.repeat(initial[:, None], batch, 1),
        }
        return lambda: session.run(None, feeds)

    def median_us(fn: Callable[[], Any], n: int) -> float:
        return 1e6 * repeat(fn, runs=n, warmup=2)["median_s"]

    return {
        "us_per_byte_b1": median_us(call(1, CHUNK), runs) / CHUNK,
        "us_per_byte_b32": median_us(call(32, plan.b32_steps), runs) / (32 * plan.b32_steps),
        "t1_us_b1": median_us(call(1, 1), 20 * runs),  # a short call: more runs for a steady median
        "t1_us_b32": median_us(call(32, 1), 20 * runs),
    }


def measure_variant(name: str, path: Path, initial: np.ndarray, text: bytes, plan: Plan) -> dict[str, Any]:
    session = _session(path)
    load0 = os.getloadavg()[0]
    row: dict[str, Any] = {"variant": name, "file_bytes": path.stat().st_size}
    row |= quality(session, initial, text, plan) | speed(session, initial, text, plan)
    return row | {"load_1min": [load0, os.getloadavg()[0]]}


def measure(quick: bool, log: Callable[[str], None] = print) -> dict[str, Any]:
    plan = QUICK if quick else FULL
    text = VALIDATION_SPLITS[0].read(plan.text_bytes)  # Tiny Shakespeare, last 10%
    src = MODEL / SEQUENCE_FILE
    meta = ArtifactMetadata.from_props(_session(src).get_modelmeta().custom_metadata_map)
    initial = np.asarray(meta.initial_state, dtype=np.float32)
    rows = []
    with tempfile.TemporaryDirectory(prefix="lnrnn-int8-choices-") as tmp:
        for i, (name, build) in enumerate(variants(initial)):
            path, start = src, time.perf_counter()
            if build is not None:
                path = Path(tmp) / f"variant{i}.onnx"
                build(src, path)
            built = time.perf_counter() - start
            row = measure_variant(name, path, initial, text, plan) | {"build_s": built}
            rows.append(row)
            log(f"  {name}: bpc {row['bpc']:.4f}, {row['us_per_byte_b1']:.1f} µs/byte at batch 1")
    for row in rows:
        row["bpc_delta"] = row["bpc"] - rows[0]["bpc"]
    return {
        "model": "models/default",
        "graph": SEQUENCE_FILE,
        "text": "Tiny Shakespeare validation split (last 10%), first bytes",
        "calibration": "export/verify/verify_sample.txt, chunks of 512, state carried",
        "plan": asdict(plan) | {"batch_rows": BATCH_ROWS},
        "ort_threads": 1,
        "shipped": SHIPPED,
        "rows": rows,
    }
