"""compress, decompress and information: one engine run each, one container format."""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata

import numpy as np
import onnxruntime as ort

from lnrnn import __version__
from lnrnn.codec import container
from lnrnn.codec.container import Header
from lnrnn.codec.engine import DEFAULT_BLOCK_SIZE, DEFAULT_LANES, Layout, Progress, no_checkpoint, run
from lnrnn.codec.errors import ChecksumMismatch, ModelMismatch
from lnrnn.codec.model import StepGraph


def producer() -> str:
    """The versions whose numbers the encoder's probabilities depend on."""
    try:
        coder = metadata.version("constriction")
    except metadata.PackageNotFoundError:  # pragma: no cover - installed with the serve extra
        coder = "?"
    return f"lnrnn {__version__}, onnxruntime {ort.__version__}, numpy {np.__version__}, constriction {coder}"


@dataclass(frozen=True)
class Compressed:
    blob: bytes
    header: Header
    nats: float  # information content of the input under the coder's model (sum over blocks)

    @property
    def payload_bytes(self) -> int:
        return sum(self.header.payload_sizes)


def compress(
    data: bytes,
    graph: StepGraph,
    *,
    adaptive: bool = True,
    block_size: int = DEFAULT_BLOCK_SIZE,
    lanes: int = DEFAULT_LANES,
    progress: Progress | None = None,
    checkpoint: Callable[[], None] = no_checkpoint,
) -> Compressed:
    """The container of ``data`` (any bytes, empty too)."""
    if block_size < 1:
        raise ValueError(f"block size must be >= 1, got {block_size}")
    layout = Layout(len(data), block_size, lanes)
    coded = run(
        graph, layout, adaptive=adaptive, data=data, encode=True, progress=progress, checkpoint=checkpoint
    )
    assert coded.payloads is not None
    header = Header(
        adaptive=adaptive,
        int8=graph.int8,
        lanes=lanes,
        block_size=block_size,
        length=len(data),
        fingerprint=graph.fingerprint,
        content_crc=zlib.crc32(data),
        producer=producer(),
        payload_sizes=tuple(len(p) for p in coded.payloads),
    )
    return Compressed(container.pack(header, coded.payloads), header, float(coded.nats.sum()))


def information(
    data: bytes,
    graph: StepGraph,
    *,
    adaptive: bool = True,
    block_size: int = DEFAULT_BLOCK_SIZE,
    lanes: int = DEFAULT_LANES,
    progress: Progress | None = None,
    checkpoint: Callable[[], None] = no_checkpoint,
) -> float:
    """-ln p(data) in nats under the model ``compress`` codes with (same blocks, same lanes): the
    payload of ``compress`` is this many bits (``lnrnn.bpc.nats_to_bits``) plus the range coder's few
    bytes per block (``overhead_bound``)."""
    layout = Layout(len(data), block_size, lanes)
    coded = run(graph, layout, adaptive=adaptive, data=data, progress=progress, checkpoint=checkpoint)
    return float(coded.nats.sum())


def check_model(header: Header, graph: StepGraph) -> None:
    """``ModelMismatch`` unless ``graph`` is the step graph the container was made with."""
    if header.fingerprint != graph.fingerprint or header.precision != graph.precision:
        raise ModelMismatch(
            f"compressed with another model: fingerprint {header.fingerprint.hex()[:16]} "
            f"({header.precision}), but {graph.file} is {graph.fingerprint.hex()[:16]}; decompress with "
            "the model directory that compressed it (--model)"
        )


def decompress(
    blob: bytes,
    graph: StepGraph,
    *,
    progress: Progress | None = None,
    checkpoint: Callable[[], None] = no_checkpoint,
) -> bytes:
    """The original bytes; ``CodecError`` (one line) for a bad container, another model or a bad CRC."""
    header, payloads = container.unpack(blob)
    check_model(header, graph)
    layout = Layout(header.length, header.block_size, header.lanes)
    coded = run(
        graph, layout, adaptive=header.adaptive, payloads=payloads, progress=progress, checkpoint=checkpoint
    )
    assert coded.data is not None
    if zlib.crc32(coded.data) != header.content_crc:
        raise ChecksumMismatch(
            "decoded data does not match the checksum: the model/onnxruntime/CPU differs from the "
            f"encoder's ({header.producer}) or the file is corrupted"
        )
    return coded.data


def overhead_bound(n_blocks: int) -> int:
    """Most bytes the range coder adds to ceil(information in bits / 8) over a container's payloads:
    its final state (up to two 32-bit words) per block; the 24-bit quantization of probabilities >= 2^-20
    adds well under one more byte per block at these block sizes (tests/codec measure it)."""
    return 8 * n_blocks + math.ceil(n_blocks / 8)
