"""Licences of package files, read from Debian copyright files, and which ones a trained model may not use.

A machine-readable copyright file (DEP-5: ``Format: https://www.debian.org/doc/packaging-manuals/
copyright-format/1.0/``) gives a licence per ``Files:`` stanza; the last stanza whose pattern matches wins, as
the format says. Its patterns are paths in the *source* tree while installed files live under ``usr/...``,
so a pattern is matched against the installed path and every tail of it (``src/fmt/print.go`` is a tail of
``usr/share/go-1.19/src/fmt/print.go``; a ``.gz`` suffix is dropped first). Free-form copyright files give
no per-file licence: the source's declared licence (``sources.py``) stands for the whole package.

Forbidden: a licence whose short name says no derivatives or no commercial use (``noderivs``, ``CC-BY-ND``,
``CC-BY-NC-SA``, ...), since a model trained on the text is a derived work that gets redistributed. A
dual-licensed file (``A or B``) is allowed when one alternative is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

DEP5 = "https://www.debian.org/doc/packaging-manuals/copyright-format/"
FORBIDDEN = re.compile(r"no-?derivs?|non-?commercial|(?:^|[-\s])(?:ND|NC)(?:$|[-\s])", re.IGNORECASE)


@dataclass(frozen=True)
class Stanza:
    patterns: tuple[re.Pattern[str], ...]
    licence: str


@dataclass(frozen=True)
class Copyright:
    stanzas: tuple[Stanza, ...]  # empty: not machine-readable
    licences: tuple[str, ...]  # every short name the file states, sorted

    def licence_of(self, path: str, declared: str) -> str:
        """The licence of the installed file ``path`` (a POSIX path inside the package)."""
        parts = path.removesuffix(".gz").split("/")  # man pages are installed compressed
        tails = ["/".join(parts[i:]) for i in range(len(parts))]
        found = declared
        for stanza in self.stanzas:
            if any(p.fullmatch(t) for p in stanza.patterns for t in tails):
                found = stanza.licence
        return found


def _glob(pattern: str) -> re.Pattern[str]:
    """A DEP-5 Files pattern: ``*`` is any string (``/`` included), ``?`` one character."""
    return re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern))


def _paragraphs(text: str) -> list[dict[str, str]]:
    """RFC 822-style paragraphs: field -> value (continuation lines joined with newlines)."""
    out: list[dict[str, str]] = []
    for block in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        last = ""
        for line in block.splitlines():
            if line[:1] in (" ", "\t") and last:
                fields[last] += "\n" + line.strip()
            elif ":" in line and not line.startswith("#"):
                name, _, value = line.partition(":")
                last = name.strip().lower()
                fields[last] = value.strip()
        if fields:
            out.append(fields)
    return out


def parse(text: str) -> Copyright:
    """The stanzas and licence short names of a copyright file; none if it is not machine-readable."""
    paragraphs = _paragraphs(text)
    if not paragraphs or DEP5 not in paragraphs[0].get("format", ""):
        return Copyright((), ())
    stanzas = []
    names: set[str] = set()
    for para in paragraphs:
        licence = para.get("license", "").split("\n")[0].strip()
        if licence:
            names.add(licence)
        if "files" in para and licence:
            patterns = tuple(_glob(p) for p in para["files"].split())
            stanzas.append(Stanza(patterns, licence))
    return Copyright(tuple(stanzas), tuple(sorted(names)))


def read(path: Path) -> Copyright:
    return parse(path.read_text(encoding="utf-8", errors="replace"))


def forbidden(licence: str) -> bool:
    """True when every alternative of ``licence`` forbids derivatives or commercial use."""
    alternatives = re.split(r"\s+or\s+", licence, flags=re.IGNORECASE)
    return all(FORBIDDEN.search(alt) is not None for alt in alternatives)
