"""compress, decompress and information: one engine run each, one container format."""

from __future__ import annotations

import importlib
import math
import platform
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata

import numpy as np
import onnxruntime as ort

from lnrnn import __version__
from lnrnn.codec import container, integer, registry
from lnrnn.codec.container import Header
from lnrnn.codec.engine import DEFAULT_BLOCK_SIZE, Layout, Progress, lanes_for, no_checkpoint, run
from lnrnn.codec.errors import ChecksumMismatch, ContainerError, ModelFileError, ModelMismatch
from lnrnn.codec.model import ARCHIVE_PRECISIONS, StepGraph

# numpy's names for instruction-set levels, least capable first; onnxruntime and numpy pick their float and
# int8 kernels by them, so format 1's probabilities differ between levels (AVX2 against AVX-512 VNNI: the
# golden archives of tests/codec/golden/ no longer decode)
CPU_LEVELS = (
    "SSE42", "X86_V2", "AVX2", "X86_V3", "AVX512F", "AVX512_SKX", "AVX512_CLX", "AVX512_CNL", "AVX512_ICL",
    "AVX512_SPR", "NEON", "ASIMD", "ASIMDHP", "ASIMDDP", "SVE",
)  # fmt: skip


def cpu_kind() -> str:
    """``x86_64/AVX512_ICL``: the machine and the highest level numpy detects, ``+AMX`` where Linux reports
    AMX int8 tiles (onnxruntime's int8 kernels use them; numpy does not name them)."""
    features: dict[str, bool] = {}
    for module in ("numpy._core._multiarray_umath", "numpy.core._multiarray_umath"):  # numpy 2, numpy 1
        try:
            features = importlib.import_module(module).__cpu_features__
            break
        except (ImportError, AttributeError):
            continue
    present = [level for level in CPU_LEVELS if features.get(level)]
    kind = platform.machine() + (f"/{present[-1]}" if present else "")
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as info:
            if " amx_int8" in info.read():
                kind += "+AMX"
    except OSError:  # not Linux
        pass
    return kind


def producer() -> str:
    """The versions and the kind of CPU whose numbers the encoder's probabilities depend on."""
    try:
        coder = metadata.version("constriction")
    except metadata.PackageNotFoundError:  # pragma: no cover - installed with the serve extra
        coder = "?"
    return (
        f"lnrnn {__version__}, onnxruntime {ort.__version__}, numpy {np.__version__}, constriction {coder}, "
        f"cpu {cpu_kind()}"
    )


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
    lanes: int | None = None,
    progress: Progress | None = None,
    checkpoint: Callable[[], None] = no_checkpoint,
    version: int = 2,
) -> Compressed:
    """The container of ``data`` (any bytes, empty too) in format ``version``: 1 (float probabilities
    from the step graph, constriction) or 2 (integer probabilities derived from ``step.onnx``, rANS:
    the same archive and the same decoding on every machine; ``lnrnn.codec.integer``). ``lanes``: how
    many groups of blocks are coded side by side (None: ``lanes_for``; the header records it)."""
    if block_size < 1:
        raise ValueError(f"block size must be >= 1, got {block_size}")
    if version == 1 and graph.precision not in ARCHIVE_PRECISIONS:
        raise ModelFileError(
            f"a format-1 archive records an fp32 or int8 step graph, not {graph.precision}; compress with "
            f"--precision int8 or fp32 ({graph.precision} can score: `lnrnn score --adaptive`)"
        )
    network, graph = _format(graph, version)
    layout = _layout(len(data), block_size, lanes)
    coded = run(
        graph,
        layout,
        adaptive=adaptive,
        data=data,
        encode=True,
        progress=progress,
        checkpoint=checkpoint,
        network=network,
    )
    assert coded.payloads is not None
    header = Header(
        version=version,
        adaptive=adaptive,
        int8=graph.int8,
        lanes=layout.lanes,
        block_size=block_size,
        length=len(data),
        fingerprint=graph.fingerprint,
        content_crc=zlib.crc32(data),
        producer=integer.producer() if network is not None else producer(),
        payload_sizes=tuple(len(p) for p in coded.payloads),
    )
    return Compressed(container.pack(header, coded.payloads), header, float(coded.nats.sum()))


def _layout(length: int, block_size: int, lanes: int | None) -> Layout:
    """``compress``'s and ``information``'s layout: ``lanes`` of them, or ``lanes_for`` the input."""
    return Layout(length, block_size, lanes_for(length, block_size) if lanes is None else lanes)


def _format(graph: StepGraph, version: int) -> tuple[integer.IntegerNetwork | None, StepGraph]:
    """Format 2's integer network (and the fp32 graph it comes from), or none for format 1."""
    if version not in container.VERSIONS:
        raise ValueError(f"format version must be one of {container.VERSIONS}, got {version}")
    return integer.network_for(graph) if version == 2 else (None, graph)


