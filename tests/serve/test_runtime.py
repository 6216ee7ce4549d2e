"""Runtime and decoding: scoring against PyTorch, the chunking rule, exact top-k characters, valid UTF-8."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from lnrnn.serve.engine.decode import generate, probabilities, top_chars
from lnrnn.serve.engine.runtime import ModelLoadError, Runtime
from lnrnn.serve.engine.utf8 import char_length, next_range
from tests.helpers import TinyModel

TEXT = "Hello, wörld! 日本語 and 🙂 too.".encode()


@pytest.mark.parametrize("chunk", [2, 3, 5, 7, 4096])
def test_score_matches_pytorch_for_every_chunk_size(tiny: TinyModel, chunk: int) -> None:
    runtime = Runtime.load(tiny.dir, chunk_tokens=chunk)
    shapes: list[tuple[int, ...]] = []
    run = runtime.sequence_session.run

    def spy(outputs: list[str], feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        shapes.append(feeds["tokens"].shape)
        return run(outputs, feeds)

    runtime.sequence_session.run = spy  # type: ignore[method-assign]
    for n in (1, 2, 3, 4, 5, 6, 9, len(TEXT)):  # includes lengths whose last chunk is one token
        data = TEXT[:n]
        scored = runtime.score(data, per_byte=True)
        assert scored.nats / math.log(2) == pytest.approx(tiny.bits(data), abs=1e-3), f"n={n} chunk={chunk}"
        assert scored.byte_nats is not None and len(scored.byte_nats) == n
        np.testing.assert_allclose(scored.byte_nats / math.log(2), tiny.byte_bits(data), atol=1e-4)
    assert shapes and all(t >= 1 for _, t in shapes), "the sequence graph must never see T = 0"
    assert all(t <= chunk for _, t in shapes)


def test_sequence_graph_guard_rejects_empty_input(tiny: TinyModel) -> None:
    """ORT's Scan over an empty sequence kills the process (SIGFPE): T = 0 is refused before ORT."""
    runtime = Runtime.load(tiny.dir)
    with pytest.raises(ValueError, match="T >= 1"):
        runtime.scorer.sequence(np.zeros((1, 0), dtype=np.int64), runtime.initial_state)
    with pytest.raises(ValueError, match="empty"):
        runtime.score(b"")


def test_context_cache_gives_the_same_distribution(tiny: TinyModel) -> None:
    runtime = Runtime.load(tiny.dir, chunk_tokens=4)
    for n in range(0, len(TEXT), 3):  # each call extends a cached prefix
        cached, _ = runtime.context(TEXT[:n])
        fresh, _ = runtime.context(TEXT[:n], cache=False)
        np.testing.assert_allclose(cached, fresh, atol=1e-5)


def test_missing_and_broken_model_dirs(tmp_path) -> None:
    with pytest.raises(ModelLoadError, match="does not exist"):
        Runtime.load(tmp_path / "nope")
    (tmp_path / "step.onnx").write_bytes(b"not onnx")
    (tmp_path / "sequence.onnx").write_bytes(b"not onnx")
    with pytest.raises(ModelLoadError, match="cannot load"):
        Runtime.load(tmp_path)


def test_cuda_request_fails_clearly_without_cuda(tiny: TinyModel) -> None:
    with pytest.raises(ModelLoadError, match="--device cuda"):
        Runtime.load(tiny.dir, device="cuda")


# --- decoding with a controllable fake: a Markov chain over bytes --------------------------------


