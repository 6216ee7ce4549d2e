"""A word-frequency completer: the keystroke-savings baseline of a plain dictionary keyboard.

Its units are what a completion with ``until="word"`` produces: a run of characters that are not word ends,
then the one word end that closes it (``"the "``, ``"sir,"``, ``"\\n"``). It counts the units of its
training text, and of the text typed so far (it adapts, as a keyboard's user dictionary does), and offers
the rest of the ``n`` most frequent units that start with the part of the word typed so far (ties: the
units' order).
"""

from __future__ import annotations

import bisect
import heapq
import re
from collections import Counter
from collections.abc import Iterable

from lnrnn.serve.engine.complete import WORD_ENDS

_ENDS = re.escape(WORD_ENDS.decode("ascii"))
_END_CHARS = frozenset(WORD_ENDS.decode("ascii"))
UNIT = re.compile(f"[^{_ENDS}]*[{_ENDS}]")


def units(text: str) -> Iterable[str]:
    """Every unit of ``text``, in order; a last word with no end is not one."""
    return (m.group() for m in UNIT.finditer(text))


class WordCompleter:
    """Unit counts, a sorted list of the units for prefix ranges, and each asked prefix's best units."""

    def __init__(self, counts: Counter[str], n: int = 3) -> None:
        self.n = n
        self.counts = counts
        self.sorted = sorted(counts)
        self.best: dict[str, list[str]] = {}  # prefix -> its n best units, kept up to date by ``add``
        self.word = ""  # the part of the current word typed so far

    @classmethod
    def train(cls, texts: Iterable[str], n: int = 3) -> WordCompleter:
        counts: Counter[str] = Counter()
        for text in texts:
            counts.update(units(text))
        return cls(counts, n)

    def fresh(self) -> WordCompleter:
        """A copy with the counts as they are and no word in progress; it adapts on its own."""
        return WordCompleter(Counter(self.counts), self.n)

    def _rank(self, unit: str) -> tuple[int, str]:
        return -self.counts[unit], unit

    def top(self, prefix: str) -> list[str]:
        """The n most frequent units that start with ``prefix``, most frequent first."""
        if prefix not in self.best:
            lo = bisect.bisect_left(self.sorted, prefix)
            hi = bisect.bisect_left(self.sorted, prefix + "\U0010ffff")
            self.best[prefix] = heapq.nsmallest(self.n, self.sorted[lo:hi], key=self._rank)
        return self.best[prefix]

    # --- the typist's interface (bench.completion.typist.Completer) ----------------------------------

    def suggest(self) -> list[str]:
        """The rest of each best unit for the word typed so far."""
        return [unit[len(self.word) :] for unit in self.top(self.word)]

    def advance(self, text: str) -> None:
        """``text`` was typed or accepted: every unit it closes is counted."""
        for char in text:
            self.word += char
            if char in _END_CHARS:
                self.add(self.word)
                self.word = ""

    def add(self, unit: str) -> None:
        """Count one more ``unit``: only the asked prefixes of it can change their best units."""
        if unit not in self.counts:
            bisect.insort(self.sorted, unit)
        self.counts[unit] += 1
        for end in range(len(unit)):
            best = self.best.get(unit[:end])
            if best is not None:  # the unit's count only grew: it may move up, nothing else moves
                self.best[unit[:end]] = sorted({*best, unit}, key=self._rank)[: self.n]
