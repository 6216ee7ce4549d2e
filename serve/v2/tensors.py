"""Open Inference Protocol v2 tensors on the wire: JSON, and the binary tensor data extension.

A request body is a JSON object, optionally followed by raw tensor bytes; the header
``Inference-Header-Content-Length`` gives the JSON part's length. A binary input carries
``parameters.binary_data_size`` instead of ``data``; its bytes follow the JSON in input order. Numbers are
little-endian and row-major; a BYTES element is a 4-byte little-endian length and then the bytes. This is
what ``tritonclient`` sends by default and the only lossless way to send text that is not UTF-8.

Responses use the same layout for the outputs asked for in binary (``outputs[i].parameters.binary_data``,
or ``parameters.binary_data_output`` for all of them), else plain JSON.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lnrnn.serve.errors import ApiError

HEADER_LENGTH = "inference-header-content-length"
BYTES = "BYTES"
NUMPY_TYPES: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype("<u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "INT8": np.dtype("<i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
}
MAX_RANK = 8
# the spec's fields, and the model name/version the kserve client repeats in the body (the URL decides)
REQUEST_FIELDS = {"id", "parameters", "inputs", "outputs", "model_name", "model_version"}


class BadRequest(ApiError):
    status, code = 400, "bad_request"


@dataclass
class Tensor:
    """One named tensor. ``data`` is a numpy array of ``shape``; BYTES tensors hold Python ``bytes``."""

    name: str
    datatype: str
    shape: tuple[int, ...]
    data: np.ndarray
    binary: bool = False  # answer (outputs) or arrived (inputs) as binary tensor data


@dataclass
class InferRequest:
    id: str | None
    parameters: dict[str, Any]
    inputs: dict[str, Tensor]
    requested: list[str] | None  # output names asked for, None = all
    binary_default: bool = False  # parameters.binary_data_output
    binary: dict[str, bool] = field(default_factory=dict)  # output name -> answer it in binary

    def wants_binary(self, name: str) -> bool:
        return self.binary.get(name, self.binary_default)


def parse_request(body: bytes, header_length: str | None) -> InferRequest:
    """The request's JSON header and tensors; ``BadRequest`` (400) says what is wrong."""
    if header_length is None:
        head, tail = body, b""
    else:
        try:
            n = int(header_length)
        except ValueError:
            raise BadRequest(f"Inference-Header-Content-Length {header_length!r} is not an integer") from None
        if not 0 < n <= len(body):
            raise BadRequest(
                f"Inference-Header-Content-Length is {n} but the body has {len(body)} bytes: "
                "it must be the length of the JSON part"
            )
        head, tail = body[:n], body[n:]
    try:
        raw = json.loads(head)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:
        hint = "" if header_length else " (binary tensor data needs Inference-Header-Content-Length)"
        raise BadRequest(f"the request is not a JSON object: {err}{hint}") from None
    if not isinstance(raw, dict):
        raise BadRequest("the request must be a JSON object with 'inputs'")
    unknown = set(raw) - REQUEST_FIELDS
    if unknown:
        allowed = ", ".join(sorted(REQUEST_FIELDS))
        raise BadRequest(f"unknown request field(s) {sorted(unknown)}; allowed: {allowed}")
    parameters = _object(raw.get("parameters", {}), "parameters")
    request_id = raw.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise BadRequest("'id' must be a string")
    inputs_raw = raw.get("inputs")
    if not isinstance(inputs_raw, list) or not inputs_raw:
        raise BadRequest("'inputs' must be a non-empty list of tensors")
    inputs: dict[str, Tensor] = {}
    offset = 0
    for i, item in enumerate(inputs_raw):
        tensor, offset = _input(_object(item, f"inputs[{i}]"), i, tail, offset)
        if tensor.name in inputs:
            raise BadRequest(f"input {tensor.name!r} is given twice")
        inputs[tensor.name] = tensor
    if offset != len(tail):
        raise BadRequest(
            f"{len(tail) - offset} bytes after the JSON header belong to no input's binary_data_size"
        )
    default_binary = _flag(parameters.get("binary_data_output", False), "parameters.binary_data_output")
    requested = None
    binary: dict[str, bool] = {}
    if "outputs" in raw:
        outputs = raw["outputs"]
        if not isinstance(outputs, list):
            raise BadRequest("'outputs' must be a list of {'name': ...} objects")
        requested = []
        for i, item in enumerate(outputs):
            out = _object(item, f"outputs[{i}]")
            name = out.get("name")
            if not isinstance(name, str):
                raise BadRequest(f"outputs[{i}].name must be a string")
            params = _object(out.get("parameters", {}), f"outputs[{i}].parameters")
            requested.append(name)
            binary[name] = _flag(params.get("binary_data", default_binary), f"outputs[{i}].binary_data")
    return InferRequest(request_id, parameters, inputs, requested, default_binary, binary)


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BadRequest(f"{where} must be a JSON object")
    return value


