"""Which model made an archive: the decoder finds the step graph by the fingerprint in the header.

``lnrnn decompress`` without ``--model`` (and ``POST /v1/decompress``, and :func:`lnrnn.codec.decompress`
without a graph) looks among the shipped models, every ``<name>/`` directory of the installed
``lnrnn.models`` package, for the step graph of the header's precision whose fingerprint the header names.
Hashing a 10 MB graph file takes tens of milliseconds, so only the files of the header's precision are
hashed, each once per process (the cache is keyed by path, size and modification time).

``models/fingerprints.json`` keeps every fingerprint a version of lnrnn has shipped (model, precision, the
lnrnn version, how to get it), and old entries are never dropped: an archive whose model is no longer
installed gets one line naming it. ``python -m lnrnn.codec.registry --write`` adds the shipped models'
entries (run it after changing a model under ``models/``; a test fails while the table is stale);
``--check`` only reports.

``LNRNN_MODELS_PATH`` (directories separated by ``os.pathsep``) replaces the installed package as the place
searched; each of its directories may hold its own ``fingerprints.json``, read besides the package's.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from lnrnn import __version__
from lnrnn.codec.container import FINGERPRINT_BYTES, Header
from lnrnn.codec.errors import ModelMismatch
from lnrnn.codec.model import StepGraph
from lnrnn.contract import STEP_FILE, STEP_INT8_FILE

ENV = "LNRNN_MODELS_PATH"
TABLE_FILE = "fingerprints.json"
# The step graph file of each precision a header can name: only these are hashed for a lookup.
STEP_FILES = {"int8": STEP_INT8_FILE, "fp32": STEP_FILE}
_CHUNK = 1 << 20


def package_root() -> Path:
    """The installed ``lnrnn.models`` package: ``models/`` of the repository, package data in the wheel."""
    return Path(str(resources.files("lnrnn.models")))


def search_roots(roots: Sequence[Path] | None = None) -> list[Path]:
    """``roots`` if given, else the directories of ``LNRNN_MODELS_PATH``, else the installed package."""
    if roots is not None:
        return [Path(r) for r in roots]
    env = os.environ.get(ENV, "")
    if env.strip():
        return [Path(p) for p in env.split(os.pathsep) if p.strip()]
    return [package_root()]


@dataclass(frozen=True)
class Shipped:
    """One model directory under a search root."""

    name: str
    model_dir: Path


def shipped_models(roots: Sequence[Path] | None = None) -> list[Shipped]:
    """Every ``<root>/<name>/`` holding a step graph of some precision, root by root, by name."""
    found = []
    for root in search_roots(roots):
        if not root.is_dir():
            continue
        for sub in sorted(root.iterdir()):
            if sub.is_dir() and any((sub / name).is_file() for name in STEP_FILES.values()):
                found.append(Shipped(sub.name, sub))
    return found


_hashes: dict[tuple[str, int, int], bytes] = {}
_hashes_lock = threading.Lock()


def fingerprint(path: Path) -> bytes | None:
    """The fingerprint ``StepGraph`` computes for ``path`` (first 16 bytes of its SHA-256), hashed once per
    process; None when the file cannot be read."""
    try:
        stat = path.stat()
        key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    except OSError:
        return None
    with _hashes_lock:
        if key in _hashes:
            return _hashes[key]
    value = _digest(path)
    if value is not None:
        with _hashes_lock:
            _hashes[key] = value
    return value


def _digest(path: Path) -> bytes | None:
    digest = hashlib.sha256()
    try:
        with path.open("rb") as f:
            while chunk := f.read(_CHUNK):
                digest.update(chunk)
    except OSError:
        return None
    return digest.digest()[:FINGERPRINT_BYTES]


def locate(
    wanted: bytes, precision: str, *, first: Sequence[Path] = (), roots: Sequence[Path] | None = None
) -> Path | None:
    """The model directory whose step graph of ``precision`` has fingerprint ``wanted``: the ``first``
    directories (the configured model), then the shipped ones; None when none has it."""
    name = STEP_FILES.get(precision)
    if name is None:
        return None
    seen: set[Path] = set()
    for model_dir in (*(Path(d) for d in first), *(m.model_dir for m in shipped_models(roots))):
        path = model_dir / name
        if path.resolve() in seen:  # the configured model is usually a shipped one too
            continue
        seen.add(path.resolve())
        if path.is_file() and fingerprint(path) == wanted:
            return model_dir
    return None


@dataclass(frozen=True)
class Known:
    """An entry of the fingerprints table: a step graph some version of lnrnn shipped."""

    model: str
    precision: str
    lnrnn: str
    get: str

    def describe(self) -> str:
        return f"models/{self.model} of lnrnn {self.lnrnn} ({self.precision})"


def read_table(path: Path) -> dict[str, dict[str, str]]:
    """The ``fingerprints`` mapping of one table file; empty when the file is missing or unreadable (a
    lookup must still work without it, only its error message is less helpful)."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    entries = doc.get("fingerprints") if isinstance(doc, dict) else None
    return entries if isinstance(entries, dict) else {}


