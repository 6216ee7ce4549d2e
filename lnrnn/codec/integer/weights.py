"""The fp32 weights of a layer-norm GRU step graph, found by the graph's wiring, not by guessed names.

``step.onnx`` (export/graphs/step.py) names the layer-norm parameters after the PyTorch modules
(``model.cells.{i}.norm_{x|h}.norms.{k}.weight|bias``) but the matrices only ``onnx::MatMul_<n>``. Each
matrix is identified by what reads its product: a ``Split`` into the two layer norms of one path of one
layer (``norm_x`` = input path ``W_ih``, ``norm_h`` = recurrent path ``W_hh``), or the ``Add`` of
``model.output_bias`` (the tied output layer, which must equal the embedding transposed). The wiring is then
checked: layer 0 reads the embedding, layer i > 0 reads layer i-1's new state, and the output layer reads
the top layer's new state (a model with ``sum_layers`` or an output projection fails here), and no weight is
left over. Anything else is refused with one line: format 2 implements exactly the layer-norm GRU of
``train/cells.py`` (``GRUCell``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from lnrnn.codec.errors import ModelFileError
from lnrnn.codec.integer.onnxfile import Graph, Node
from lnrnn.contract import N_BYTES, VOCAB_SIZE, ArtifactConfig

EMBEDDING = "model.embedding.weight"
OUTPUT_BIAS = "model.output_bias"
_NORM = re.compile(r"model\.cells\.(\d+)\.norm_([xh])\.norms\.(\d+)\.(weight|bias)")
_PASS_THROUGH = {"Unsqueeze", "Squeeze", "Slice", "Reshape", "Identity", "Concat"}


@dataclass(frozen=True)
class LayerWeights:
    """One LN-GRU layer (Ba et al. 2016, eqs. 26-28, as ``GRUCell.step``): columns ordered r, z, n."""

    w_in: np.ndarray  # float32 [K, 3H]: input path W_ih (x @ w_in), K = E for layer 0 else H
    w_rec: np.ndarray  # float32 [H, 3H]: recurrent path W_hh (h @ w_rec), no bias under layer norm
    gain_in: np.ndarray  # float32 [3H]: norm_x gains, the [r; z] slice then the n slice
    bias_in: np.ndarray
    gain_rec: np.ndarray  # norm_h
    bias_rec: np.ndarray
    eps: float  # the layer norms' epsilon (nn.LayerNorm's 1e-5 as float32)


@dataclass(frozen=True)
class GRUWeights:
    embedding: np.ndarray  # float32 [257, E]; the output layer is its transpose (tied)
    output_bias: np.ndarray  # float32 [257]
    layers: tuple[LayerWeights, ...]
    initial_state: np.ndarray  # float64 [L, H]

    @property
    def hidden(self) -> int:
        return int(self.layers[0].w_rec.shape[0])


def _unsupported(why: str) -> ModelFileError:
    return ModelFileError(
        f"format 2 needs a layer-norm GRU step graph whose output layer is the tied embedding: {why}"
    )


def _source(graph: Graph, value: str) -> Node | None:
    """The node that computes ``value``, looking through reshaping (Unsqueeze, Slice, one-input Concat)."""
    node = graph.producer(value)
    while node is not None and node.op_type in _PASS_THROUGH:
        if node.op_type == "Concat" and len(node.inputs) != 1:
            return node
        node = graph.producer(node.inputs[0])
    return node


def _norm_readers(graph: Graph, value: str) -> list[tuple[int, str, int]]:
    """(layer, path, slice) of the layer norms that read ``value`` through a ``Split``."""
    found = []
    for split in graph.consumers(value):
        if split.op_type != "Split":
            continue
        for part in split.outputs:
            for norm in graph.consumers(part):
                match = _NORM.fullmatch(norm.inputs[1]) if norm.op_type == "LayerNormalization" else None
                if match:
                    found.append((int(match[1]), match[2], int(match[3])))
    return found


def gru_weights(graph: Graph, config: ArtifactConfig, initial_state: list[list[float]]) -> GRUWeights:
    """The weights of ``graph`` (a step graph of a model with ``config``) or ``ModelFileError``."""
    if config.cell != "gru" or config.norm != "layer":
        raise _unsupported(f"this model is a {config.cell} with norm {config.norm!r}")
    inits = graph.initializers
    hidden, layers = config.hidden, config.layers
    if EMBEDDING not in inits or OUTPUT_BIAS not in inits:
        raise _unsupported(f"no {EMBEDDING} or {OUTPUT_BIAS}")
    embedding, output_bias = inits[EMBEDDING], inits[OUTPUT_BIAS]
    if embedding.shape != (VOCAB_SIZE, config.embedding) or output_bias.shape != (VOCAB_SIZE,):
        raise _unsupported("embedding or output bias of an unexpected shape")
    if config.embedding != hidden:
        raise _unsupported(f"embedding size {config.embedding} differs from hidden size {hidden}")
    matrices: dict[tuple[int, str], str] = {}
    head: Node | None = None
    state_source: dict[str, Node | None] = {}
    for node in graph.nodes:
        if node.op_type != "MatMul" or len(node.inputs) != 2:
            continue
        weight = graph.weight_name(node.inputs[1])
        if weight is None:
            continue
        readers = _norm_readers(graph, node.outputs[0])
        adds = [n for n in graph.consumers(node.outputs[0]) if n.op_type == "Add" and OUTPUT_BIAS in n.inputs]
        if readers and len({(layer, path) for layer, path, _ in readers}) == 1:
            layer, path, _ = readers[0]
            if (layer, path) in matrices:
                raise _unsupported(f"two matrices feed norm_{path} of layer {layer}")
            matrices[layer, path] = weight
            state_source[weight] = _source(graph, node.inputs[0])
        elif adds and head is None:
            head = node
        else:
            raise _unsupported(f"a matrix ({weight}) that is neither a gate path nor the output layer")
    if head is None or sorted(matrices) != sorted((i, p) for i in range(layers) for p in "xh"):
        raise _unsupported("the gate paths or the output layer are missing")
    head_weight = graph.weight_name(head.inputs[1])
    if head_weight is None or not np.array_equal(inits[head_weight], embedding.T):
        raise _unsupported("the output layer is not the embedding transposed (untied or projected)")
    # wiring: which node's output each matrix reads
    outputs = [n for n in graph.nodes if "state_out" in n.outputs]
    if len(outputs) != 1 or outputs[0].op_type != "Concat" or len(outputs[0].inputs) != layers:
        raise _unsupported("state_out is not the concatenation of the layers' new states")
    new_state = [_source(graph, value) for value in outputs[0].inputs]
    if _source(graph, head.inputs[0]) is not new_state[-1]:
        raise _unsupported("the output layer does not read the top layer's new state (sum_layers?)")
    first = state_source[matrices[0, "x"]]
    if first is None or first.op_type != "Gather" or first.inputs[0] != EMBEDDING:
        raise _unsupported("layer 0 does not read the byte embedding")
    for i in range(1, layers):
        if state_source[matrices[i, "x"]] is not new_state[i - 1]:
            raise _unsupported(f"layer {i} does not read layer {i - 1}'s new state")
    used = {EMBEDDING, OUTPUT_BIAS, head_weight, *matrices.values()}
    norms: dict[tuple[int, str, int, str], np.ndarray] = {}
    eps: dict[int, set[float]] = {i: set() for i in range(layers)}
    for node in graph.nodes:
        if node.op_type == "LayerNormalization":
            match = _NORM.fullmatch(node.inputs[1])
            if match is None or len(node.inputs) != 3:
                raise _unsupported(f"an unrecognised layer norm ({node.name})")
            eps[int(match[1])].add(float(node.floats.get("epsilon", 1e-5)))
            for value in node.inputs[1:]:
                m, name = _NORM.fullmatch(value), graph.weight_name(value)
                if m is None or name is None:
                    raise _unsupported(f"layer norm parameter {value} is not a weight")
                norms[int(m[1]), m[2], int(m[3]), m[4]] = inits[name]
                used.add(name)
    extra = sorted(set(inits) - used)
    if extra:
        raise _unsupported(f"weights this reader does not know: {', '.join(extra[:3])}")
    built = []
    for i in range(layers):
        if len(eps[i]) != 1:
            raise _unsupported(f"layer {i}'s layer norms have different epsilons")

        def joined(path: str, kind: str, i: int = i) -> np.ndarray:
            try:
                parts = [norms[i, path, 0, kind], norms[i, path, 1, kind]]
            except KeyError:
                raise _unsupported(f"layer {i} lacks a norm_{path} slice") from None
            if [p.shape for p in parts] != [(2 * hidden,), (hidden,)]:
                raise _unsupported(f"layer {i}'s norm_{path} slices are not [r; z] and n")
            return np.concatenate(parts)

        w_in, w_rec = inits[matrices[i, "x"]], inits[matrices[i, "h"]]
        if w_in.shape != (config.embedding if i == 0 else hidden, 3 * hidden) or w_rec.shape != (
            hidden,
            3 * hidden,
        ):
            raise _unsupported(f"layer {i}'s matrices have unexpected shapes")
        built.append(
            LayerWeights(
                w_in=w_in,
                w_rec=w_rec,
                gain_in=joined("x", "weight"),
                bias_in=joined("x", "bias"),
                gain_rec=joined("h", "weight"),
                bias_rec=joined("h", "bias"),
                eps=eps[i].pop(),
            )
        )
    state = np.asarray(initial_state, dtype=np.float64)
    if state.shape != (layers, hidden):
        raise _unsupported("the initial state does not have the layers' shape")
    assert N_BYTES == 256
    return GRUWeights(embedding, output_bias, tuple(built), state)
