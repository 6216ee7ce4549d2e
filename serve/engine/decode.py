"""Turning next-byte distributions into whole Unicode characters: top-k search and sampling."""

from __future__ import annotations

import heapq

import numpy as np

from lnrnn.serve.engine.runtime import Runtime
from lnrnn.serve.engine.utf8 import char_length, next_mask, next_range

MAX_EXPAND = 256  # prefixes expanded per batched T = 1 call


def probabilities(logprobs: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(logprobs / temperature) over the last axis, in float64."""
    x = logprobs.astype(np.float64)
    with np.errstate(over="ignore"):  # tiny temperatures: the rest overflow to -inf, i.e. probability 0
        x = (x - x.max(axis=-1, keepdims=True)) / temperature  # shift first: the best stays 0
    p = np.exp(x)
    p /= p.sum(axis=-1, keepdims=True)
    return p


def top_chars(
    runtime: Runtime, last: np.ndarray, state: np.ndarray, k: int, temperature: float = 1.0
) -> list[tuple[str, float]]:
    """The ``k`` most likely next characters and their joint probabilities, best first. Exact.

    A byte prefix's probability bounds every character that completes it, so any prefix no more likely
    than the k-th best complete character found so far is dropped. Surviving prefixes are expanded one
    byte level at a time (at most 3 levels, each one batched T = 1 call). Bytes that cannot start or
    continue valid UTF-8, and BOS, are never expanded: their mass stays out of the candidates.
    """
    dist = probabilities(last, temperature)
    found: list[tuple[float, bytes]] = []  # min-heap of the best complete characters

    def threshold() -> float:
        return found[0][0] if len(found) == k else 0.0

    def offer(p: float, char: bytes) -> None:
        if len(found) < k:
            heapq.heappush(found, (p, char))
        elif p > found[0][0]:
            heapq.heapreplace(found, (p, char))

    for b in np.argsort(-dist[:128], kind="stable")[:k]:
        offer(float(dist[b]), bytes([int(b)]))
    frontier = [(float(dist[b]), bytes([b]), state) for b in range(0xC2, 0xF5) if dist[b] > threshold()]
    while frontier:
        frontier.sort(key=lambda item: -item[0])
        deeper: list[tuple[float, bytes, np.ndarray]] = []
        for start in range(0, len(frontier), MAX_EXPAND):
            batch = [item for item in frontier[start : start + MAX_EXPAND] if item[0] > threshold()]
            if not batch:
                break  # sorted: the rest are below the threshold too
            tokens = np.array([prefix[-1] for _, prefix, _ in batch], dtype=np.int64)
            logprobs, states = runtime.scorer.next(tokens, np.concatenate([s for _, _, s in batch], axis=1))
            probs = probabilities(logprobs, temperature)
            for i, (p, prefix, _) in enumerate(batch):
                lo, hi = next_range(prefix[0], len(prefix))
                child = p * probs[i, lo : hi + 1]
                complete = len(prefix) + 1 == char_length(prefix[0])
                keep = np.flatnonzero(child > threshold())
                for j in keep[np.argsort(-child[keep], kind="stable")]:
                    if complete:
                        offer(float(child[j]), prefix + bytes([lo + int(j)]))
                    elif child[j] > threshold():
                        deeper.append((float(child[j]), prefix + bytes([lo + int(j)]), states[:, i : i + 1]))
        frontier = deeper
    return [(char.decode("utf-8"), p) for p, char in sorted(found, reverse=True)]


def generate(
    runtime: Runtime, prompt: bytes, max_chars: int, temperature: float, top_k: int, seed: int | None
) -> str:
    """Sample ``max_chars`` characters after ``prompt``; bytes that would break UTF-8 are masked out.

    ``top_k`` > 0 samples among the k most likely allowed next bytes. The same seed gives the same text.
    """
    rng = np.random.default_rng(seed)
    last, state = runtime.context(prompt, cache=False)  # no cache: one computation path, reproducible
    out = bytearray()
    char = b""  # bytes of the character being written
    chars = 0
    while chars < max_chars:
        mask = next_mask(char)
        logits = last.astype(np.float64)
        with np.errstate(over="ignore"):  # best allowed byte = 0, the rest may overflow to -inf
            logits = np.where(mask, (logits - logits[mask].max()) / temperature, -np.inf)
        if 0 < top_k < int(mask.sum()):
            kth = np.partition(logits, -top_k)[-top_k]
            logits[logits < kth] = -np.inf
        cdf = np.cumsum(np.exp(logits))
        b = int(np.searchsorted(cdf, rng.random() * cdf[-1], side="right"))
        out.append(b)
        char += bytes([b])
        if len(char) == char_length(char[0]):
            chars, char = chars + 1, b""
        if chars < max_chars:
            logprobs, state = runtime.scorer.next(np.array([b], dtype=np.int64), state)
            last = logprobs[0]
    return out.decode("utf-8")
