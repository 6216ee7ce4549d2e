"""Out-of-domain texts for the compression benchmark, made reproducibly from what a fresh install has.

The default model trained on English prose only (bench/default_mix.py); these are text kinds it never saw.
Each is deterministic for a given Python version (its stdlib sources, Unicode database and docstrings):

* ``python-stdlib``: the top-level ``*.py`` files of the standard library, sorted by name, concatenated.
* ``json-records``: one JSON record per Unicode code point from U+0020 on (``unicodedata``), indented 1.
* ``html-pydoc``: ``pydoc``'s HTML pages for a fixed list of stdlib modules; object addresses and the
  stdlib path are replaced by fixed strings (they differ between runs and machines).
"""

from __future__ import annotations

import json
import pydoc
import re
import sys
import sysconfig
import unicodedata
from collections.abc import Callable
from importlib import import_module
from pathlib import Path

# Modules without import side effects, sorted; their pages add up to well over 1 MB.
PYDOC_MODULES = (
    "abc", "argparse", "ast", "base64", "bisect", "calendar", "collections", "colorsys", "configparser",
    "contextlib", "copy", "csv", "dataclasses", "datetime", "decimal", "difflib", "enum", "fnmatch",
    "fractions", "functools", "gettext", "glob", "heapq", "hmac", "html", "ipaddress", "itertools", "json",
    "logging", "operator", "optparse", "pathlib", "pprint", "queue", "random", "re", "sched", "secrets",
    "shlex", "shutil", "statistics", "string", "struct", "tarfile", "textwrap", "threading", "tokenize",
    "typing", "uuid", "zipfile",
)  # fmt: skip


def python_stdlib(n_bytes: int) -> bytes:
    """The stdlib's top-level modules, sorted by file name, concatenated, first ``n_bytes``."""
    root = Path(sysconfig.get_paths()["stdlib"])
    out = bytearray()
    for path in sorted(root.glob("*.py")):
        out += path.read_bytes()
        if len(out) >= n_bytes:
            break
    return bytes(out[:n_bytes])


def json_records(n_bytes: int) -> bytes:
    """Unicode character records as an indented JSON array, first ``n_bytes``."""
    records = []
    size = 0
    for code in range(0x20, sys.maxunicode + 1):
        char = chr(code)
        name = unicodedata.name(char, "")
        if not name:
            continue
        record = {
            "codepoint": f"U+{code:04X}",
            "name": name,
            "category": unicodedata.category(char),
            "bidirectional": unicodedata.bidirectional(char),
            "combining": unicodedata.combining(char),
            "mirrored": bool(unicodedata.mirrored(char)),
            "decomposition": unicodedata.decomposition(char),
            "numeric": unicodedata.numeric(char, None),
        }
        records.append(record)
        size += 260  # a record takes ~250 bytes: stop well after n_bytes
        if size > 2 * n_bytes:
            break
    return json.dumps(records, indent=1, ensure_ascii=False).encode("utf-8")[:n_bytes]


def html_pydoc(n_bytes: int) -> bytes:
    """pydoc HTML pages of ``PYDOC_MODULES``, concatenated, first ``n_bytes``."""
    stdlib = sysconfig.get_paths()["stdlib"]
    out = bytearray()
    for name in PYDOC_MODULES:
        module = import_module(name)
        page = pydoc.html.page(pydoc.describe(module), pydoc.html.document(module, name))
        page = re.sub(r" at 0x[0-9a-fA-F]+", " at 0x0", page).replace(stdlib, "/stdlib")
        out += page.encode("utf-8", errors="surrogateescape")
        if len(out) >= n_bytes:
            break
    return bytes(out[:n_bytes])


OUT_OF_DOMAIN: dict[str, Callable[[int], bytes]] = {
    "python-stdlib": python_stdlib,
    "json-records": json_records,
    "html-pydoc": html_pydoc,
}
