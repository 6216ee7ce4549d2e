"""Splice exported ONNX graphs into a bigger graph: rename every value, then reuse the nodes.

Sub-graphs come from ``torch.onnx.export`` of small wrappers around the model's own modules, so no cell
equation is written here: this file only moves nodes and renames edges.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import onnx
from onnx import GraphProto, NodeProto, TensorProto, ValueInfoProto

from lnrnn.contract import TensorSpec


@dataclass
class Spliced:
    """A sub-graph's nodes and initializers with every value renamed, ready to append to a graph."""

    nodes: list[NodeProto]
    initializers: list[TensorProto]
    inputs: list[ValueInfoProto]  # the sub-graph's inputs under their new names (for Scan bodies)
    outputs: list[ValueInfoProto]


def splice(graph: GraphProto, prefix: str, rename: Mapping[str, str]) -> Spliced:
    """Rename ``graph``'s values: names in ``rename`` map to the given name, all others get ``prefix``."""

    def new_name(name: str) -> str:
        return "" if name == "" else rename.get(name, prefix + name)

    nodes = []
    for node in graph.node:
        if any(
            attr.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for attr in node.attribute
        ):
            raise ValueError(f"cannot splice {node.op_type} node {node.name!r}: it has a sub-graph")
        copy = NodeProto()
        copy.CopyFrom(node)
        copy.name = prefix + (node.name or node.op_type)
        del copy.input[:]
        copy.input.extend(new_name(i) for i in node.input)
        del copy.output[:]
        copy.output.extend(new_name(o) for o in node.output)
        nodes.append(copy)
    initializers = []
    for init in graph.initializer:
        copy = TensorProto()
        copy.CopyFrom(init)
        copy.name = new_name(init.name)
        initializers.append(copy)
    return Spliced(nodes, initializers, _renamed(graph.input, new_name), _renamed(graph.output, new_name))


def _renamed(values: Sequence[ValueInfoProto], new_name: Callable[[str], str]) -> list[ValueInfoProto]:
    out = []
    for value in values:
        copy = ValueInfoProto()
        copy.CopyFrom(value)
        copy.name = new_name(value.name)
        out.append(copy)
    return out


def io_names(model: onnx.ModelProto) -> tuple[list[str], list[str]]:
    """Input names that are not initializers, and output names."""
    inits = {i.name for i in model.graph.initializer}
    return [i.name for i in model.graph.input if i.name not in inits], [o.name for o in model.graph.output]


def body_graph(
    name: str, parts: Sequence[Spliced], inputs: Sequence[ValueInfoProto], outputs: Sequence[ValueInfoProto]
) -> GraphProto:
    """A Scan body from spliced parts. It keeps its own initializers (self-contained, so the int8 quantizer
    finds the recurrent weights in it)."""
    nodes = [n for p in parts for n in p.nodes]
    inits = [i for p in parts for i in p.initializers]
    return onnx.helper.make_graph(nodes, name, list(inputs), list(outputs), initializer=inits)


def with_name(value: ValueInfoProto, name: str) -> ValueInfoProto:
    copy = ValueInfoProto()
    copy.CopyFrom(value)
    copy.name = name
    return copy


def value_info(name: str, elem: int, shape: Sequence[int | str]) -> ValueInfoProto:
    return onnx.helper.make_tensor_value_info(name, elem, list(shape))


def contract_value_info(spec: TensorSpec, layers: int, state_size: int) -> ValueInfoProto:
    """A graph input or output exactly as the artifact contract declares it."""
    elem = {"int64": onnx.TensorProto.INT64, "float32": onnx.TensorProto.FLOAT}[spec.dtype]
    return value_info(spec.name, elem, spec.shape(layers, state_size))
