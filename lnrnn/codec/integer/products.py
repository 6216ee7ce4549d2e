"""The exact integer matrix products of format 2: int8 activations times int8 weights, summed in int32.

The product of int8 values in [-127, 127] over K <= 448 terms is an integer below 2^23 in magnitude, so any
correct way of computing it gives the same number. Two are used:

* ``OrtProduct``: ONNX Runtime's ``MatMulInteger`` on uint8 operands (a + 128 and w + 128, both zero points
  128), a one-node graph written here (the serve install has no ``onnx`` package). Its unsigned-by-unsigned
  kernels widen to 16 bits before multiplying (x86-64: ``vpmaddwd``; AVX-VNNI and AVX-512 VNNI: word dot
  products; ARM: ``udot``/``ummla``), so no intermediate saturates; the unsigned-by-signed kernels can
  (``vpmaddubsw`` adds two u8 x s8 products in a saturating int16), which is why they are not used. It reads
  one byte per weight where a float32 product reads four: 2.3x faster here on the default model's shapes.
* ``NumpyProduct``: a float32 BLAS ``@`` of the same integers (every partial sum is an integer below 2^24,
  hence exact in any order), used when ONNX Runtime cannot be imported or refuses the graph.

Both give the identical int32 array; ``tests/codec/test_format2_products.py`` checks it on random and extreme
operands and on whole archives.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Protocol

import numpy as np

QMAX = 127
_log = logging.getLogger(__name__)
_OFFSET = 128  # a + 128 and w + 128 are in [1, 255]: uint8 with zero point 128


class Product(Protocol):
    """x [B, K] int8-valued float32 -> x @ W as int32 [B, N]."""

    columns: int

    def __call__(self, x: np.ndarray) -> np.ndarray: ...


class NumpyProduct:
    """BLAS product of integer-valued floats: float32 while every partial sum is an integer below 2^24
    (K * 127 * 127 < 2^24, K <= 1040), float64 (exact below 2^53) for longer products."""

    def __init__(self, weight: np.ndarray) -> None:
        exact32 = weight.shape[0] * QMAX * QMAX < 1 << 24
        self.weight = np.ascontiguousarray(weight, dtype=np.float32 if exact32 else np.float64)
        self.columns = weight.shape[1]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return (x.astype(self.weight.dtype, copy=False) @ self.weight).astype(np.int32)


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field(number: int, payload: bytes | int | str) -> bytes:
    """One protocol-buffer record: varint for int, length-delimited for bytes/str."""
    if isinstance(payload, int):
        return _varint(number << 3) + _varint(payload)
    data = payload.encode() if isinstance(payload, str) else payload
    return _varint(number << 3 | 2) + _varint(len(data)) + data


_UINT8, _INT32 = 2, 6  # TensorProto.DataType


def _tensor(name: str, array: np.ndarray) -> bytes:
    dims = b"".join(_field(1, d) for d in array.shape)
    return dims + _field(2, _UINT8) + _field(8, name) + _field(9, np.ascontiguousarray(array).tobytes())


def _value_info(name: str, elem_type: int, dims: list[int | str]) -> bytes:
    shape = b"".join(_field(1, _field(2, d) if isinstance(d, str) else _field(1, d)) for d in dims)
    tensor_type = _field(1, elem_type) + _field(2, shape)
    return _field(1, name) + _field(2, _field(1, tensor_type))


def matmul_integer_model(weight_u8: np.ndarray) -> bytes:
    """The ONNX ModelProto of Y = MatMulInteger(A, W, 128, 128) with W an initializer (so that ONNX Runtime
    packs it once), A uint8 [rows, K], Y int32 [rows, N] (onnx.proto field numbers)."""
    k, n = weight_u8.shape
    node = (
        b"".join(_field(1, name) for name in ("A", "W", "a_zero", "w_zero"))
        + _field(2, "Y")
        + _field(4, "MatMulInteger")
    )
    zero = np.array(_OFFSET, dtype=np.uint8)
    graph = (
        _field(1, node)
        + _field(2, "integer_product")
        + _field(5, _tensor("W", weight_u8))
        + _field(5, _tensor("a_zero", zero))
        + _field(5, _tensor("w_zero", zero))
        + _field(11, _value_info("A", _UINT8, ["rows", k]))
        + _field(12, _value_info("Y", _INT32, ["rows", n]))
    )
    opset = _field(1, "") + _field(2, 13)
    return _field(1, 7) + _field(2, "lnrnn") + _field(7, graph) + _field(8, opset)


class OrtProduct:
    """ONNX Runtime's exact uint8 x uint8 -> int32 product (module docstring); one intra-op thread, since
    format 2 runs one lane per core. The session is made on first use in each process, so the object can
    be sent to a worker process."""

    def __init__(self, weight: np.ndarray, *, threads: int = 1, optimization: str = "ORT_ENABLE_ALL") -> None:
        """``threads`` and ``optimization`` (a ``GraphOptimizationLevel`` name) are for the tests, which
        show that they do not change the numbers."""
        self.threads, self.optimization = threads, optimization
        if np.abs(weight).max(initial=0) > QMAX:
            raise ValueError("weights must be int8 in [-127, 127]")
        if weight.shape[0] * 255 * 255 >= 1 << 31:  # the kernels' unsigned sums must fit in int32
            raise ValueError(f"a {weight.shape[0]}-long uint8 product may overflow int32")
        self.weight_u8 = (np.asarray(weight, dtype=np.int16) + _OFFSET).astype(np.uint8)
        self.columns = weight.shape[1]
        self._session: Any = None
        self._lock = threading.Lock()
        self._session = self._open()  # fail here, not mid-archive, if ONNX Runtime refuses it

    def _open(self) -> Any:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, self.optimization)
        options.log_severity_level = 3
        return ort.InferenceSession(
            matmul_integer_model(self.weight_u8), options, providers=["CPUExecutionProvider"]
        )

    def __getstate__(self) -> dict[str, Any]:
        keep = ("weight_u8", "columns", "threads", "optimization")
        return {name: getattr(self, name) for name in keep}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._session = None
        self._lock = threading.Lock()

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if self._session is None:
            with self._lock:
                if self._session is None:
                    self._session = self._open()
        a = x.astype(np.int16)
        a += _OFFSET
        out: np.ndarray = self._session.run(None, {"A": a.astype(np.uint8)})[0]
        return out


KINDS = ("fastest", "onnxruntime", "numpy")
ENV = "LNRNN_INTEGER_PRODUCTS"  # one of KINDS; unset: fastest


def integer_product(weight: np.ndarray, kind: str = "fastest") -> Product:
    """The product with ``weight``: "onnxruntime", "numpy", or "fastest" (ONNX Runtime's integer kernel
    when it loads, else numpy's BLAS). All give the same numbers; only the speed differs."""
    if kind not in KINDS:
        raise ValueError(f"{ENV} must be one of {', '.join(KINDS)}, not {kind!r}")
    if kind == "numpy":
        return NumpyProduct(weight)
    if kind == "onnxruntime":
        return OrtProduct(weight)
    try:
        return OrtProduct(weight)
    except Exception:  # noqa: BLE001 - no onnxruntime, or one that refuses the graph: numpy is exact too
        _log.info("format 2 computes its products with numpy (onnxruntime's integer kernel did not load)")
        return NumpyProduct(weight)
