"""The exact integer matrix products of format 2: int8 activations times int8 weights, summed in int32.

The product of int8 values in [-127, 127] over K <= 448 terms is an integer below 2^23 in magnitude, so any
correct way of computing it gives the same number. Three are used, fastest first:

* ``OrtSignedProduct``: ONNX Runtime's ``MatMulInteger`` on uint8 activations (a + 128, zero point 128)
  and int8 weights. Where the CPU has dot-product instructions that add u8 x s8 products straight into
  int32 (x86-64 AVX-VNNI and AVX-512 VNNI ``vpdpbusd``, AMX, ARM ``sdot``/``usdot``) this is exact and
  reads half the bytes per multiply of the next one: 2.2x faster than it on the default model's shapes
  here. Plain AVX2 has no such instruction: its kernel adds pairs of u8 x s8 products in a saturating int16
  (``vpmaddubsw``: 255 * 127 * 2 > 32767) and gets some sums wrong. So each row count is proved before it
  is used (``worst_case_exact``): the product of every row at +127 with columns of +127 and -127 makes every
  pair saturate if any can; a kernel that gets it right does not saturate. If a proof fails, the product
  falls back to the next kernel for good.
* ``OrtProduct``: ``MatMulInteger`` on uint8 operands (a + 128 and w + 128, both zero points 128). Its
  unsigned-by-unsigned kernels widen to 16 bits before multiplying (x86-64: ``vpmaddwd``; AVX-VNNI and
  AVX-512 VNNI: word dot products; ARM: ``udot``/``ummla``), so no intermediate saturates. It reads one byte
  per weight where a float32 product reads four: 2.3x faster than numpy here.
* ``NumpyProduct``: a float32 BLAS ``@`` of the same integers (every partial sum is an integer below 2^24,
  hence exact in any order), used when ONNX Runtime cannot be imported or refuses the graph.

All give the identical int32 array; ``tests/codec/test_format2_products.py`` checks it on random and extreme
operands and on whole archives, and that the proof rejects a saturating kernel.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

QMAX = 127
_log = logging.getLogger(__name__)
OFFSET = 128  # a + 128 and w + 128 are in [1, 255]: uint8 with zero point 128


class Product(Protocol):
    """x [B, K] int8-valued float32 -> x @ W as int32 [B, N]; ``offset_uint8`` takes x + 128 as uint8."""

    columns: int

    def __call__(self, x: np.ndarray) -> np.ndarray: ...

    def offset_uint8(self, a: np.ndarray) -> np.ndarray: ...


class NumpyProduct:
    """BLAS product of integer-valued floats: float32 while every partial sum is an integer below 2^24
    (K * 127 * 127 < 2^24, K <= 1040), float64 (exact below 2^53) for longer products."""

    def __init__(self, weight: np.ndarray) -> None:
        exact32 = weight.shape[0] * QMAX * QMAX < 1 << 24
        self.weight = np.ascontiguousarray(weight, dtype=np.float32 if exact32 else np.float64)
        self.columns = weight.shape[1]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return (x.astype(self.weight.dtype, copy=False) @ self.weight).astype(np.int32)

    def offset_uint8(self, a: np.ndarray) -> np.ndarray:
        x = a.astype(self.weight.dtype)
        x -= OFFSET
        return self(x)


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


_UINT8, _INT8, _INT32 = 2, 3, 6  # TensorProto.DataType


def _tensor(name: str, array: np.ndarray) -> bytes:
    dims = b"".join(_field(1, d) for d in array.shape)
    kind = _INT8 if array.dtype == np.int8 else _UINT8
    return dims + _field(2, kind) + _field(8, name) + _field(9, np.ascontiguousarray(array).tobytes())


def _value_info(name: str, elem_type: int, dims: list[int | str]) -> bytes:
    shape = b"".join(_field(1, _field(2, d) if isinstance(d, str) else _field(1, d)) for d in dims)
    tensor_type = _field(1, elem_type) + _field(2, shape)
    return _field(1, name) + _field(2, _field(1, tensor_type))


def matmul_integer_model(weight_q: np.ndarray) -> bytes:
    """The ONNX ModelProto of Y = MatMulInteger(A, W, 128, w_zero) with W an initializer (so that ONNX
    Runtime packs it once): uint8 W with zero point 128, or int8 W with zero point 0; A uint8 [rows, K],
    Y int32 [rows, N] (onnx.proto field numbers)."""
    assert weight_q.dtype in (np.uint8, np.int8)
    k, n = weight_q.shape
    node = (
        b"".join(_field(1, name) for name in ("A", "W", "a_zero", "w_zero"))
        + _field(2, "Y")
        + _field(4, "MatMulInteger")
    )
    zero = np.array(OFFSET, dtype=np.uint8)
    graph = (
        _field(1, node)
        + _field(2, "integer_product")
        + _field(5, _tensor("W", weight_q))
        + _field(5, _tensor("a_zero", zero))
        + _field(5, _tensor("w_zero", zero if weight_q.dtype == np.uint8 else np.array(0, dtype=np.int8)))
        + _field(11, _value_info("A", _UINT8, ["rows", k]))
        + _field(12, _value_info("Y", _INT32, ["rows", n]))
    )
    opset = _field(1, "") + _field(2, 13)
    return _field(1, 7) + _field(2, "lnrnn") + _field(7, graph) + _field(8, opset)


class OrtProduct:
    """ONNX Runtime's exact uint8 x uint8 -> int32 product (module docstring), or uint8 x int8 with
    ``signed`` (exact only where ``OrtSignedProduct`` proves it); one intra-op thread, since format 2 runs one
    lane per core. The session is made on first use in each process, so the object can be sent to a worker
    process."""

    def __init__(
        self,
        weight: np.ndarray,
        *,
        signed: bool = False,
        threads: int = 1,
        optimization: str = "ORT_ENABLE_ALL",
    ) -> None:
        """``threads`` and ``optimization`` (a ``GraphOptimizationLevel`` name) are for the tests, which
        show that they do not change the numbers."""
        self.threads, self.optimization = threads, optimization
        if np.abs(weight).max(initial=0) > QMAX:
            raise ValueError("weights must be int8 in [-127, 127]")
        if weight.shape[0] * 255 * 255 >= 1 << 31:  # the kernels' unsigned sums must fit in int32
            raise ValueError(f"a {weight.shape[0]}-long uint8 product may overflow int32")
        w = np.asarray(weight, dtype=np.int16)
        self.weight_q = w.astype(np.int8) if signed else (w + OFFSET).astype(np.uint8)
        self.columns = weight.shape[1]
        self._session: Any = None
        self._lock = threading.Lock()
        self._session = self._open()  # fail here, not mid-archive, if ONNX Runtime refuses it

    @property
    def signed(self) -> bool:
        """Whether the graph's weights are int8 (else uint8 + 128)."""
        return bool(self.weight_q.dtype == np.int8)

    def _open(self) -> Any:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, self.optimization)
        options.log_severity_level = 3
        return ort.InferenceSession(
            matmul_integer_model(self.weight_q), options, providers=["CPUExecutionProvider"]
        )

    def __getstate__(self) -> dict[str, Any]:
        keep = ("weight_q", "columns", "threads", "optimization")
        return {name: getattr(self, name) for name in keep}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._session = None
        self._lock = threading.Lock()

    def offset_uint8(self, a_u8: np.ndarray) -> np.ndarray:
        if self._session is None:
            with self._lock:
                if self._session is None:
                    self._session = self._open()
        out: np.ndarray = self._session.run(None, {"A": a_u8})[0]
        return out

    def __call__(self, x: np.ndarray) -> np.ndarray:
        a = x + float(OFFSET)  # [1, 255]: exact
        return self.offset_uint8(a.astype(np.uint8))


