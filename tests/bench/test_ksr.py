"""The keystroke-savings benchmark's parts: the PPM baseline, the word-frequency baseline, the typist."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from bench.completion import section
from bench.completion.ppm import PPM
from bench.completion.typist import PPMCompleter, type_text, word_rest
from bench.completion.words import WordCompleter, units


def probs(model: PPM, history: bytes) -> np.ndarray:
    last, _ = model.start(history)
    return np.exp(last[:256])


def test_ppm_method_d_with_exclusion_by_hand() -> None:
    """'abracadabra' after "ab": order 2 saw r twice (p 3/4, escape 1/4); order 1 ("b") saw only r,
    excluded, so nothing to pay; order 0 without r: a5 b2 c1 d1 (n 9, 4 kinds): a = 1/4 * 9/18, escape
    1/4 * 4/18 to a uniform order -1 over the 251 bytes never offered."""
    p = probs(PPM.train(b"abracadabra", order=2), b"ab")
    assert p[ord("r")] == pytest.approx(3 / 4)
    assert p[ord("a")] == pytest.approx(1 / 8)
    assert p[ord("b")] == pytest.approx(1 / 24)
    assert p[ord("c")] == pytest.approx(1 / 72) and p[ord("d")] == pytest.approx(1 / 72)
    assert p[ord("z")] == pytest.approx(1 / 18 / 251)


@pytest.mark.parametrize("history", [b"", b"a", b"ab", b"zzzzzz", b"the q", "é".encode(), b"\x00\xff"])
def test_ppm_probabilities_sum_to_one(history: bytes) -> None:
    model = PPM.train(b"the quick brown fox jumps over the lazy dog. " * 3 + "héllo".encode(), order=5)
    assert probs(model, history).sum() == pytest.approx(1.0, abs=1e-12)
    assert (probs(model, history) > 0).all()
    model.update(b"the quack", b"")  # adaptive counts join the static ones
    assert probs(model, history).sum() == pytest.approx(1.0, abs=1e-12)
    every = PPM.train(bytes(range(256)) * 2, order=1)  # all 256 bytes seen: the last escape has no target
    assert probs(every, b"").sum() == pytest.approx(1.0, abs=1e-12)


def test_ppm_adapts_and_steps_rows_independently() -> None:
    model = PPM.train(b"abracadabra", order=2)
    fresh = model.fresh()
    model.update(b"abz", b"")  # "ab" now saw r twice and z once: z = (2 - 1) / (2 * 3)
    assert probs(model, b"ab")[ord("z")] == pytest.approx(1 / 6)
    assert probs(fresh, b"ab")[ord("z")] == pytest.approx(1 / 18 / 251)  # the copy did not learn it
    _, state = model.start(b"xa")
    logprobs, state = model.step(np.array([ord("b"), ord("z")]), np.repeat(state, 2, axis=1))
    assert state[0].tolist() == [[ord("a"), ord("b")], [ord("a"), ord("z")]]
    assert np.allclose(np.exp(logprobs[0, :256]), probs(model, b"ab"))
    assert np.allclose(np.exp(logprobs[1, :256]), probs(model, b"az"))
    assert logprobs[:, 256].tolist() == [-np.inf, -np.inf]  # no BOS


def test_units_and_word_rest() -> None:
    assert list(units("the cat,  sat\nend")) == ["the ", "cat,", " ", " ", "sat\n"]
    assert word_rest("the cat", 1) == "he " and word_rest("the cat", 3) == " "
    assert word_rest("the cat", 4) is None  # no end before the text does


def test_ksr_of_a_word_list_by_hand() -> None:
    """Trained on "the the the cat ": shown ["the ", "cat "] for an empty word. Typing "tea tea the ":
    t, e, a, space (4 keys; "tea " is now counted once, tied with "cat ", after it in order), then "tea "
    is the third suggestion: 1 key; "the ": 1 key. 6 keys for 12 characters: KSR 0.5."""
    words = WordCompleter.train(["the the the cat "], n=3)
    assert words.suggest() == ["the ", "cat "]
    typed = type_text("tea tea the ", words.fresh())
    assert (typed.chars, typed.keystrokes, typed.accepted) == (12, 6, 2)
    assert typed.ksr == pytest.approx(0.5)
    assert words.suggest() == ["the ", "cat "]  # the fresh copy adapted, not the trained one


def test_the_typist_asks_only_where_a_suggestion_can_save_a_key() -> None:
    class Always:
        """Suggests the right rest of the word everywhere (it reads the text it is typed with)."""

        def __init__(self, text: str) -> None:
            self.text, self.i, self.asked = text, 0, 0

        def suggest(self) -> list[str]:
            self.asked += 1
            return [word_rest(self.text, self.i) or ""]

        def advance(self, text: str) -> None:
            self.i += len(text)

    text = "ab, c d\nxyz"
    oracle = Always(text)
    typed = type_text(text, oracle)
    # "ab," (1 key), " " (1), "c " (1), "d\n" (1), x, y, z typed: no word end, no suggestion fits (3)
    assert typed.keystrokes == 7 and typed.accepted == 3
    assert oracle.asked == 3  # not at the lone " " (one key either way) nor in "xyz" (no word end)
    assert typed.ksr == pytest.approx(1 - 7 / 11)


def test_ppm_completer_learns_a_repeated_word() -> None:
    """An untrained PPM (trained on one byte) types "banana banana ": the second word comes from what the
    first one taught it, accepted with one key."""
    typed = type_text("banana banana ", PPMCompleter(PPM.train(b" ", order=5)))
    assert typed.accepted >= 1 and typed.keystrokes < len("banana banana ")


def _typed(ksr: float) -> dict[str, float]:
    return {"chars": 100, "keystrokes": round(100 * (1 - ksr)), "accepted": 5, "ksr": ksr, "seconds": 1.0}


def test_section_targets_and_table() -> None:
    """A baseline that saved nothing (ratio None) meets the goal; one split under 1.1x PPM fails it."""
    rows: list[dict[str, Any]] = [
        {"split": "a", "chars": 100, "lnrnn": _typed(0.4), "word_frequency": _typed(0.0), "ppm": _typed(0.3)},
        {
            "split": "b",
            "chars": 100,
            "lnrnn": _typed(0.4),
            "word_frequency": _typed(0.3),
            "ppm": _typed(0.38),
        },
    ]
    for r in rows:
        wf, ppm = r["word_frequency"]["ksr"], r["ppm"]["ksr"]
        r["vs_word_frequency"] = 0.4 / wf if wf else None
        r["vs_ppm"] = 0.4 / ppm
    timing = {"requests": 10, "errors": 0, "p50_ms": 4.0, "p99_ms": 31.0, "mean_ms": 5.0, "run_p50_ms": [4.0]}
    res = {
        "completion": {
            "uptime_start": "up",
            "uptime_end": "up",
            "ksr": {
                "rows": rows,
                "prefix_chars": 100,
                "suggestions": 3,
                "max_chars": 16,
                "beam_width": "4 x n = 12",
                "model": "m",
                "train_bytes": 10,
                "widths": {},
                "widths_on": None,
            },
            "latency": {
                "runs": 1,
                "typed_per_run": 10,
                "context_bytes": 200,
                "client": "c",
                "complete": timing,
                "append": timing,
                "in_process": {"p50_ms": 2.0, "p99_ms": 8.0},
                "load_1min": [0.1, 0.2],
            },
        }
    }
    met = {t["name"]: t["met"] for t in section.targets(res)}
    assert list(met.values()) == [True, False, True, False]  # word freq., PPM (b: 1.05x), p50, p99
    text = "\n".join(section.render(res))
    assert "| a | 100 | 0.400 | 0.000 | 0.300 | ∞ (baseline saved nothing) | 1.33x |" in text
