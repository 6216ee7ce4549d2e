"""Test corpora: seeded order-2 Markov bytes with a known entropy rate, the shared data, JSONL reading."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[2]
SHARED_DATA = REPO.parent / "shared" / "data"  # tests marked `data` read it; CI puts it beside the repo
ALPHABET = b"acgtACGT"


def markov_source(k: int = 4, seed: int = 0, concentration: float = 0.5) -> np.ndarray:
    """A seeded order-2 transition table P[a, b, c] = p(c | a, b) over k symbols."""
    rng = np.random.default_rng(seed)
    return rng.dirichlet(np.full(k, concentration), size=(k, k))


def markov_entropy_rate(table: np.ndarray) -> float:
    """Exact entropy rate in bits: stationary distribution over pairs x conditional entropies."""
    k = table.shape[0]
    trans = np.zeros((k * k, k * k))  # pair (a, b) -> pair (b, c)
    for a in range(k):
        for b in range(k):
            for c in range(k):
                trans[a * k + b, b * k + c] = table[a, b, c]
    pi = np.full(k * k, 1.0 / (k * k))
    for _ in range(10_000):
        nxt = pi @ trans
        if np.abs(nxt - pi).max() < 1e-15:
            break
        pi = nxt
    cond = -(table * np.log2(np.where(table > 0, table, 1.0))).sum(-1).reshape(-1)
    return float(pi @ cond)


def markov_bytes(table: np.ndarray, n: int, seed: int = 1) -> bytes:
    rng = np.random.default_rng(seed)
    k = table.shape[0]
    cum = table.cumsum(-1)
    out = np.empty(n, dtype=np.int64)
    out[0], out[1] = rng.integers(k), rng.integers(k)
    u = rng.random(n)
    for t in range(2, n):
        out[t] = min(int(np.searchsorted(cum[out[t - 2], out[t - 1]], u[t])), k - 1)
    return bytes(np.frombuffer(ALPHABET, dtype=np.uint8)[out].tobytes())


def write_corpus(path: Path, n: int = 40_000, seed: int = 0) -> Path:
    path.write_bytes(markov_bytes(markov_source(seed=seed), n, seed=seed + 1))
    return path


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def isclose(a: float, b: float, tol: float) -> bool:
    return math.isfinite(a) and abs(a - b) <= tol