def information(
    data: bytes,
    graph: StepGraph,
    *,
    adaptive: bool = True,
    block_size: int = DEFAULT_BLOCK_SIZE,
    lanes: int | None = None,
    progress: Progress | None = None,
    checkpoint: Callable[[], None] = no_checkpoint,
    version: int = 1,
) -> float:
    """-ln p(data) in nats under the model ``compress`` codes with (same blocks, same lanes, same
    format; format 1 by default, which scores with the loaded precision, int4 too): the payload of
    ``compress`` is this many bits (``lnrnn.bpc.nats_to_bits``) plus the coder's
    few bytes per block (``overhead_bound``)."""
    network, graph = _format(graph, version)
    layout = _layout(len(data), block_size, lanes)
    coded = run(
        graph,
        layout,
        adaptive=adaptive,
        data=data,
        progress=progress,
        checkpoint=checkpoint,
        network=network,
    )
    return float(coded.nats.sum())


def check_model(header: Header, graph: StepGraph) -> None:
    """``ModelMismatch`` unless ``graph`` is the step graph the container was made with; the message says
    which shipped (or once shipped) model it was, when that is known."""
    if header.fingerprint != graph.fingerprint or header.precision != graph.precision:
        raise ModelMismatch(
            f"compressed with another model: fingerprint {header.fingerprint.hex()[:16]} "
            f"({header.precision}), but {graph.file} is {graph.fingerprint.hex()[:16]}; "
            f"{registry.hint(header)}"
        )


def checksum_message(written_by: str, read_by: str) -> str:
    """The one line for decoded bytes that fail the CRC: what wrote the file and what reads it, since the
    probabilities (floats) are only reproduced by the same versions on the same kind of CPU."""
    if written_by == read_by:
        return (
            f"decoded bytes do not match the checksum (CRC-32); written and read by the same versions "
            f"({read_by}): the file is corrupted, or it was written on another kind of CPU"
        )
    return (
        f"decoded bytes do not match the checksum (CRC-32): {_sides(written_by, read_by)}: decompress with "
        "the versions that wrote it, on the same kind of CPU, or the file is corrupted"
    )


def _sides(written_by: str, read_by: str) -> str:
    """``written by ...; read by ... (differs: onnxruntime 1.20.0 -> 1.22.0)``; archives from before the
    producer named the CPU say ``cpu (not recorded) -> ...``."""
    before, after = producer_parts(written_by), producer_parts(read_by)
    changes = [f"{k} {v} -> {after.get(k, '?')}" for k, v in before.items() if v != after.get(k)]
    changes += [f"{k} (not recorded) -> {v}" for k, v in after.items() if k not in before]
    changed = ", ".join(changes)
    return f"written by {written_by}; read by {read_by}" + (f" (differs: {changed})" if changed else "")


def producer_parts(producer: str) -> dict[str, str]:
    """``"lnrnn 0.1.0, onnxruntime 1.22.0"`` -> ``{"lnrnn": "0.1.0", "onnxruntime": "1.22.0"}``."""
    return {name: version for name, _, version in (part.rpartition(" ") for part in producer.split(", "))}


def decompress(
    blob: bytes,
    graph: StepGraph | None = None,
    *,
    progress: Progress | None = None,
    checkpoint: Callable[[], None] = no_checkpoint,
) -> bytes:
    """The original bytes; ``CodecError`` (one line) for a bad container, another model or a bad CRC.
    Without ``graph`` the shipped model whose fingerprint the header names decodes it (``registry``)."""
    header, payloads = container.unpack(blob)
    if graph is None:
        graph = registry.graph_for(header)
    if header.version == 2:  # the header names the fp32 graph, whatever precision was passed
        graph = integer.source_graph(graph)
    check_model(header, graph)
    network, graph = _format(graph, header.version)
    layout = Layout(header.length, header.block_size, header.lanes)
    try:
        coded = run(
            graph,
            layout,
            adaptive=header.adaptive,
            payloads=payloads,
            progress=progress,
            checkpoint=checkpoint,
            network=network,
        )
    except ContainerError as err:  # the range decoder refused the words: other versions compute other floats
        if header.producer == producer() or network is not None:  # format 2: the same on every machine
            raise
        raise ContainerError(f"{str(err).rstrip('.')}; {_sides(header.producer, producer())}") from None
    assert coded.data is not None
    if zlib.crc32(coded.data) != header.content_crc:
        if network is not None:
            raise ChecksumMismatch(
                "decoded bytes do not match the checksum (CRC-32): the file is corrupted (format 2 decodes "
                "to the same bytes with any versions and CPU)"
            )
        raise ChecksumMismatch(checksum_message(header.producer, producer()))
    return coded.data


def overhead_bound(n_blocks: int) -> int:
    """Most bytes the range coder adds to ceil(information in bits / 8) over a container's payloads:
    its final state (up to two 32-bit words) per block; the 24-bit quantization of probabilities >= 2^-20
    adds well under one more byte per block at these block sizes (tests/codec measure it). Format 2's rANS
    adds 4 to 8 bytes per block (its 64-bit final state, ``lnrnn.codec.integer.rans``)."""
    return 8 * n_blocks + math.ceil(n_blocks / 8)