def worst_case_exact(product: Callable[[np.ndarray], np.ndarray], rows: int, k: int, n: int) -> bool:
    """Whether ``product`` (uint8 activations a + 128 [rows, K] -> int32 [rows, N], its weights the probe's)
    gets the largest sums of both signs right for this row count: every activation +127 (255) against
    columns of +127 and -127 alternately, so that every pair of u8 x s8 products a saturating int16 kernel
    adds (255 * 127 * 2 = 64770) overflows in both directions, in every row and column position of the
    kernel's tiles."""
    got = product(np.full((rows, k), QMAX + OFFSET, dtype=np.uint8))
    expected = k * QMAX * _probe_signs(n) * QMAX
    return bool(got.shape == (rows, n) and np.array_equal(got, np.broadcast_to(expected, (rows, n))))


def _probe_signs(n: int) -> np.ndarray:
    return np.where(np.arange(n) % 2 == 0, 1, -1).astype(np.int64)


class SaturatingKernelError(RuntimeError):
    """ONNX Runtime's u8 x s8 kernel gets the worst-case product wrong on this CPU."""


class OrtSignedProduct(OrtProduct):
    """ONNX Runtime's uint8 x int8 -> int32 product, used only for row counts whose worst case it gets right
    (module docstring). The proof runs on a second session of the same shape and options whose weights are
    the probe's +-127 columns, once per row count and process; on the first failure every later call goes to
    the uint8 x uint8 kernel (exact everywhere)."""

    def __init__(
        self,
        weight: np.ndarray,
        *,
        threads: int = 1,
        optimization: str = "ORT_ENABLE_ALL",
        proven_rows: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7, 8, 16, 31, 32, 33),
    ) -> None:
        """Refuses (``SaturatingKernelError``) if any of ``proven_rows`` fails its proof."""
        super().__init__(weight, signed=True, threads=threads, optimization=optimization)
        self._init_checks()
        for rows in proven_rows:
            if not self._prove(rows):
                raise SaturatingKernelError(
                    f"onnxruntime's uint8 x int8 MatMulInteger saturates on this CPU ({rows} rows)"
                )

    def _init_checks(self) -> None:
        self._proven: set[int] = set()
        self._probe: OrtProduct | None = None
        self._exact: OrtProduct | None = None  # the uint8 x uint8 kernel, once a proof has failed

    def _prove(self, rows: int) -> bool:
        if self._probe is None:
            k, n = self.weight_q.shape
            probe_w = np.broadcast_to(_probe_signs(n) * QMAX, (k, n))
            # a plain product on the probe's weights: the proof itself needs no proof
            self._probe = OrtProduct(
                probe_w, signed=True, threads=self.threads, optimization=self.optimization
            )
        ok = worst_case_exact(self._probe.offset_uint8, rows, *self.weight_q.shape)
        if ok:
            self._proven.add(rows)
        return ok

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self._init_checks()

    def offset_uint8(self, a_u8: np.ndarray) -> np.ndarray:
        rows = len(a_u8)
        if self._exact is None and rows not in self._proven and not self._prove(rows):
            _log.info(
                "format 2: onnxruntime's uint8 x int8 kernel saturates at %d rows; using uint8 x uint8", rows
            )
            self._exact = OrtProduct(self.weight_q, threads=self.threads, optimization=self.optimization)
        if self._exact is not None:
            return self._exact.offset_uint8(a_u8)
        return super().offset_uint8(a_u8)


