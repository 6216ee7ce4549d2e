"""The completion beam search (engine/complete.py) against an exhaustive search on the tiny model.

The model's byte distribution is cut to a small alphabet (every other byte gets log-prob -inf, nothing is
renormalised), so every completion up to ``max_chars`` characters can be listed and priced with the
scorer. The alphabet holds a two-byte character so that the search's UTF-8 handling is exercised.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pytest

from lnrnn.serve.engine.complete import WORD_ENDS, complete
from lnrnn.serve.engine.runtime import Runtime

ALPHABET = ["a", "b", " ", ".", "\n", "é"]
ALLOWED = sorted({b for char in ALPHABET for b in char.encode()})
CONTEXT = "héllo wor"


@pytest.fixture(scope="module")
def runtime(model_dir: Path) -> Runtime:
    return Runtime.load(model_dir, device="cpu", threads=1)


def cut(logprobs: np.ndarray) -> np.ndarray:
    out = np.full_like(logprobs, -np.inf)
    out[..., ALLOWED] = logprobs[..., ALLOWED]
    return out


def ended(text: str, until: str, max_chars: int) -> bool:
    if until == "chars":
        return len(text) == max_chars
    return text[-1].encode() in ([bytes([b]) for b in WORD_ENDS] if until == "word" else [b"\n"])


def exhaustive(runtime: Runtime, until: str, max_chars: int, n: int) -> list[tuple[str, float, bool]]:
    """Every completion over the alphabet, priced by the scorer on context + completion; the best n."""
    texts = [
        "".join(chars)
        for length in range(1, max_chars + 1)
        for chars in itertools.product(ALPHABET, repeat=length)
    ]
    # a completion: nothing before its last character ended it, and it ends or is max_chars long
    texts = [
        t
        for t in texts
        if not any(ended(t[:i], until, max_chars) for i in range(1, len(t)))
        and (ended(t, until, max_chars) or len(t) == max_chars)
    ]
    scored = runtime.scorer.score_many([(CONTEXT + t).encode() for t in texts], per_byte=True)
    priced = []
    for t, s in zip(texts, scored, strict=True):
        assert s.byte_nats is not None
        priced.append((t, -float(s.byte_nats[-len(t.encode()) :].sum()), ended(t, until, max_chars)))
    return sorted(priced, key=lambda x: (-x[1], x[0].encode()))[:n]


@pytest.mark.parametrize(
    ("until", "max_chars", "has_two_bytes"), [("word", 3, True), ("line", 3, False), ("chars", 2, True)]
)
def test_wide_beam_equals_exhaustive_search(
    runtime: Runtime, until: str, max_chars: int, has_two_bytes: bool
) -> None:
    last, state = runtime.context(CONTEXT.encode(), cache=False)

    def step(tokens: np.ndarray, state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        logprobs, state = runtime.scorer.next(tokens, state)
        return cut(logprobs), state

    want = exhaustive(runtime, until, max_chars, n=30)
    assert any("é" in t for t, _, _ in want) == has_two_bytes  # the two-byte character is in the answers
    # a beam as wide as the tree (6^2 live prefixes at most): nothing is pruned but what cannot win
    got = complete(step, cut(last), state, n=30, max_chars=max_chars, until=until, width=64)
    assert [c.text for c in got] == [t for t, _, _ in want]
    assert [c.ended for c in got] == [e for _, _, e in want]
    for c, (_, logprob, _) in zip(got, want, strict=True):
        assert c.logprob == pytest.approx(logprob, abs=1e-5)
        assert c.bits == pytest.approx(-logprob / math.log(2), abs=1e-5)
    # the default width (4 n) may miss some, but whatever it lists is priced exactly and in order
    narrow = complete(step, cut(last), state, n=3, max_chars=max_chars, until=until)
    priced = {t: lp for t, lp, _ in exhaustive(runtime, until, max_chars, n=10**6)}
    assert [c.logprob for c in narrow] == sorted((c.logprob for c in narrow), reverse=True)
    for c in narrow:
        assert c.logprob == pytest.approx(priced[c.text], abs=1e-5)


def test_whole_characters_and_cut_completions(runtime: Runtime) -> None:
    """On the full vocabulary (the random model puts half its mass on non-ASCII bytes) every completion is
    whole characters; word completions that reach max_chars unended are kept and marked."""
    last, state = runtime.context(b"caf", cache=False)
    before = state.copy()
    # more completions than ASCII characters: the rest are multi-byte characters, each one whole
    chars = complete(runtime.scorer.next, last, state, n=140, max_chars=1, until="chars", width=64)
    assert len(chars) == 140 and all(len(c.text) == 1 and c.ended for c in chars)
    assert sum(len(c.text.encode()) > 1 for c in chars) >= 140 - 128
    words = complete(runtime.scorer.next, last, state, n=10, max_chars=1, until="word")
    for c in words:
        assert len(c.text) == 1 and c.ended == (c.text.encode() in [bytes([b]) for b in WORD_ENDS])
    assert not all(c.ended for c in words)
    assert np.array_equal(state, before)  # the caller's state is not touched


def test_deterministic_and_tie_broken_by_byte_order() -> None:
    """A model with every byte equally likely: all completions tie, so byte order alone ranks them."""

    def flat(tokens: np.ndarray, state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return np.full((len(tokens), 257), -math.log(257)), state

    state = np.zeros((1, 1, 1), dtype=np.float32)
    got = complete(flat, np.full(257, -math.log(257)), state, n=5, max_chars=2, until="chars")
    assert [c.text for c in got] == ["\x00\x00", "\x00\x01", "\x00\x02", "\x00\x03", "\x00\x04"]
    assert got == complete(flat, np.full(257, -math.log(257)), state, n=5, max_chars=2, until="chars")


@pytest.mark.parametrize(("n", "max_chars", "until"), [(0, 4, "word"), (3, 0, "word"), (3, 4, "sentence")])
def test_bad_arguments(runtime: Runtime, n: int, max_chars: int, until: str) -> None:
    with pytest.raises(ValueError, match="must be"):
        complete(
            runtime.scorer.next, np.zeros(257), runtime.initial_state, n=n, max_chars=max_chars, until=until
        )
