"""Keystroke savings: a simulated typist with a keyboard that shows three word completions.

At every position the keyboard shows the completer's suggestions. If one of them is exactly the rest of the
intended word, including the character that ends it (``until="word"``'s units), one keystroke accepts it;
otherwise the typist types one character. KSR = 1 - keystrokes / characters. Where the rest is a single
character (the typist is at a word end) accepting and typing both cost one key, so no suggestion is asked.

Completers see only the text confirmed so far (``advance``): the network through its recurrent state, PPM
and the word counts by adapting to it.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any, Protocol

from bench.completion.ppm import PPM
from lnrnn.scorer import Scorer, document_array
from lnrnn.serve.engine.complete import WORD_ENDS, complete

_WORD_END = re.compile(f"[{re.escape(WORD_ENDS.decode('ascii'))}]")


class Completer(Protocol):
    def suggest(self) -> list[str]:
        """What the keyboard shows now, best first."""
        ...

    def advance(self, text: str) -> None:
        """``text`` was typed or accepted."""
        ...


def word_rest(text: str, i: int) -> str | None:
    """``text[i:]`` up to and including the next word end; None if the text ends first."""
    match = _WORD_END.search(text, i)
    return None if match is None else text[i : match.end()]


@dataclass(frozen=True)
class Typed:
    chars: int
    keystrokes: int
    accepted: int  # suggestions taken
    seconds: float

    @property
    def ksr(self) -> float:
        return 1.0 - self.keystrokes / self.chars

    def as_dict(self) -> dict[str, Any]:
        return {
            "chars": self.chars,
            "keystrokes": self.keystrokes,
            "accepted": self.accepted,
            "ksr": self.ksr,
            "seconds": self.seconds,
        }


def type_text(text: str, completer: Completer) -> Typed:
    """Type ``text`` with ``completer``'s suggestions."""
    start = time.perf_counter()
    i = keys = accepted = 0
    while i < len(text):
        keys += 1
        rest = word_rest(text, i)
        if rest is not None and len(rest) > 1 and rest in completer.suggest():
            completer.advance(rest)
            i, accepted = i + len(rest), accepted + 1
        else:
            completer.advance(text[i])
            i += 1
    return Typed(len(text), keys, accepted, time.perf_counter() - start)


class NetworkCompleter:
    """The served model's completions: its state after the text so far, carried from the document's start."""

    def __init__(self, scorer: Scorer, n: int = 3, max_chars: int = 16, width: int = 0) -> None:
        self.scorer, self.n, self.max_chars, self.width = scorer, n, max_chars, width
        fed = scorer.feed(document_array(b""), scorer.start_state())  # BOS: a new document
        self.last, self.state = fed.last[0], fed.state

    def suggest(self) -> list[str]:
        found = complete(
            self.scorer.next, self.last, self.state, n=self.n, max_chars=self.max_chars, width=self.width
        )
        return [c.text for c in found]

    def advance(self, text: str) -> None:
        fed = self.scorer.feed_text(text.encode(), self.state, self.last)
        self.last, self.state = fed.last[0], fed.state


class PPMCompleter:
    """PPM driven by the same beam search; it learns every byte confirmed."""

    def __init__(self, model: PPM, n: int = 3, max_chars: int = 16) -> None:
        self.model, self.n, self.max_chars = model, n, max_chars
        self.history = b""

    def suggest(self) -> list[str]:
        last, state = self.model.start(self.history)
        found = complete(self.model.step, last, state, n=self.n, max_chars=self.max_chars)
        return [c.text for c in found]

    def advance(self, text: str) -> None:
        data = text.encode()
        self.model.update(data, self.history)
        self.history = (self.history + data)[-self.model.order :]
