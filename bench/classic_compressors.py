"""The classic compressors the compress benchmark measures in the same run, each at its strongest setting.

gzip -9, bzip2 -9 and xz -9e (extreme) through Python's bindings; zstd at level 22 (``--ultra -22``) and
brotli at quality 11 through their PyPI bindings; PPMd variant H (7-Zip's Ppmd7) order 6 with 256 MB
through ``pyppmd``, fed 4 KiB per ``encode`` call (measured on this machine: one large call of
variant I lost a byte in pyppmd 1.3.1). Every one is decompressed and compared, and timed both ways.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import time
from collections.abc import Callable
from typing import Any

import brotli
import pyppmd
import zstandard

from lnrnn.compressors import STANDARD_LIBRARY

PPMD_ORDER = 6
PPMD_MEMORY = 256 << 20
FEED = 4096


def _ppmd_compress(data: bytes) -> bytes:
    encoder = pyppmd.Ppmd7Encoder(PPMD_ORDER, PPMD_MEMORY)
    out = bytearray()
    for start in range(0, len(data), FEED):
        out += encoder.encode(data[start : start + FEED])
    return bytes(out + encoder.flush(endmark=True))


def _ppmd_decompress(blob: bytes, length: int) -> bytes:
    decoder = pyppmd.Ppmd7Decoder(PPMD_ORDER, PPMD_MEMORY)
    return decoder.decode(blob, length)


Codec = tuple[Callable[[bytes], bytes], Callable[[bytes, int], bytes]]
CLASSIC: dict[str, Codec] = {
    # the settings `lnrnn score` compares against, decompressed by the same modules
    "gzip -9": (STANDARD_LIBRARY["gzip -9"], lambda b, n: gzip.decompress(b)),
    "bzip2 -9": (STANDARD_LIBRARY["bzip2 -9"], lambda b, n: bz2.decompress(b)),
    "xz -9e": (STANDARD_LIBRARY["xz -9e"], lambda b, n: lzma.decompress(b)),
    "zstd -22": (
        lambda d: zstandard.ZstdCompressor(level=22).compress(d),
        lambda b, n: zstandard.ZstdDecompressor().decompress(b),
    ),
    "brotli -q11": (lambda d: brotli.compress(d, quality=11), lambda b, n: brotli.decompress(b)),
    "PPMd o6": (_ppmd_compress, _ppmd_decompress),
}


def measure(data: bytes) -> dict[str, dict[str, Any]]:
    """Per compressor: bits per byte (whole output) and kB/s both ways; raises if a round trip differs."""
    out = {}
    for name, (pack, unpack) in CLASSIC.items():
        start = time.perf_counter()
        blob = pack(data)
        middle = time.perf_counter()
        restored = unpack(blob, len(data))
        end = time.perf_counter()
        if restored != data:
            raise RuntimeError(f"{name} did not restore the input")
        out[name] = {
            "bytes": len(blob),
            "bits_per_byte": 8 * len(blob) / len(data),
            "compress_kb_s": len(data) / max(middle - start, 1e-9) / 1000,
            "decompress_kb_s": len(data) / max(end - middle, 1e-9) / 1000,
        }
    return out
