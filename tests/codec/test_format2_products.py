"""Format 2's matrix products: ONNX Runtime's uint8 x int8 kernel (where its worst case proves exact),
its uint8 x uint8 kernel and numpy's float32 BLAS give the same int32 numbers (exact integer sums) on random
and extreme operands, whatever ONNX Runtime's thread count or graph optimisation level; the proof rejects a
kernel that saturates like AVX2's ``vpmaddubsw``, and the codec then uses the uint8 x uint8 kernel; whole
archives are byte-identical with every kernel, with the golden archives too; when ONNX Runtime refuses the
graph the codec falls back to numpy, which computes the same numbers."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from lnrnn.codec import StepGraph, compress, decompress, unpack
from lnrnn.codec.errors import ModelFileError
from lnrnn.codec.integer import network_for
from lnrnn.codec.integer import products as products_module
from lnrnn.codec.integer.products import (
    NumpyProduct,
    OrtProduct,
    OrtSignedProduct,
    SaturatingKernelError,
    integer_product,
    worst_case_exact,
)
from tests.helpers import REPO

GOLDEN = Path(__file__).parent / "golden" / "format2"
LEVELS = ("ORT_DISABLE_ALL", "ORT_ENABLE_BASIC", "ORT_ENABLE_EXTENDED", "ORT_ENABLE_ALL")
CLASS_OF = {"onnxruntime-u8s8": "OrtSignedProduct", "onnxruntime": "OrtProduct", "numpy": "NumpyProduct"}


def signed_kernel_proves_exact() -> bool:
    """Whether this CPU's ONNX Runtime u8 x s8 kernel passes the worst-case proof (VNNI, AMX, ARM dot
    products: yes; plain AVX2: no)."""
    try:
        OrtSignedProduct(np.ones((64, 48)))
    except SaturatingKernelError:
        return False
    return True


def saturating_product(weight: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """AVX2's u8 x s8 kernel without VNNI, in numpy: adjacent pairs of u8 x s8 products are added in a
    saturating int16 (``vpmaddubsw``), then summed in int32; zero points 128 and 0."""

    def run(a_u8: np.ndarray) -> np.ndarray:
        a = a_u8.astype(np.int64)
        w = weight.astype(np.int64)
        k = a.shape[1] - a.shape[1] % 2
        pairs = a[:, 0:k:2, None] * w[None, 0:k:2] + a[:, 1:k:2, None] * w[None, 1:k:2]
        total = np.clip(pairs, -32768, 32767).sum(axis=1)
        if k < a.shape[1]:
            total += a[:, -1, None] * w[-1]
        return (total - 128 * w.sum(axis=0)).astype(np.int32)

    return run


def operands(k: int, n: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(activations [B, K] int8-valued float32, weights [K, N] int8-valued) pairs: random, the largest
    possible sums of either sign, and mixed extremes."""
    rng = np.random.default_rng(7)
    w = rng.integers(-127, 128, (k, n)).astype(np.float64)
    pairs = [(rng.integers(-127, 128, (rows, k)).astype(np.float32), w) for rows in (1, 2, 31, 64)]
    full = np.full((k, n), 127.0)
    pairs.append((np.full((3, k), 127, np.float32), full))  # + K * 127^2
    pairs.append((np.full((3, k), -127, np.float32), full))  # - K * 127^2
    signs = rng.choice([-127.0, 127.0], (k, n))
    pairs.append((rng.choice([-127, 127], (5, k)).astype(np.float32), signs))
    return pairs


def test_onnxruntime_and_numpy_products_are_the_exact_integer_product() -> None:
    k, n = 448, 1600  # the default model's layer 1: [next input | own recurrent] = 256 + 1344 columns
    largest = 0
    for x, w in operands(k, n):
        exact = x.astype(np.int64) @ w.astype(np.int64)
        largest = max(largest, int(np.abs(exact).max()))
        assert np.array_equal(NumpyProduct(w)(x), exact)
        kernels = (OrtProduct, OrtSignedProduct) if signed_kernel_proves_exact() else (OrtProduct,)
        for kernel in kernels:
            for threads in (1, 2, 4):
                for level in LEVELS:
                    got = kernel(w, threads=threads, optimization=level)(x)
                    assert got.dtype == np.int32 and np.array_equal(got, exact), (kernel, threads, level)
    assert largest == k * 127 * 127  # the extremes were reached


def test_the_proof_rejects_a_saturating_kernel_and_accepts_an_exact_one() -> None:
    k, n = 448, 1600
    probe = np.broadcast_to(np.where(np.arange(n) % 2 == 0, 127, -127), (k, n))
    exact = lambda a: ((a.astype(np.int64) - 128) @ probe).astype(np.int32)  # noqa: E731
    for rows in (1, 2, 7, 32):
        assert worst_case_exact(exact, rows, k, n)
        assert not worst_case_exact(saturating_product(probe), rows, k, n)
    # such a kernel is wrong on ordinary activations too (the offset puts every u8 near 128, so pairs with
    # two large weights of one sign overflow): archives would differ, not just in rare corners
    rng = np.random.default_rng(5)
    w = rng.integers(-127, 128, (k, n))
    a = (np.clip(rng.normal(0, 20, (4, k)), -127, 127).round() + 128).astype(np.uint8)
    wrong = saturating_product(w)(a) != (a.astype(np.int64) - 128) @ w
    assert wrong.mean() > 0.3  # 62% of the sums here


