"""The compression section: the default model next to gzip/bzip2/xz on the held-out validation splits.

The measurement is the model card's, ``lnrnn.train.recipes.compression.measure``; the benchmark reuses it.
"""

from __future__ import annotations

from lnrnn.train.recipes.compression import measure

__all__ = ["measure"]
