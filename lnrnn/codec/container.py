"""The compressed file format (little-endian), written by ``lnrnn compress``, read by ``lnrnn decompress``.

====== ==== ===============================================================================================
offset size field
====== ==== ===============================================================================================
0      4    magic ``b"LNRZ"``
4      1    format version: fixes the block layout, the adaptive model and the coder's settings. 1: float
            probabilities from the step graph (ONNX Runtime) and constriction's range coder; 2: integer
            probabilities (lnrnn.codec.integer, derived from ``step.onnx``) and rANS, the same on any machine
5      1    flags: bit 0 adaptive mixing on, bit 1 the int8 step graph (else fp32; always 0 in version 2,
            whose integer network is built from the fp32 ``step.onnx``); other bits 0
6      1    lanes: the blocks are split in this many contiguous groups, each coded in lockstep (engine.py)
7      1    P: length of the producer string
8      4    block size in bytes (every block but the last is this long)
12     8    original length in bytes; n = ceil(length / block size) blocks
20     16   model fingerprint: the first 16 bytes of the SHA-256 of the step graph file (its lnrnn metadata
            is inside the file)
36     4    CRC-32 of the original bytes
40     P    producer (UTF-8): the versions that encoded it (lnrnn, onnxruntime, numpy, constriction), named
            in the error when the decoded bytes do not match the CRC
40+P   4n   payload size in bytes of each block, in block order (a multiple of 4: 32-bit words)
40+P+4n 4   CRC-32 of every byte above (header and block table)
44+P+4n     the payloads, one per block, in block order: the coder's 32-bit words, little-endian (version
            2: lnrnn.codec.integer.rans)
====== ==== ===============================================================================================

"Container overhead" = everything but the payloads: 44 + P + 4n bytes.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

from lnrnn import __version__
from lnrnn.codec.errors import ContainerError

MAGIC = b"LNRZ"
VERSION = 2  # the newest format version this lnrnn reads and writes
VERSIONS = (1, 2)
FLAG_ADAPTIVE = 1
FLAG_INT8 = 2
KNOWN_FLAGS = FLAG_ADAPTIVE | FLAG_INT8
MAX_LANES = 64
FINGERPRINT_BYTES = 16
_FIXED = struct.Struct("<4sBBBBIQ16sI")  # magic .. content CRC: 40 bytes
_WORD = struct.Struct("<I")


@dataclass(frozen=True)
class Header:
    """Everything before the payloads."""

    adaptive: bool
    int8: bool
    lanes: int
    block_size: int
    length: int
    fingerprint: bytes
    content_crc: int
    producer: str
    payload_sizes: tuple[int, ...]
    version: int = 1

    @property
    def n_blocks(self) -> int:
        return blocks_for(self.length, self.block_size)

    @property
    def precision(self) -> str:
        return "int8" if self.int8 else "fp32"

    @property
    def overhead(self) -> int:
        """Container bytes that are not payload."""
        return _FIXED.size + len(self.producer.encode("utf-8")) + 4 * len(self.payload_sizes) + 4


def blocks_for(length: int, block_size: int) -> int:
    return -(-length // block_size)


def pack(header: Header, payloads: list[bytes]) -> bytes:
    """The whole container: header, block table, header CRC, payloads."""
    producer = header.producer.encode("utf-8")
    if len(producer) > 255:
        raise ValueError("producer string longer than 255 bytes")
    if [len(p) for p in payloads] != list(header.payload_sizes) or len(payloads) != header.n_blocks:
        raise ValueError("payload sizes do not match the header")
    flags = (FLAG_ADAPTIVE if header.adaptive else 0) | (FLAG_INT8 if header.int8 else 0)
    if header.version not in VERSIONS:
        raise ValueError(f"format version {header.version} is not one of {VERSIONS}")
    fixed = _FIXED.pack(
        MAGIC,
        header.version,
        flags,
        header.lanes,
        len(producer),
        header.block_size,
        header.length,
        header.fingerprint,
        header.content_crc,
    )
    table = b"".join(_WORD.pack(size) for size in header.payload_sizes)
    head = fixed + producer + table
    return head + _WORD.pack(zlib.crc32(head)) + b"".join(payloads)


def unpack(blob: bytes) -> tuple[Header, list[bytes]]:
    """Parse and check a container; ``ContainerError`` (one line) for anything malformed."""
    if len(blob) < _FIXED.size:
        if not MAGIC.startswith(blob[:4]) or not blob:
            raise ContainerError("not an lnrnn compressed file (no LNRZ header)")
        raise ContainerError(f"truncated: {len(blob)} bytes, shorter than the {_FIXED.size}-byte header")
    magic, version, flags, lanes, n_producer, block_size, length, fingerprint, crc = _FIXED.unpack_from(blob)
    if magic != MAGIC:
        raise ContainerError("not an lnrnn compressed file (no LNRZ header)")
    if version not in VERSIONS:
        # another format may lay its header out otherwise, so its CRC cannot be checked here: a version
        # above ours is taken for a newer lnrnn's file
        why = (
            "it was written by a newer lnrnn: upgrade lnrnn to decompress it"
            if version > VERSION
            else "the file is corrupted or was not written by lnrnn"
        )
        raise ContainerError(
            f"format version {version} is not supported (this lnrnn {__version__} reads format versions up "
            f"to {VERSION}): {why}"
        )
    start = _FIXED.size
    if block_size < 1 or flags & ~KNOWN_FLAGS or not 1 <= lanes <= MAX_LANES:
        _check_crc(blob, start + n_producer, length, block_size)  # a flipped bit is corruption
        raise ContainerError("corrupted header (impossible block size, flags or lanes)")
    n_blocks = blocks_for(length, block_size)
    table_end = start + n_producer + 4 * n_blocks
    _check_crc(blob, start + n_producer, length, block_size)
    try:
        producer = blob[start : start + n_producer].decode("utf-8")
    except UnicodeDecodeError:
        raise ContainerError("corrupted header (producer is not UTF-8)") from None
    sizes = tuple(_WORD.unpack_from(blob, start + n_producer + 4 * i)[0] for i in range(n_blocks))
    body = table_end + 4
    if any(size % 4 for size in sizes):
        raise ContainerError("corrupted block table (a payload size is not a whole number of words)")
    if body + sum(sizes) != len(blob):
        missing = body + sum(sizes) - len(blob)
        what = f"truncated: {missing} bytes missing" if missing > 0 else f"{-missing} bytes of trailing data"
        raise ContainerError(f"{what} (the block table accounts for {body + sum(sizes)} bytes)")
    payloads, at = [], body
    for size in sizes:
        payloads.append(blob[at : at + size])
        at += size
    header = Header(
        adaptive=bool(flags & FLAG_ADAPTIVE),
        int8=bool(flags & FLAG_INT8),
        lanes=lanes,
        block_size=block_size,
        length=length,
        fingerprint=fingerprint,
        content_crc=crc,
        producer=producer,
        payload_sizes=sizes,
        version=version,
    )
    return header, payloads


def _check_crc(blob: bytes, table_start: int, length: int, block_size: int) -> None:
    """The header CRC follows the block table; a truncated table or a flipped header bit fails here."""
    n_blocks = blocks_for(length, block_size) if block_size >= 1 else 0
    table_end = table_start + 4 * n_blocks
    if n_blocks > len(blob) // 4 or table_end + 4 > len(blob):
        raise ContainerError(
            f"truncated or corrupted header: it announces {n_blocks} blocks in a {len(blob)}-byte file"
        )
    if zlib.crc32(blob[:table_end]) != _WORD.unpack_from(blob, table_end)[0]:
        raise ContainerError("corrupted header or block table (its CRC-32 does not match)")