def test_a_failed_proof_sends_the_products_to_the_unsigned_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(2)
    w = rng.integers(-127, 128, (64, 48)).astype(np.float64)
    x = rng.integers(-127, 128, (5, 64)).astype(np.float32)
    exact = x.astype(np.int64) @ w.astype(np.int64)
    product = OrtSignedProduct(w, proven_rows=(1,))
    monkeypatch.setattr(products_module, "worst_case_exact", lambda *args: False)
    assert np.array_equal(product(x), exact)  # 5 rows: not proven, the proof fails, uint8 x uint8 takes over
    assert isinstance(product._exact, OrtProduct) and not product._exact.signed
    assert np.array_equal(product(x[:1]), exact[:1])  # for good, even for the proven row count
    with pytest.raises(SaturatingKernelError, match="saturates on this CPU"):
        OrtSignedProduct(w)
    assert type(integer_product(w)) is OrtProduct  # "fastest" falls back one kernel, exact everywhere
    with pytest.raises(SaturatingKernelError):
        integer_product(w, "onnxruntime-u8s8")  # asked for explicitly: no silent fallback


def test_a_product_too_long_for_float32_uses_float64_and_stays_exact() -> None:
    k = 1100  # 1100 * 127^2 > 2^24
    x, w = np.full((2, k), 127, np.float32), np.full((k, 3), -127.0)
    product = NumpyProduct(w)
    assert product.weight.dtype == np.float64
    assert np.array_equal(product(x), np.full((2, 3), -k * 127 * 127))


def test_an_onnxruntime_product_survives_pickling_for_worker_processes() -> None:
    rng = np.random.default_rng(1)
    w = rng.integers(-127, 128, (64, 48)).astype(np.float64)
    x = rng.integers(-127, 128, (4, 64)).astype(np.float32)
    for product in (OrtProduct(w), OrtSignedProduct(w) if signed_kernel_proves_exact() else OrtProduct(w)):
        copy = pickle.loads(pickle.dumps(product))
        assert np.array_equal(copy(x), product(x))
        assert np.array_equal(copy(x), x.astype(np.int64) @ w.astype(np.int64))


def test_unknown_product_kind_is_refused_in_one_line(
    monkeypatch: pytest.MonkeyPatch, graph: StepGraph
) -> None:
    with pytest.raises(ValueError, match="LNRNN_INTEGER_PRODUCTS must be one of"):
        integer_product(np.zeros((4, 4)), "blas")
    monkeypatch.setenv("LNRNN_INTEGER_PRODUCTS", "gpu")
    with pytest.raises(ModelFileError, match="not 'gpu'"):
        network_for(graph)


def test_archives_are_the_same_with_either_kernel(monkeypatch: pytest.MonkeyPatch, graph: StepGraph) -> None:
    data = b"The integer products decide every frequency. " * 20
    blobs = {}
    kinds = [*(["onnxruntime-u8s8"] if signed_kernel_proves_exact() else []), "onnxruntime", "numpy"]
    for kind in kinds:
        monkeypatch.setenv("LNRNN_INTEGER_PRODUCTS", kind)
        network, _ = network_for(graph)
        assert network.products == CLASS_OF[kind]
        for adaptive in (False, True):
            blobs[kind, adaptive] = compress(data, graph, adaptive=adaptive, block_size=97, version=2).blob
    for kind in kinds:
        for adaptive in (False, True):
            assert blobs[kind, adaptive] == blobs["numpy", adaptive]
    monkeypatch.setenv("LNRNN_INTEGER_PRODUCTS", "numpy")
    assert decompress(blobs["onnxruntime", True], graph) == data


def test_when_onnxruntime_refuses_the_graph_the_products_come_from_numpy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import onnxruntime

    def refuse(*args: object, **kwargs: object) -> None:
        raise RuntimeError("no MatMulInteger kernel here")

    rng = np.random.default_rng(3)
    w = rng.integers(-127, 128, (32, 8)).astype(np.float64)
    x = rng.integers(-127, 128, (2, 32)).astype(np.float32)
    expected = integer_product(w)(x)
    monkeypatch.setattr(onnxruntime, "InferenceSession", refuse)
    fallback = integer_product(w)
    assert isinstance(fallback, NumpyProduct) and np.array_equal(fallback(x), expected)
    with pytest.raises(RuntimeError, match="no MatMulInteger"):
        integer_product(w, "onnxruntime")  # asked for explicitly: no silent fallback


@pytest.mark.parametrize("kind", ["onnxruntime-u8s8", "onnxruntime", "numpy"])
def test_golden_archives_are_remade_with_either_kernel(kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    model = REPO / "models" / "default"
    if not (model / "step.onnx").is_file():
        pytest.skip("models/default has no step.onnx")
    monkeypatch.setenv("LNRNN_INTEGER_PRODUCTS", kind)
    graph = StepGraph.load(model, "fp32")
    if kind == "onnxruntime-u8s8" and not signed_kernel_proves_exact():
        with pytest.raises(ModelFileError, match="saturates on this CPU"):
            network_for(graph)  # a one-line refusal on a CPU whose u8 x s8 kernel saturates
        return
    text = (GOLDEN / "lighthouse.txt").read_bytes()
    for name, adaptive in (("neural", False), ("adaptive", True)):
        golden = (GOLDEN / f"lighthouse.{name}.lnrz").read_bytes()
        again = compress(text, graph, adaptive=adaptive, block_size=400, lanes=2, version=2).blob
        assert unpack(again)[1] == unpack(golden)[1]
