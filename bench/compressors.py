"""Classic compressors as bits per byte on the same bytes as the model (sizes from ``lnrnn.serve``)."""

from __future__ import annotations

from lnrnn.serve.compressors import compressed_sizes


def compressed_bits_per_byte(data: bytes) -> dict[str, float]:
    """gzip -9, bzip2 -9, xz -9e and zstd -19 (where installed), in bits per byte."""
    return {name: 8 * size / len(data) for name, size in compressed_sizes(data, with_zstd=True).items()}
