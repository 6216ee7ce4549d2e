"""The validation splits the benchmarks score: the default-model recipe's held-out bytes.

Defined once in ``lnrnn.train.recipes.corpora``; new code imports them from there.
"""

from __future__ import annotations

from lnrnn.train.recipes.corpora import VALIDATION_SPLITS, Split

__all__ = ["VALIDATION_SPLITS", "Split"]
