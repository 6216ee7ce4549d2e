"""An answer is a function of its request only: the same per-byte log-probs (within 1e-4 nats) whatever the
chunk size, whether a text is scored alone or inside a ``texts`` batch, and whatever the prefix cache holds,
in fp32 and in int8 (whose activations are quantized row by row)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from lnrnn.serve.app import create_app
from lnrnn.serve.engine.runtime import Runtime
from tests.helpers import TestClient, settings_for

TOLERANCE = 1e-4  # nats per byte
TEXTS = [
    ("Now is the winter of our discontent / made glorious summer by this sun of York. " * 6).encode(),
    ("Größe, naïve café — 日本語のテキスト, and emoji 🙂 too. " * 8).encode(),
    bytes(range(256)) * 2,  # every byte value, invalid UTF-8 included
]


@pytest.fixture(scope="module", params=["fp32", "int8"])
def loaded(request: pytest.FixtureRequest, model_dir: Path, int8_dir: Path) -> Iterator[tuple[Path, str]]:
    yield (model_dir if request.param == "fp32" else int8_dir), request.param


def byte_nats(runtime: Runtime, data: bytes) -> np.ndarray:
    scored = runtime.score(data, per_byte=True)
    assert scored.byte_nats is not None
    return scored.byte_nats


@pytest.mark.parametrize("chunk", [2, 3, 17, 512, 4096])
def test_chunk_size_does_not_change_the_numbers(loaded: tuple[Path, str], chunk: int) -> None:
    path, precision = loaded
    reference = Runtime.load(path, precision=precision, chunk_tokens=64)
    runtime = Runtime.load(path, precision=precision, chunk_tokens=chunk)
    assert runtime.precision == precision
    for data in TEXTS:
        assert np.abs(byte_nats(runtime, data) - byte_nats(reference, data)).max() <= TOLERANCE


def test_batch_neighbours_do_not_change_the_numbers(loaded: tuple[Path, str]) -> None:
    path, precision = loaded
    runtime = Runtime.load(path, precision=precision, chunk_tokens=32)
    same_length = [data[:300] for data in TEXTS]  # equal lengths: one batch of rows in every call
    batched = runtime.scorer.score_many(same_length, per_byte=True)
    for data, scored in zip(same_length, batched, strict=True):
        assert scored.byte_nats is not None
        assert np.abs(scored.byte_nats - byte_nats(runtime, data)).max() <= TOLERANCE
    with TestClient(create_app(settings_for(path, precision=precision, chunk_tokens=32))) as client:
        texts = [data.decode("latin-1") for data in same_length]  # one char per byte above 127 as well
        batch = client.post("/v1/score", json={"texts": texts, "per_char": True}).json()["results"]
        for text, result in zip(texts, batch, strict=True):
            alone = client.post("/v1/score", json={"text": text, "per_char": True}).json()
            assert np.abs(np.subtract(result["per_char_bits"], alone["per_char_bits"])).max() <= TOLERANCE
            assert result["bits"] == pytest.approx(alone["bits"], abs=TOLERANCE * len(text))


def test_cache_contents_do_not_change_the_answer(loaded: tuple[Path, str]) -> None:
    path, precision = loaded
    cached = Runtime.load(path, precision=precision, chunk_tokens=8)
    fresh = Runtime.load(path, precision=precision, chunk_tokens=8, cache_size=0)
    outcomes: list[str] = []
    cached.cache.on_lookup = outcomes.append
    data = TEXTS[1][:200]
    for end in range(20, 200, 7):  # each request continues the previous one: partial hits
        got, state = cached.context(data[:end])
        want, want_state = fresh.context(data[:end])
        assert np.abs(got.astype(np.float64) - want).max() <= TOLERANCE
        assert np.abs(state - want_state).max() <= TOLERANCE
    assert outcomes.count("partial") >= 20
