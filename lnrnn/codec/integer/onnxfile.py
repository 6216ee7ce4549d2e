"""Just enough of the ONNX file format to read a step graph's weights and wiring without ``onnx`` or
ONNX Runtime: the serve install has neither the ``onnx`` package nor a way to get initializer values out
of an ONNX Runtime session, and format 2 must not depend on either to compute its numbers.

An ONNX file is one protocol buffer (``onnx/onnx.proto``): ``ModelProto.graph`` (field 7) holds the nodes
(``GraphProto.node``, field 1) and the weights (``GraphProto.initializer``, field 5). Protocol buffers are a
sequence of (field number, wire type, value) records; the wire types used here are varint (0), 64-bit (1),
length-delimited (2) and 32-bit (5). Values are copied out bit for bit: float32 weights are read from the
little-endian bytes the exporter wrote, so every machine sees the same numbers.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

import numpy as np

# onnx.proto field numbers
_MODEL_GRAPH = 7
_GRAPH_NODE, _GRAPH_INITIALIZER = 1, 5
_NODE_INPUT, _NODE_OUTPUT, _NODE_NAME, _NODE_OP_TYPE, _NODE_ATTRIBUTE = 1, 2, 3, 4, 5
_ATTR_NAME, _ATTR_F, _ATTR_I = 1, 2, 3
_TENSOR_DIMS, _TENSOR_DATA_TYPE, _TENSOR_FLOAT_DATA, _TENSOR_NAME, _TENSOR_RAW_DATA = 1, 2, 4, 8, 9
_TENSOR_DATA_LOCATION = 14
_FLOAT = 1  # TensorProto.DataType.FLOAT
_EXTERNAL = 1  # TensorProto.DataLocation.EXTERNAL


class OnnxFormatError(ValueError):
    """The bytes are not an ONNX model this reader understands."""


@dataclass
class Node:
    op_type: str
    name: str
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    floats: dict[str, float] = field(default_factory=dict)  # float attributes (epsilon)
    ints: dict[str, int] = field(default_factory=dict)


@dataclass
class Graph:
    nodes: list[Node]
    initializers: dict[str, np.ndarray]  # float32 tensors only (the weights)

    def producer(self, value: str) -> Node | None:
        for node in self.nodes:
            if value in node.outputs:
                return node
        return None

    def consumers(self, value: str) -> list[Node]:
        return [node for node in self.nodes if value in node.inputs]

    def weight_name(self, value: str) -> str | None:
        """The initializer ``value`` is, directly or through ``Identity`` nodes (the exporter shares equal
        tensors between parameters that way), or None."""
        for _ in range(len(self.nodes) + 1):
            if value in self.initializers:
                return value
            node = self.producer(value)
            if node is None or node.op_type != "Identity":
                return None
            value = node.inputs[0]
        return None


def _varint(buf: memoryview, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if at >= len(buf):
            raise OnnxFormatError("truncated varint")
        byte = buf[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, at
        shift += 7
        if shift > 63:
            raise OnnxFormatError("varint longer than 64 bits")


def _fields(buf: memoryview) -> list[tuple[int, int, int | memoryview]]:
    """(field number, wire type, value) of every record of one message; varints as ints, the rest as bytes."""
    out: list[tuple[int, int, int | memoryview]] = []
    at = 0
    while at < len(buf):
        key, at = _varint(buf, at)
        number, wire = key >> 3, key & 7
        value: int | memoryview
        if wire == 0:
            value, at = _varint(buf, at)
        elif wire == 1:
            value, at = buf[at : at + 8], at + 8
        elif wire == 2:
            size, at = _varint(buf, at)
            value, at = buf[at : at + size], at + size
        elif wire == 5:
            value, at = buf[at : at + 4], at + 4
        else:
            raise OnnxFormatError(f"unsupported protobuf wire type {wire}")
        if at > len(buf):
            raise OnnxFormatError("truncated message")
        out.append((number, wire, value))
    return out


def _text(value: int | memoryview) -> str:
    if isinstance(value, int):
        raise OnnxFormatError("expected a string field")
    return bytes(value).decode("utf-8")


def _bytes(value: int | memoryview) -> memoryview:
    if isinstance(value, int):
        raise OnnxFormatError("expected a length-delimited field")
    return value


def _node(buf: memoryview) -> Node:
    node = Node(op_type="", name="")
    for number, _, value in _fields(buf):
        if number == _NODE_INPUT:
            node.inputs.append(_text(value))
        elif number == _NODE_OUTPUT:
            node.outputs.append(_text(value))
        elif number == _NODE_NAME:
            node.name = _text(value)
        elif number == _NODE_OP_TYPE:
            node.op_type = _text(value)
        elif number == _NODE_ATTRIBUTE:
            name, f, i = "", None, None
            for n, _, v in _fields(_bytes(value)):
                if n == _ATTR_NAME:
                    name = _text(v)
                elif n == _ATTR_F:
                    f = struct.unpack("<f", bytes(_bytes(v)))[0]
                elif n == _ATTR_I and isinstance(v, int):
                    i = v - (1 << 64) if v >= 1 << 63 else v
            if f is not None:
                node.floats[name] = f
            if i is not None:
                node.ints[name] = i
    return node


def _tensor(buf: memoryview) -> tuple[str, np.ndarray | None]:
    """(name, float32 array), or (name, None) for a tensor of another type."""
    name, dims, dtype, raw, floats, external = "", [], 0, None, [], False
    for number, _, value in _fields(buf):
        if number == _TENSOR_NAME:
            name = _text(value)
        elif number == _TENSOR_DIMS:
            if isinstance(value, int):
                dims.append(value)
            else:  # packed
                at = 0
                while at < len(value):
                    d, at = _varint(value, at)
                    dims.append(d)
        elif number == _TENSOR_DATA_TYPE and isinstance(value, int):
            dtype = value
        elif number == _TENSOR_RAW_DATA:
            raw = bytes(_bytes(value))
        elif number == _TENSOR_FLOAT_DATA:
            data = bytes(_bytes(value))
            floats.append(np.frombuffer(data, dtype="<f4"))  # packed (wire 2) or one value (wire 5)
        elif number == _TENSOR_DATA_LOCATION and value == _EXTERNAL:
            external = True
    if dtype != _FLOAT:
        return name, None
    if external:
        raise OnnxFormatError(f"tensor {name} is stored outside the file (external data)")
    size = int(np.prod(dims)) if dims else 1
    values = np.frombuffer(raw, dtype="<f4") if raw is not None else np.concatenate(floats or [np.zeros(0)])
    if values.size != size:
        raise OnnxFormatError(f"tensor {name}: {values.size} values for shape {dims}")
    return name, values.astype(np.float32).reshape(dims)


def read_graph(data: bytes) -> Graph:
    """The main graph of the ONNX model in ``data``: its nodes in file order and its float32 weights."""
    view = memoryview(data)
    graphs = [_bytes(v) for n, w, v in _fields(view) if n == _MODEL_GRAPH and w == 2]
    if len(graphs) != 1:
        raise OnnxFormatError("no graph in the model")
    nodes, initializers = [], {}
    for number, wire, value in _fields(graphs[0]):
        if number == _GRAPH_NODE and wire == 2:
            nodes.append(_node(_bytes(value)))
        elif number == _GRAPH_INITIALIZER and wire == 2:
            name, array = _tensor(_bytes(value))
            if array is not None:
                initializers[name] = array
    return Graph(nodes, initializers)