def known(wanted: bytes, roots: Sequence[Path] | None = None) -> Known | None:
    """What the tables say about ``wanted``: the search roots' tables first, then the package's."""
    tables = [root / TABLE_FILE for root in search_roots(roots)] + [package_root() / TABLE_FILE]
    for table in tables:
        entry = read_table(table).get(wanted.hex())
        if isinstance(entry, dict):
            try:
                return Known(entry["model"], entry["precision"], entry["lnrnn"], entry["get"])
            except KeyError:
                continue
    return None


def missing_message(header: Header, roots: Sequence[Path] | None = None) -> str:
    """One line for an archive whose model no search root has: the model if the tables know it, else the
    fingerprint, precision and producer."""
    entry = known(header.fingerprint, roots)
    if entry is not None:
        return (
            f"compressed with {entry.describe()}, which is not installed here: get it ({entry.get}) and "
            "decompress with that lnrnn, or with `lnrnn decompress --model DIR`, DIR its model directory"
        )
    searched = os.pathsep.join(str(r) for r in search_roots(roots))
    return (
        "compressed with another model, one this lnrnn does not know: fingerprint "
        f"{header.fingerprint.hex()} ({header.precision}), written by {header.producer}; no model under "
        f"{searched} has it: decompress with `lnrnn decompress --model DIR`, DIR the model directory that "
        "compressed it"
    )


def require(header: Header, *, first: Sequence[Path] = (), roots: Sequence[Path] | None = None) -> Path:
    """The model directory that made ``header``'s archive (see :func:`locate`); ``ModelMismatch`` (one
    line) when none is installed."""
    found = locate(header.fingerprint, header.precision, first=first, roots=roots)
    if found is None:
        raise ModelMismatch(missing_message(header, roots))
    return found


def hint(header: Header, roots: Sequence[Path] | None = None) -> str:
    """For a ``--model`` that does not match: where the right model is, if anywhere is known."""
    found = locate(header.fingerprint, header.precision, roots=roots)
    if found is not None:
        return f"it matches {found}: decompress without --model"
    entry = known(header.fingerprint, roots)
    if entry is not None:
        return f"it was made with {entry.describe()} ({entry.get})"
    return "decompress with the model directory that compressed it (--model)"


@lru_cache(maxsize=4)
def _load(model_dir: Path, precision: str) -> StepGraph:
    return StepGraph.load(model_dir, precision)


def graph_for(
    header: Header, *, first: Sequence[Path] = (), roots: Sequence[Path] | None = None
) -> StepGraph:
    """The step graph that made ``header``'s archive, loaded once per process and precision."""
    return _load(require(header, first=first, roots=roots).resolve(), header.precision)


# --- the committed table ---------------------------------------------------------------------------------

ABOUT = (
    "Step graphs that versions of lnrnn shipped, by fingerprint (the first 16 bytes of the SHA-256 of the "
    "file, as in a .lnrz header): the decoder names the model of an archive whose model is not installed. "
    "Written by `python -m lnrnn.codec.registry --write`; entries are never removed."
)


# shipped in the repository but not in the wheel (pyproject.toml, tool.setuptools.exclude-package-data)
CHECKOUT_ONLY = frozenset({"broad"})


def how_to_get(model: str, version: str) -> str:
    """Where a user finds a model of lnrnn ``version`` that is not installed."""
    if model in CHECKOUT_ONLY:
        return f"the models/{model} directory of an lnrnn {version} checkout (it is not in the wheel)"
    return f"pip install lnrnn=={version}, or the models/{model} directory of lnrnn {version}"


def updated_table(root: Path | None = None, version: str = __version__) -> dict[str, Any]:
    """The table of ``root`` (default: the installed package) with an entry for every step graph shipped
    there now; an existing entry is kept as it is (the version that first shipped it)."""
    root = package_root() if root is None else root
    entries: dict[str, dict[str, str]] = dict(read_table(root / TABLE_FILE))
    for model in shipped_models([root]):
        for precision, name in STEP_FILES.items():
            value = fingerprint(model.model_dir / name)
            if value is None:
                continue
            get = how_to_get(model.name, version)
            entry = {"model": model.name, "precision": precision, "file": name, "lnrnn": version, "get": get}
            entries.setdefault(value.hex(), entry)
    return {"about": ABOUT, "fingerprints": dict(sorted(entries.items()))}


def render(table: dict[str, Any]) -> str:
    return json.dumps(table, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lnrnn.codec.registry",
        description=f"Update or check {TABLE_FILE} of the shipped models (the installed lnrnn.models).",
    )
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--write", action="store_true", help="add the shipped step graphs' entries")
    group.add_argument("--check", action="store_true", help="exit 1 if an entry is missing")
    args = parser.parse_args(argv)
    path = package_root() / TABLE_FILE
    try:
        current = path.read_text(encoding="utf-8")
    except OSError:
        current = ""
    wanted = render(updated_table())
    if args.check:
        if current != wanted:
            sys.stderr.write(f"{path} is out of date: run python -m lnrnn.codec.registry --write\n")
            return 1
        sys.stdout.write(f"{path} is up to date\n")
        return 0
    if current != wanted:
        path.write_text(wanted, encoding="utf-8")
    sys.stdout.write(f"{path}: {len(json.loads(wanted)['fingerprints'])} fingerprints\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
