"""int8w: weight-only int8. Weights are stored as int8 with one scale per output column (MatMul) or per row
(``Gather`` tables), turned back into fp32 by ``Cast`` + ``Mul`` when the file loads; every operation after
that is the fp32 graph's own.

Why: the page runs the model in the browser (ONNX Runtime Web) and must show the server's numbers. With int8
activations (``int8``, scheme.py) a tiny float difference between two builds flips an activation's rounding:
the default model's int8 step graph differed from native x86 by up to 0.092 nats per byte in ONNX Runtime
Web. fp32 arithmetic agrees within ~1e-5 nats everywhere, and the fp32 file is 4x larger; this keeps the
int8 file size and the fp32 arithmetic. ``q * s`` is one correctly rounded fp32 multiplication, so every
runtime reconstructs exactly the same weights; ONNX Runtime folds the ``Cast`` + ``Mul`` once at load
(measured: the same speed as the fp32 file, and results bit-identical to an fp32 file holding the
dequantized weights). ``DequantizeLinear`` was measured too and rejected: ONNX Runtime keeps it unfolded for
its QDQ fusions, which ran it on every call (8x slower per step) and changed the numbers.

Scales are symmetric, ``s = max|w| / 127`` over the values that share it, ``q = round(w / s)``: the rows of
a table a token selects, or the columns of a MatMul weight (one output feature each). Initializers inside
``Scan`` bodies move to the main graph (the body reads them from the outer scope), so they too are turned
into fp32 once per load, not once per time step.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
from onnx import AttributeProto, GraphProto, TensorProto, helper, numpy_helper

SCHEME = "int8 weights (one scale per output column, per row for Gather tables), fp32 arithmetic (Cast + Mul)"
QMAX = 127
MIN_ELEMENTS = 1024  # smaller tensors (biases, norm gains) stay fp32: they cost little and matter most
TINY = np.float32(1e-30)  # an all-zero column keeps a positive scale (it quantizes to zeros either way)
SUFFIX = "/int8w"


def all_graphs(graph: GraphProto) -> Iterator[GraphProto]:
    """``graph`` and every sub-graph below it (Scan bodies)."""
    yield graph
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == AttributeProto.GRAPH:
                yield from all_graphs(attr.g)
            for sub in attr.graphs:
                yield from all_graphs(sub)


def quantize_array(weights: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """int8 values and fp32 scales of a 2-D ``weights``: one scale per row (``axis`` 0) or column (1).

    ``q.astype(float32) * scales`` (broadcast along ``axis``) are the weights the graph computes with."""
    if weights.ndim != 2 or axis not in (0, 1):
        raise ValueError(f"expected a 2-D array and axis 0 or 1, got shape {weights.shape} and axis {axis}")
    w = weights.astype(np.float32)
    absmax = np.max(np.abs(w), axis=1 - axis, keepdims=True)
    scales = np.maximum(absmax / np.float32(QMAX), TINY).astype(np.float32)
    q = np.clip(np.rint(w / scales), -QMAX, QMAX).astype(np.int8)
    return q, scales


def dequantize(q: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """What ``Cast`` + ``Mul`` compute: the fp32 weights the int8w graph runs with."""
    return q.astype(np.float32) * scales


def _axis(uses: list[tuple[str, int]]) -> int | None:
    """Per column for a MatMul's weight, per row for a Gather table; None for any other use."""
    if uses and all(op == "MatMul" and slot == 1 for op, slot in uses):
        return 1
    if uses and all(op == "Gather" and slot == 0 for op, slot in uses):
        return 0
    return None


def make_weight_only(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of the fp32 ``model`` whose MatMul weights and Gather tables are int8 (see the module doc)."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    main = out.graph
    taken = {name for g in all_graphs(main) for n in g.node for name in (*n.input, *n.output)}
    taken |= {i.name for g in all_graphs(main) for i in g.initializer}
    dequantizers: list[onnx.NodeProto] = []
    for graph in list(all_graphs(main)):
        uses: dict[str, list[tuple[str, int]]] = defaultdict(list)
        for node in graph.node:
            for slot, name in enumerate(node.input):
                uses[name].append((node.op_type, slot))
        for init in list(graph.initializer):
            if init.data_type != TensorProto.FLOAT or len(init.dims) != 2:
                continue
            axis = _axis(uses[init.name])
            weights = numpy_helper.to_array(init)
            if axis is None or weights.size < MIN_ELEMENTS:
                continue
            q, scales = quantize_array(weights, axis)
            base = init.name + SUFFIX
            if any(base + s in taken for s in ("", "/scale", "/float")):
                raise ValueError(f"{init.name}: the names for its int8 copy are already used in the graph")
            graph.initializer.remove(init)  # the name is now a value computed in the main graph
            main.initializer.append(numpy_helper.from_array(q, base))
            main.initializer.append(numpy_helper.from_array(scales, base + "/scale"))
            float32 = TensorProto.FLOAT
            as_float = helper.make_node("Cast", [base], [base + "/float"], base + "/cast", to=float32)
            scaled = helper.make_node("Mul", [base + "/float", base + "/scale"], [init.name], base + "/mul")
            dequantizers += [as_float, scaled]
    nodes = [*dequantizers, *main.node]  # before every node that reads them, Scan bodies included
    del main.node[:]
    main.node.extend(nodes)
    return out


def quantize_file(src: Path, dst: Path) -> None:
    """Write the weight-only int8 copy of the fp32 graph ``src`` to ``dst``."""
    onnx.save(make_weight_only(onnx.load(str(src))), str(dst))


def weight_summary(model: onnx.ModelProto) -> dict[str, int]:
    """int8 tensors and their values, and the fp32 values left in initializers, in ``model``."""
    int8 = [i for g in all_graphs(model.graph) for i in g.initializer if i.data_type == TensorProto.INT8]
    fp32 = [i for g in all_graphs(model.graph) for i in g.initializer if i.data_type == TensorProto.FLOAT]
    return {
        "int8_tensors": len(int8),
        "int8_values": int(sum(np.prod(i.dims) for i in int8)),
        "fp32_values": int(sum(np.prod(i.dims) for i in fp32)),
    }
