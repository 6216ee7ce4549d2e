"""int4: 4-bit weights, fp32 activations. Every MatMul weight becomes ONNX Runtime's ``MatMulNBits``
(com.microsoft, bits=4) and every ``Gather`` table ``GatherBlockQuantized`` (com.microsoft, uint8 data holding
4-bit values); ``LayerNormalization``, the gates and ``LogSoftmax`` stay the fp32 graph's nodes.

Packing (written here, not by ONNX Runtime's quantizer, so the step graph's tied embedding and output weight
can share one tensor). A weight ``w`` [K, N] (MatMul's right-hand side) is cut into blocks of ``block_size``
values along K, one block per output column and K range; the last block is zero-padded when K is not a
multiple. Each block has one scale ``s`` and 4-bit values ``u`` in 0..15 around the fixed zero point 8:

    w[k, n] ~= (u[n, k] - 8) * s[n, k // block_size]

``u`` of column n is stored in order of k, two per byte, the first in the low nibble: ``B`` is uint8
[N, ceil(K / block_size), block_size / 2] and the scales [N, ceil(K / block_size)], exactly ``MatMulNBits``'s
inputs with its default zero point. A ``Gather`` table [V, D] is the same layout with one block row per
table row (``GatherBlockQuantized`` with uint8 data [V, D / 2], ``bits`` 4, its default zero point 8 for
uint8 data). When a table is the transpose of a MatMul weight (the tied embedding and output layer of the
step graph) and D is a multiple of the block size, the table reads the MatMul's ``B`` as
[V, blocks, block_size / 2] and a ``Reshape`` restores [..., D]: the 4-bit values are stored once.

The scales are stored as fp16 and turned into fp32 by a ``Cast`` (both ops take fp32 scales with fp32
activations): ONNX Runtime folds it once at load, and the fp16 rounding of a scale (2^-11 relative) is
small next to a 4-bit step. It takes the default model's step graph from 1.51 MB to 1.43 MB. The values are
rounded with the fp16 scale, so the weights the graph computes with are exactly ``dequantize``'s.

Symmetric: a block's value of largest magnitude ``x`` lands exactly on -8 (``s = x / -8``, negative when x is
positive), the others round to nearest within -8..7. Measured on the default model (its model card, "int4"):
blocks of 64 are the only size that keeps its step graph under 1.5 MB (K = 448 is 7 blocks of 64; 128 pads
it to 512, 32 doubles the scales); zero points (4 more bytes per column) and a search for the scale with the
least squared error per block (among clipped ranges) did not lower the bits/byte.

``accuracy_level`` 1 keeps ``MatMulNBits``'s input fp32 (4 would quantize activations to int8 per block), so
a row's numbers depend on that row only. They are not bit-identical across batchings, unlike the fp32 graph's:
ONNX Runtime runs one row through another kernel than several. Measured on the default model (four 1,000-byte
texts alone and as one batch, chunks of 1, 7 and 512 tokens): at most 1.3e-5 nats per byte apart, within the
1e-4 the serving tests allow.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import AttributeProto, GraphProto, NodeProto, TensorProto, helper, numpy_helper

from lnrnn.contract import INT4_MAX_BPC_DELTA
from lnrnn.export.quantize.weights import all_graphs

BITS = 4
BLOCK_SIZE = 64  # measured among 32/64/128 on the default model: see the module doc and its model card
BLOCK_SIZES = (16, 32, 64, 128)  # what MatMulNBits and GatherBlockQuantized accept here (powers of 2, >= 16)
ZERO_POINT = 8  # MatMulNBits' default for 4 bits and GatherBlockQuantized's for uint8 data
QMIN, QMAX = -ZERO_POINT, 15 - ZERO_POINT
MIN_ELEMENTS = 1024  # smaller tensors (biases, norm gains) stay fp32: they cost little and matter most
FP16_MAX = float(np.finfo(np.float16).max)


def scheme(block_size: int = BLOCK_SIZE) -> str:
    """The report's name of the int4 scheme at ``block_size``."""
    return (
        f"int4 weights (MatMulNBits, GatherBlockQuantized; blocks of {block_size} along K, symmetric, one "
        "fp16 scale per block), fp32 activations"
    )


SCHEME = scheme()
MAX_BPC_DELTA = INT4_MAX_BPC_DELTA  # keep the int4 files only if BPC(int4) - BPC(fp32) <= this (bits/byte)
SUFFIX = "/int4"
MS_DOMAIN = "com.microsoft"
INT4_OPS = ("MatMulNBits", "GatherBlockQuantized")


@dataclass(frozen=True)
class Packed:
    """One weight in ``MatMulNBits``'s layout: ``data`` uint8 [N, blocks, block_size / 2], ``scales`` fp16
    [N, blocks], for a logical [K, N] weight (or an [N, K] Gather table)."""

    data: np.ndarray
    scales: np.ndarray
    k: int
    block_size: int