class MarkovRuntime:
    """Next-byte log-probs depend only on the last token: enough to check the search exactly."""

    def __init__(self, seed: int, favour: dict[int, dict[int, float]]) -> None:
        logits = np.random.default_rng(seed).normal(0, 1.0, (257, 257))
        for prev, nexts in favour.items():
            for b, v in nexts.items():
                logits[prev, b] += v
        self.table = logits - np.log(np.exp(logits).sum(1, keepdims=True))
        self.calls = 0
        self.scorer = self  # decoding feeds one token per stream through runtime.scorer.next

    def next(self, tokens: np.ndarray, state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self.calls += 1
        return self.table[tokens].astype(np.float32), np.zeros((1, len(tokens), 1), np.float32)

    def context(self, data: bytes, cache: bool = True) -> tuple[np.ndarray, np.ndarray]:
        return self.table[data[-1] if data else 256].astype(np.float32), np.zeros((1, 1, 1), np.float32)


def brute_force(fake: MarkovRuntime, root: int, temperature: float) -> dict[bytes, float]:
    """The probability of every valid character (1 to 4 bytes) after token ``root``."""
    p = probabilities(fake.table.astype(np.float32), temperature)
    out: dict[bytes, float] = {bytes([b]): p[root, b] for b in range(128)}
    for lead in range(0xC2, 0xF5):
        length = char_length(lead)
        prefixes = {bytes([lead]): p[root, lead]}
        for pos in range(1, length):
            lo, hi = next_range(lead, pos)
            prefixes = {
                k + bytes([b]): v * p[k[-1], b] for k, v in prefixes.items() for b in range(lo, hi + 1)
            }
        out.update(prefixes)
    return out


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_top_chars_is_exact_and_joins_utf8_bytes(temperature: float) -> None:
    # After BOS, favour the lead bytes of é (C3 A9) and 日 (E6 97 A5), and their continuations.
    fake = MarkovRuntime(
        0, {256: {0xC3: 4.0, 0xE6: 4.5}, 0xC3: {0xA9: 5.0}, 0xE6: {0x97: 5.0}, 0x97: {0xA5: 5.0}}
    )
    found = top_chars(fake, *fake.context(b""), k=6, temperature=temperature)  # type: ignore[arg-type]
    exact = brute_force(fake, 256, temperature)
    best = sorted(exact.items(), key=lambda kv: -kv[1])[:6]
    assert [c for c, _ in found] == [k.decode() for k, _ in best]
    for char, prob in found:
        assert prob == pytest.approx(exact[char.encode()], rel=1e-9)
    assert {"é", "日"} <= {c for c, _ in found}
    p = probabilities(fake.table.astype(np.float32), temperature)
    assert dict(found)["日"] == pytest.approx(p[256, 0xE6] * p[0xE6, 0x97] * p[0x97, 0xA5], rel=1e-9)
    assert 1.0 - sum(exact.values()) > 0  # invalid bytes and BOS carry mass that no candidate gets
    assert fake.calls <= 3, "one batched call per byte level"


def test_top_chars_on_the_real_model_multibyte(tiny: TinyModel) -> None:
    runtime = Runtime.load(tiny.dir)
    last, state = runtime.context(b"caf")
    last = np.full(257, -30.0, dtype=np.float32)
    last[0xC3] = 0.0  # force a lead byte: the candidates must be 2-byte characters C3 xx
    found = top_chars(runtime, last, state, 3)
    after, _ = runtime.scorer.next(np.array([0xC3]), state)
    p_after = probabilities(after[0], 1.0)
    p_lead = probabilities(last, 1.0)[0xC3]
    for char, prob in found:
        raw = char.encode()
        assert len(raw) == 2 and raw[0] == 0xC3
        assert prob == pytest.approx(p_lead * p_after[raw[1]], rel=1e-6)


def test_generate_is_valid_utf8_and_seeded() -> None:
    # A chain that loves invalid bytes, BOS and lone continuation bytes: masking must keep the text valid.
    fake = MarkovRuntime(1, {b: {0xFF: 9.0, 0x80: 9.0, 256: 9.0, 0xF4: 6.0, 0xED: 6.0} for b in range(257)})
    a = generate(fake, b"x", 300, 1.0, 0, seed=7)  # type: ignore[arg-type]
    assert len(a) == 300
    assert a.encode("utf-8").decode("utf-8") == a
    assert a == generate(fake, b"x", 300, 1.0, 0, seed=7)  # type: ignore[arg-type]
    assert a != generate(fake, b"x", 300, 1.0, 0, seed=8)  # type: ignore[arg-type]
    greedy = generate(fake, b"", 20, 1.0, 1, seed=0)  # type: ignore[arg-type]
    assert len(greedy) == 20


def test_step_graph_is_opened_only_when_something_runs_it(tiny: TinyModel) -> None:
    """Serving scores on the sequence graph: the step graph is checked at load, then held only once used."""
    runtime = Runtime.load(tiny.dir)
    runtime.score(TEXT)
    runtime.context(TEXT)
    view = runtime.view(runtime.scorer)
    assert not runtime.step_loaded and not view.step_loaded
    state = runtime.initial_state
    logprobs, _ = view.step_session.run(None, {"token": np.array([256], dtype=np.int64), "state": state})
    assert runtime.step_loaded, "a view and its runtime share one step session"
    assert view.step_session is runtime.step_session
    fed = runtime.scorer.feed(np.array([256]), runtime.scorer.start_state())
    np.testing.assert_allclose(logprobs[0], fed.last[0], atol=1e-5)


def test_a_broken_step_graph_still_fails_at_load(tiny: TinyModel, tmp_path: Path) -> None:
    broken = tmp_path / "model"
    shutil.copytree(tiny.dir, broken)
    (broken / "step.onnx").write_bytes(b"not an onnx file")
    with pytest.raises(ModelLoadError):
        Runtime.load(broken, precision="fp32")
