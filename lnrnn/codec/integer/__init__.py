"""Format 2: next-byte frequencies that are a function of integers only, coded with our own rANS.

Format 1 computes probabilities in floating point with ONNX Runtime, so an archive made with one
onnxruntime version or CPU kind may not decode with another (measured: onnxruntime 1.32 vs 1.20.1, and
x86-64 vs aarch64, differ at every step). Format 2 builds an integer version of the same network from the
fp32 weights of ``step.onnx`` (``network.py``: int8 weights and activations with exact matrix products,
layer norm from integer statistics, sigmoid/tanh/exp tables from ``tables.py``), turns its logits into
integer frequencies, and codes them with interleaved rANS (``rans.py``); ``mixer.py`` is the integer
counterpart of format 1's adaptive mixing. Nothing here imports ONNX Runtime or constriction: the weights are
read from the ONNX file by ``onnxfile.py``.
"""

from __future__ import annotations

import hashlib
import os
import threading
from typing import TYPE_CHECKING, Any

from lnrnn import __version__
from lnrnn.codec.errors import ModelFileError
from lnrnn.codec.integer.network import IntegerNetwork
from lnrnn.codec.integer.onnxfile import OnnxFormatError, read_graph
from lnrnn.codec.integer.products import ENV, KINDS, SaturatingKernelError
from lnrnn.codec.integer.weights import gru_weights

if TYPE_CHECKING:
    from lnrnn.codec.model import StepGraph

FORMAT = 2
_cache: dict[tuple[bytes, str], IntegerNetwork] = {}
_lock = threading.Lock()


def producer() -> str:
    """What a format 2 header records as the encoder: only lnrnn's version decides its numbers (naming
    numpy's would make the same archive differ between numpy versions)."""
    return f"lnrnn {__version__}, integer format {FORMAT}"


class _BlasLimit:
    """BLAS limited to one thread until ``restore``; a no-op without threadpoolctl."""

    def __init__(self) -> None:
        self._limits: Any = None
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:  # pragma: no cover - installed with the serve extra
            return
        self._limits = threadpool_limits(limits=1, user_api="blas")

    def restore(self) -> None:
        if self._limits is not None:
            self._limits.restore_original_limits()


def one_blas_thread() -> _BlasLimit:
    """Format 2 runs one lane per core, each calling BLAS: a multi-threaded BLAS on top of that contends for
    the same cores (measured: 36 ms instead of ~1 ms per step with two lanes and OpenBLAS's two threads).
    The products are exact integers, so the thread count changes the speed only."""
    return _BlasLimit()


def source_graph(graph: StepGraph) -> StepGraph:
    """The fp32 step graph format 2 derives its integers from (and whose fingerprint its header records):
    ``graph`` itself, or its model directory's ``step.onnx`` when ``graph`` is int8 or int4."""
    if graph.precision == "fp32":
        return graph
    from lnrnn.codec.model import StepGraph

    return StepGraph.load(graph.model_dir, "fp32")


def network_for(graph: StepGraph) -> tuple[IntegerNetwork, StepGraph]:
    """The integer network of ``graph``'s model and its ``source_graph``; built once per process and
    fingerprint."""
    graph = source_graph(graph)
    products = os.environ.get(ENV, "fastest")
    if products not in KINDS:
        raise ModelFileError(f"{ENV} must be one of {', '.join(KINDS)}, not {products!r}")
    with _lock:
        network = _cache.get((graph.fingerprint, products))
        if network is None:
            data = graph.file.read_bytes()
            if hashlib.sha256(data).digest()[: len(graph.fingerprint)] != graph.fingerprint:
                raise ModelFileError(f"{graph.file} changed on disk since it was loaded")
            try:
                parsed = read_graph(data)
            except OnnxFormatError as err:
                raise ModelFileError(f"cannot read {graph.file}: {err}") from None
            weights = gru_weights(parsed, graph.meta.config, graph.meta.initial_state)
            try:
                network = IntegerNetwork(weights, products)
            except SaturatingKernelError as err:
                raise ModelFileError(f"{ENV}={products}: {err}; use onnxruntime or leave it unset") from None
            _cache[(graph.fingerprint, products)] = network
    return network, graph


__all__ = ["FORMAT", "IntegerNetwork", "network_for", "one_blas_thread", "producer"]
