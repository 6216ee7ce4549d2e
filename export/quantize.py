"""int8: ONNX Runtime dynamic quantization of MatMul/Gemm weights and Gather tables, Scan bodies included.

MatMul/Gemm weights become int8 (``MatMulInteger``); the byte-embedding and layer-0 input-path tables read by
``Gather`` are stored as uint8 with one ``DequantizeLinear`` (weight-only: 4x smaller, which keeps the default
model's four files under 25 MB). ``LayerNormalization``, the gates and ``LogSoftmax`` stay fp32.
``EnableSubgraph`` makes ``quantize_dynamic`` descend into ``Scan`` bodies (off by default); what got
quantized is counted from the output file, per graph, and reported as found.
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

import onnx

from lnrnn.contract import INT8_MAX_BPC_DELTA

QUANT_OPS = ["MatMul", "Gemm", "Gather"]
FP32_MATMUL_OPS = ("MatMul", "Gemm")
INT8_OPS = (
    "MatMulInteger",
    "DequantizeLinear",
    "DynamicQuantizeLinear",
    "DynamicQuantizeMatMul",
    "QGemm",
    "MatMulIntegerToFloat",
)
MAX_BPC_DELTA = INT8_MAX_BPC_DELTA  # keep the int8 files only if BPC(int8) - BPC(fp32) <= this (bits/byte)


def quantize_file(src: Path, dst: Path) -> None:
    """Write the dynamically quantized ``src`` to ``dst`` (int8 weights; activations quantized per call)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quant_logger = logging.getLogger()
    level = quant_logger.level
    quant_logger.setLevel(logging.ERROR)  # quantize_dynamic logs a pre-processing hint at WARNING
    try:
        quantize_dynamic(
            src,
            dst,
            op_types_to_quantize=QUANT_OPS,
            weight_type=QuantType.QInt8,
            extra_options={"EnableSubgraph": True},
        )
    finally:
        quant_logger.setLevel(level)


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
