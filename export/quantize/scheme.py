"""int8: MatMul/Gemm weights and Gather tables quantized, activations with calibrated scales, Scan bodies too.

MatMul/Gemm weights become int8 (``MatMulInteger``); the byte-embedding and layer-0 input-path tables read by
``Gather`` are stored as uint8 with one ``DequantizeLinear`` (weight-only: 4x smaller, which keeps the default
model's four files under 25 MB). ``LayerNormalization``, the gates and ``LogSoftmax`` stay fp32.
ONNX Runtime's ``quantize_dynamic`` writes the graph (``EnableSubgraph`` makes it descend into ``Scan``
bodies); then each activation is quantized row by row instead of with one scale per call (rowwise.py), so a
text's numbers do not depend on how it is cut or batched. Chosen over dynamic int8 (not row-wise), scales
calibrated per tensor (row-wise, but coarser: a random tiny model lost 0.017 bits/byte) and 8-bit
``MatMulNBits`` (row-wise, slower here and larger); the comparison is ``bench/int8_choices.py``. What got
quantized is counted from the output file, per graph, and reported as found.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import onnx

from lnrnn.contract import INT8_MAX_BPC_DELTA
from lnrnn.export.quantize import rowwise

QUANT_OPS = ["MatMul", "Gemm", "Gather"]
FP32_MATMUL_OPS = ("MatMul", "Gemm")
INT8_OPS = (
    "MatMulInteger",
    "DequantizeLinear",
    "DynamicQuantizeLinear",
    "DynamicQuantizeMatMul",
    "QGemm",
    "MatMulIntegerToFloat",
    "Round",
)
SCHEME = "int8 weights (per tensor), int8 activations with one scale per row (MatMulInteger)"
MAX_BPC_DELTA = INT8_MAX_BPC_DELTA  # keep the int8 files only if BPC(int8) - BPC(fp32) <= this (bits/byte)


def quantize_file(src: Path, dst: Path) -> None:
    """Write the int8 ``src`` to ``dst``: int8 weights, activations quantized row by row (rowwise.py)."""
    dynamic = dst.with_name(dst.name + ".dynamic")
    try:
        quantize_dynamic_file(src, dynamic)
        model = onnx.load(str(dynamic))
    finally:
        dynamic.unlink(missing_ok=True)
    onnx.save(rowwise.make_rowwise(model), str(dst))


@contextmanager
def quiet_root_logger() -> Iterator[None]:
    """ORT's quantization tools log pre-processing hints at WARNING on the root logger."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def quantize_dynamic_file(src: Path, dst: Path, ops: Sequence[str] = QUANT_OPS) -> None:
    """ONNX Runtime's dynamic quantization of ``ops`` (Scan bodies too): the graph rowwise.py rewrites."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with quiet_root_logger():
        quantize_dynamic(
            src,
            dst,
            op_types_to_quantize=list(ops),
            weight_type=QuantType.QInt8,
            extra_options={"EnableSubgraph": True},
        )


def op_counts(model: onnx.ModelProto) -> dict[str, dict[str, int]]:
    """Op types per graph: ``main`` and each sub-graph by its name (Scan bodies)."""
    out: dict[str, dict[str, int]] = {}

    def walk(graph: onnx.GraphProto, name: str) -> None:
        out[name] = dict(Counter(n.op_type for n in graph.node))
        for node in graph.node:
            for attr in node.attribute:
                if attr.type == onnx.AttributeProto.GRAPH:
                    walk(attr.g, attr.g.name or f"{node.name}.{attr.name}")
                for sub in attr.graphs:
                    walk(sub, sub.name or f"{node.name}.{attr.name}")

    walk(model.graph, "main")
    return out


def quantization_summary(model: onnx.ModelProto) -> dict[str, dict[str, int]]:
    """Per graph: integer ops found, fp32 MatMul/Gemm left, and LayerNormalization nodes (stay fp32)."""
    summary = {}
    for graph, counts in op_counts(model).items():
        picked = {
            k: v
            for k, v in counts.items()
            if k in INT8_OPS or k in FP32_MATMUL_OPS or k == "LayerNormalization"
        }
        if picked:
            summary[graph] = picked
    return summary
