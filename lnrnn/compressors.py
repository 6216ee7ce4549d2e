"""Classic compressors on the same bytes as the model: the baselines users compare BPC against.

gzip -9, bzip2 -9 and xz -9e through Python's own bindings at those settings; zstd -19 where the ``zstd``
command is installed. Used by ``lnrnn score`` and by the benchmarks.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import shutil
import subprocess
from collections.abc import Callable

STANDARD_LIBRARY: dict[str, Callable[[bytes], bytes]] = {
    "gzip -9": lambda data: gzip.compress(data, compresslevel=9, mtime=0),
    "bzip2 -9": lambda data: bz2.compress(data, compresslevel=9),
    "xz -9e": lambda data: lzma.compress(data, preset=9 | lzma.PRESET_EXTREME),
}


def compressed_sizes(data: bytes, *, with_zstd: bool = False) -> dict[str, int]:
    """Compressed size in bytes per compressor."""
    sizes = {name: len(compress(data)) for name, compress in STANDARD_LIBRARY.items()}
    if with_zstd and shutil.which("zstd"):
        zstd = subprocess.run(["zstd", "-19", "-q", "-c"], input=data, capture_output=True, check=True)
        sizes["zstd -19"] = len(zstd.stdout)
    return sizes