def quantize_blocks(weights: np.ndarray, block_size: int = BLOCK_SIZE) -> Packed:
    """Pack the [K, N] ``weights`` of a MatMul (4-bit values, one scale per block of K; the module doc)."""
    if weights.ndim != 2 or block_size not in BLOCK_SIZES:
        raise ValueError(
            f"expected a 2-D array and a block size in {BLOCK_SIZES}, got {weights.shape} and {block_size}"
        )
    k, n = weights.shape
    blocks = -(-k // block_size)
    padded = np.zeros((n, blocks * block_size), dtype=np.float32)
    padded[:, :k] = weights.T
    x = padded.reshape(n, blocks, block_size)
    extreme = np.take_along_axis(x, np.argmax(np.abs(x), axis=2)[..., None], axis=2)  # [N, blocks, 1]
    if np.abs(extreme).max(initial=0.0) / -QMIN > FP16_MAX:
        raise ValueError("a weight is too large for fp16 scales")
    s = (extreme / np.float32(QMIN)).astype(np.float16)
    s[s == 0] = 1.0  # an all-zero block (or one below fp16's range) quantizes to zeros with any scale
    q = np.clip(np.rint(x / s.astype(np.float32)), QMIN, QMAX)
    u = (q + ZERO_POINT).astype(np.uint8)
    data = (u[..., 0::2] | (u[..., 1::2] << 4)).astype(np.uint8)
    return Packed(data, s[..., 0], k, block_size)


def dequantize(packed: Packed) -> np.ndarray:
    """The fp32 [K, N] weights the int4 graph computes with (what ``MatMulNBits`` reconstructs)."""
    u = np.empty((*packed.data.shape[:2], packed.block_size), dtype=np.int16)
    u[..., 0::2] = packed.data & 0x0F
    u[..., 1::2] = packed.data >> 4
    w = (u - ZERO_POINT).astype(np.float32) * packed.scales.astype(np.float32)[..., None]
    return w.reshape(w.shape[0], -1)[:, : packed.k].T


def _gather_axis(node: NodeProto) -> int:
    return next((a.i for a in node.attribute if a.name == "axis"), 0)


def _matmul_nbits(node: NodeProto, b: str, scales: str, packed: Packed, n: int) -> NodeProto:
    return helper.make_node(
        "MatMulNBits",
        [node.input[0], b, scales],
        list(node.output),
        (node.name or node.output[0]) + SUFFIX,
        domain=MS_DOMAIN,
        K=packed.k,
        N=n,
        bits=BITS,
        block_size=packed.block_size,
        accuracy_level=1,  # fp32 input: no int8 activations (the module doc)
    )


class _Rewriter:
    """Rewrites one graph's quantizable initializers and the nodes that read them (``make_int4``)."""

    def __init__(self, graph: GraphProto, block_size: int, taken: set[str]) -> None:
        self.graph, self.block_size, self.taken = graph, block_size, taken
        self.nodes: dict[int, list[NodeProto]] = {}  # index of a node -> what replaces it
        self.inits: list[TensorProto] = []
        self.first: list[NodeProto] = []  # the scales' Casts: before every node (they read initializers only)
        self.matmul_weights: list[tuple[np.ndarray, str, Packed]] = []  # fp32 weight, its B name, packing
        self.scales_of: dict[str, str] = {}  # B name -> its fp32 scales [N, blocks]

    def name(self, base: str) -> str:
        if base in self.taken:
            raise ValueError(f"{base}: the name for an int4 tensor is already used in the graph")
        self.taken.add(base)
        return base

    def scales(self, base: str, packed: Packed) -> str:
        """The fp32 scales of ``packed``: its fp16 initializer and a ``Cast`` (the module doc)."""
        stored, scales = self.name(base + "/scales_fp16"), self.name(base + "/scales")
        self.inits.append(numpy_helper.from_array(packed.scales, stored))
        cast = helper.make_node("Cast", [stored], [scales], scales + "/cast", to=TensorProto.FLOAT)
        self.first.append(cast)
        return scales

    def matmul(self, init: TensorProto, w: np.ndarray, users: list[int]) -> None:
        packed = quantize_blocks(w, self.block_size)
        b, scales = self.name(init.name + SUFFIX), self.scales(init.name + SUFFIX, packed)
        self.inits.append(numpy_helper.from_array(packed.data, b))
        for i in users:
            self.nodes[i] = [_matmul_nbits(self.graph.node[i], b, scales, packed, w.shape[1])]
        self.matmul_weights.append((w, b, packed))
        self.scales_of[b] = scales

    def gather(self, init: TensorProto, table: np.ndarray, users: list[int]) -> bool:
        """False when the table cannot be packed (an odd width): it then stays fp32."""
        v, d = table.shape
        tied = next(
            (
                (b, self.scales_of[b])
                for w, b, _ in self.matmul_weights
                if d % self.block_size == 0 and w.shape == (d, v) and np.array_equal(w.T, table)
            ),
            None,
        )
        if tied is None and d % 2:
            return False
        base = init.name + SUFFIX
        if tied is not None:  # the MatMul's B and scales read as [V, blocks, block/2] and [V, blocks, 1]
            data, matmul_scales = tied
            axis, scales = self.name(base + "/axis"), self.name(base + "/scales")
            self.inits.append(numpy_helper.from_array(np.array([2], dtype=np.int64), axis))
            self.first.append(helper.make_node("Unsqueeze", [matmul_scales, axis], [scales], scales + "/3d"))
            quantize_axis = 2
        else:
            packed = quantize_blocks(table.T, self.block_size)
            data, scales = self.name(base), self.scales(base, packed)
            rows = packed.data.reshape(v, -1)[:, : d // 2]  # [V, D / 2]: the padding is not stored
            self.inits.append(numpy_helper.from_array(rows, data))
            quantize_axis = 1
        for i in users:
            node = self.graph.node[i]
            out = node.output[0]
            q = helper.make_node(
                "GatherBlockQuantized",
                [data, node.input[1], scales],
                [out if tied is None else self.name(out + SUFFIX + "/blocks")],
                (node.name or out) + SUFFIX,
                domain=MS_DOMAIN,
                bits=BITS,
                gather_axis=0,
                quantize_axis=quantize_axis,
                block_size=self.block_size,
            )
            self.nodes[i] = [q] if tied is None else [q, *self._reshape(node, q.output[0], d)]
        return True

    def _reshape(self, node: NodeProto, blocks: str, width: int) -> list[NodeProto]:
        """[..., blocks, block] -> [..., width]: the indices' shape, then the table's width."""
        p = (node.name or node.output[0]) + SUFFIX
        shape, width_name, target = self.name(p + "/shape"), self.name(p + "/width"), self.name(p + "/target")
        self.inits.append(numpy_helper.from_array(np.array([width], dtype=np.int64), width_name))
        return [
            helper.make_node("Shape", [node.input[1]], [shape], p + "/indices_shape"),
            helper.make_node("Concat", [shape, width_name], [target], p + "/concat", axis=0),
            helper.make_node("Reshape", [blocks, target], [node.output[0]], p + "/reshape"),
        ]


def make_int4(model: onnx.ModelProto, block_size: int = BLOCK_SIZE) -> onnx.ModelProto:
    """A copy of the fp32 ``model`` whose MatMul weights and Gather tables are 4-bit (see the module doc)."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    taken = {name for g in all_graphs(out.graph) for n in g.node for name in (*n.input, *n.output)}
    taken |= {i.name for g in all_graphs(out.graph) for i in g.initializer}
    for graph in reversed(list(all_graphs(out.graph))):  # bodies first: rebuilding a graph copies its nodes
        uses: dict[str, list[tuple[int, str, int]]] = defaultdict(list)
        for index, node in enumerate(graph.node):
            for slot, name in enumerate(node.input):
                uses[name].append((index, node.op_type, slot))
        rewriter = _Rewriter(graph, block_size, taken)
        candidates = [
            (init, numpy_helper.to_array(init))
            for init in graph.initializer
            if init.data_type == TensorProto.FLOAT
            and len(init.dims) == 2
            and np.prod(init.dims) >= MIN_ELEMENTS
        ]
        done = []
        # MatMul weights first, so that a Gather table can find the MatMul weight it is the transpose of
        for init, w in candidates:
            found = uses[init.name]
            if found and all(op == "MatMul" and slot == 1 for _, op, slot in found):
                rewriter.matmul(init, w, [i for i, _, _ in found])
                done.append(init)
        for init, table in candidates:
            found = uses[init.name]
            gathers = found and all(
                op == "Gather" and slot == 0 and _gather_axis(graph.node[i]) == 0 for i, op, slot in found
            )
            if gathers and rewriter.gather(init, table, [i for i, _, _ in found]):
                done.append(init)
        if not done:
            continue
        for init in done:
            graph.initializer.remove(init)
        graph.initializer.extend(rewriter.inits)
        rewritten = [new for i, node in enumerate(graph.node) for new in rewriter.nodes.get(i, [node])]
        nodes = [*rewriter.first, *rewritten]
        del graph.node[:]
        graph.node.extend(nodes)
    if not any(o.domain == MS_DOMAIN for o in out.opset_import):
        out.opset_import.append(helper.make_opsetid(MS_DOMAIN, 1))
    return out


def quantize_file(src: Path, dst: Path, block_size: int = BLOCK_SIZE) -> None:
    """Write the int4 copy of the fp32 graph ``src`` to ``dst``."""
    onnx.save(make_int4(onnx.load(str(src)), block_size), str(dst))


def int4_summary(model: onnx.ModelProto) -> dict[str, dict[str, int]]:
    """Per graph (``main``, Scan bodies by name): the 4-bit ops, fp32 MatMul/Gemm left, LayerNormalization."""
    summary: dict[str, dict[str, int]] = {}

    def walk(graph: GraphProto, name: str) -> None:
        counts = Counter(n.op_type for n in graph.node)
        picked = {k: v for k, v in counts.items() if k in (*INT4_OPS, "MatMul", "Gemm", "LayerNormalization")}
        if picked:
            summary[name] = picked
        for node in graph.node:
            for attr in node.attribute:
                if attr.type == AttributeProto.GRAPH:
                    walk(attr.g, attr.g.name or f"{node.name}.{attr.name}")

    walk(model.graph, "main")
    return summary