def _flag(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise BadRequest(f"{where} must be true or false")
    return value


def _input(raw: dict[str, Any], i: int, tail: bytes, offset: int) -> tuple[Tensor, int]:
    name, datatype, shape = raw.get("name"), raw.get("datatype"), raw.get("shape")
    if not isinstance(name, str) or not name:
        raise BadRequest(f"inputs[{i}].name must be a non-empty string")
    if datatype != BYTES and datatype not in NUMPY_TYPES:
        raise BadRequest(f"input {name!r}: unknown datatype {datatype!r}")
    if (
        not isinstance(shape, list)
        or len(shape) > MAX_RANK
        or any(not isinstance(d, int) or isinstance(d, bool) or d < 0 for d in shape)
    ):
        raise BadRequest(f"input {name!r}: shape must be a list of at most {MAX_RANK} non-negative integers")
    count = math.prod(shape)
    params = _object(raw.get("parameters", {}), f"input {name!r} parameters")
    size = params.get("binary_data_size")
    if size is not None:
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise BadRequest(f"input {name!r}: binary_data_size must be a non-negative integer")
        if "data" in raw:
            raise BadRequest(f"input {name!r} has both 'data' and binary_data_size")
        if offset + size > len(tail):
            raise BadRequest(
                f"input {name!r}: binary_data_size {size} runs past the end of the body "
                f"({len(tail) - offset} bytes left)"
            )
        chunk = tail[offset : offset + size]
        data = _from_binary(name, str(datatype), chunk, count)
        return Tensor(name, str(datatype), tuple(shape), data.reshape(shape), binary=True), offset + size
    if "data" not in raw:
        raise BadRequest(f"input {name!r} has neither 'data' nor parameters.binary_data_size")
    data = _from_json(name, str(datatype), raw["data"], count)
    return Tensor(name, str(datatype), tuple(shape), data.reshape(shape)), offset


def _flatten(value: Any) -> list[Any]:
    if not isinstance(value, list):
        return [value]
    flat: list[Any] = []
    stack = [iter(value)]
    while stack:
        for item in stack[-1]:
            if isinstance(item, list):
                stack.append(iter(item))
                break
            flat.append(item)
        else:
            stack.pop()
    return flat


def _from_json(name: str, datatype: str, value: Any, count: int) -> np.ndarray:
    flat = _flatten(value)
    if len(flat) != count:
        raise BadRequest(f"input {name!r}: shape holds {count} elements but data has {len(flat)}")
    if datatype == BYTES:
        if any(not isinstance(v, str) for v in flat):
            raise BadRequest(f"input {name!r}: BYTES data in JSON must be strings")
        try:
            return _bytes_array([v.encode("utf-8") for v in flat])
        except UnicodeEncodeError:
            raise BadRequest(f"input {name!r}: a string is not encodable as UTF-8") from None
    dtype = NUMPY_TYPES[datatype]
    if datatype == "BOOL":
        ok = all(isinstance(v, bool) for v in flat)
    elif dtype.kind in "iu":
        ok = all(isinstance(v, int) and not isinstance(v, bool) for v in flat)
    else:
        ok = all(isinstance(v, int | float) and not isinstance(v, bool) for v in flat)
    if not ok:
        raise BadRequest(f"input {name!r}: data must be {datatype} values")
    try:
        return np.asarray(flat, dtype=dtype)
    except OverflowError:
        raise BadRequest(f"input {name!r}: a value does not fit in {datatype}") from None


def _from_binary(name: str, datatype: str, chunk: bytes, count: int) -> np.ndarray:
    if datatype != BYTES:
        dtype = NUMPY_TYPES[datatype]
        if len(chunk) != count * dtype.itemsize:
            raise BadRequest(
                f"input {name!r}: {len(chunk)} bytes of binary data for {count} {datatype} elements "
                f"(expected {count * dtype.itemsize})"
            )
        return np.frombuffer(chunk, dtype=dtype).copy()
    items: list[bytes] = []
    pos = 0
    while pos < len(chunk):
        if pos + 4 > len(chunk):
            raise BadRequest(f"input {name!r}: BYTES element {len(items)} has a truncated length prefix")
        (n,) = struct.unpack_from("<I", chunk, pos)
        if pos + 4 + n > len(chunk):
            raise BadRequest(f"input {name!r}: BYTES element {len(items)} runs past binary_data_size")
        items.append(chunk[pos + 4 : pos + 4 + n])
        pos += 4 + n
    if len(items) != count:
        raise BadRequest(f"input {name!r}: shape holds {count} elements but the binary data has {len(items)}")
    return _bytes_array(items)


def _bytes_array(items: Sequence[bytes]) -> np.ndarray:
    out = np.empty(len(items), dtype=object)
    out[:] = list(items)
    return out


def bytes_tensor(name: str, items: Sequence[bytes], shape: Sequence[int] | None = None) -> Tensor:
    array = _bytes_array(items)
    shape = tuple(shape) if shape is not None else (len(items),)
    return Tensor(name, BYTES, shape, array.reshape(shape))


def number_tensor(name: str, datatype: str, array: np.ndarray) -> Tensor:
    data = np.ascontiguousarray(array, dtype=NUMPY_TYPES[datatype])
    return Tensor(name, datatype, tuple(data.shape), data)


def encode_response(
    model_name: str, version: str, request_id: str | None, outputs: Sequence[Tensor]
) -> tuple[bytes, int | None]:
    """The response body and, when some output is binary, the JSON header's length."""
    items = []
    chunks: list[bytes] = []
    for t in outputs:
        item: dict[str, Any] = {"name": t.name, "datatype": t.datatype, "shape": list(t.shape)}
        if t.binary:
            chunk = _to_binary(t)
            item["parameters"] = {"binary_data_size": len(chunk)}
            chunks.append(chunk)
        else:
            item["data"] = _to_json(t)
        items.append(item)
    head: dict[str, Any] = {"model_name": model_name, "model_version": version, "outputs": items}
    if request_id is not None:
        head["id"] = request_id
    header = json.dumps(head, separators=(",", ":"), allow_nan=False).encode()
    if not chunks:
        return header, None
    return header + b"".join(chunks), len(header)


def _to_binary(t: Tensor) -> bytes:
    if t.datatype != BYTES:
        return np.ascontiguousarray(t.data, dtype=NUMPY_TYPES[t.datatype]).tobytes()
    return b"".join(struct.pack("<I", len(b)) + b for b in t.data.reshape(-1))


def _to_json(t: Tensor) -> list[Any]:
    if t.datatype != BYTES:
        return t.data.reshape(-1).tolist()
    try:
        return [b.decode("utf-8") for b in t.data.reshape(-1)]
    except UnicodeDecodeError:
        raise BadRequest(
            f"output {t.name!r} holds bytes that are not UTF-8 and cannot be JSON strings: "
            "ask for it with parameters.binary_data = true"
        ) from None