KINDS = ("fastest", "onnxruntime-u8s8", "onnxruntime", "numpy")
ENV = "LNRNN_INTEGER_PRODUCTS"  # one of KINDS; unset: fastest


def integer_product(weight: np.ndarray, kind: str = "fastest") -> Product:
    """The product with ``weight``: "onnxruntime-u8s8", "onnxruntime" (uint8 x uint8), "numpy", or "fastest"
    (the first of these that loads and, for u8 x s8, proves exact here). All give the same numbers; only the
    speed differs."""
    if kind not in KINDS:
        raise ValueError(f"{ENV} must be one of {', '.join(KINDS)}, not {kind!r}")
    if kind == "numpy":
        return NumpyProduct(weight)
    if kind == "onnxruntime":
        return OrtProduct(weight)
    if kind == "onnxruntime-u8s8":
        return OrtSignedProduct(weight)
    try:
        return OrtSignedProduct(weight)
    except SaturatingKernelError as error:
        _log.info("format 2: %s; using its uint8 x uint8 kernel", error)
    except Exception:  # noqa: BLE001 - handled below: the same refusal reaches OrtProduct
        pass
    try:
        return OrtProduct(weight)
    except Exception:  # noqa: BLE001 - no onnxruntime, or one that refuses the graph: numpy is exact too
        _log.info("format 2 computes its products with numpy (onnxruntime's integer kernel did not load)")
        return NumpyProduct(weight)
