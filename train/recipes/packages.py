"""Fetched package trees: where a package's files are, its version and licences, which files a source takes.

Layout under the sources root (what ``broad_fetch`` writes, and what tests fake):

* ``deb/<package>/``: a Debian package extracted with ``dpkg-deb -R`` (files, and ``DEBIAN/control`` with its
  ``Version``); its copyright is ``usr/share/doc/<package>/copyright``, or the one of the package that
  directory is a symlink to (``manpages-dev`` -> ``manpages``).
* ``npm/node_modules/<package>/``: an npm package (``package.json`` with ``version`` and ``license``).

Extracting rather than installing leaves the machine alone (no maintainer scripts, no upgraded system headers,
no ``path-exclude`` of man pages and docs in slim images) and gives exactly one package's files.
"""

from __future__ import annotations

import fnmatch
import gzip
import json
import os
from dataclasses import dataclass
from pathlib import Path

from lnrnn.train.recipes import licences
from lnrnn.train.recipes.sources import Source


class SourceError(ValueError):
    """A package is missing, unreadable or at another version than pinned."""


@dataclass(frozen=True)
class Package:
    registry: str
    name: str
    root: Path
    version: str
    copyright: licences.Copyright
    licence_note: str  # where the licences were read from, inside the package tree(s)
    npm_licence: str = ""  # package.json's "license", for npm packages

    def licence_of(self, path: str, declared: str) -> str:
        if self.registry == "npm":
            return self.npm_licence or declared
        return self.copyright.licence_of(path, declared)


def package_root(src: Path, registry: str, name: str) -> Path:
    return src / "deb" / name if registry == "deb" else src / "npm" / "node_modules" / name


def _control_version(root: Path) -> str:
    for line in (root / "DEBIAN" / "control").read_text(encoding="utf-8").splitlines():
        if line.startswith("Version:"):
            return line.partition(":")[2].strip()
    raise SourceError(f"{root / 'DEBIAN' / 'control'}: no Version field")


def _deb_copyright(src: Path, name: str) -> Path:
    doc = package_root(src, "deb", name) / "usr" / "share" / "doc" / name
    if doc.is_symlink():  # Debian shares one doc directory between packages of one source
        target = os.readlink(doc).rstrip("/")
        if "/" not in target:
            return package_root(src, "deb", target) / "usr" / "share" / "doc" / target / "copyright"
    return doc / "copyright"


def open_package(src: Path, registry: str, name: str) -> Package:
    """Read a fetched package's version and licences; a missing tree is a SourceError."""
    root = package_root(src, registry, name)
    if not root.is_dir():
        raise SourceError(f"{root} is missing: fetch it first (python -m lnrnn.train.recipes.broad_fetch)")
    try:
        if registry == "npm":
            meta = json.loads((root / "package.json").read_text(encoding="utf-8"))
            lic = meta.get("license", "")
            lic = lic.get("type", "") if isinstance(lic, dict) else str(lic)
            empty = licences.Copyright((), (lic,) if lic else ())
            return Package(registry, name, root, str(meta["version"]), empty, "package.json", lic)
        copyright_path = _deb_copyright(src, name)
        note = copyright_path.relative_to(src).as_posix()
        return Package(registry, name, root, _control_version(root), licences.read(copyright_path), note)
    except (OSError, KeyError, json.JSONDecodeError) as err:
        raise SourceError(f"{root}: cannot read the package ({err})") from err


def files(package: Package) -> list[str]:
    """Every regular file of the package (symlinks and ``DEBIAN/`` left out), as sorted POSIX paths."""
    found = []
    for dirpath, dirnames, filenames in os.walk(package.root):
        dirnames.sort()
        for name in filenames:
            path = Path(dirpath) / name
            rel = path.relative_to(package.root).as_posix()
            if not path.is_symlink() and not rel.startswith("DEBIAN/"):
                found.append(rel)
    return sorted(found)


def select(paths: list[str], source: Source) -> list[str]:
    """The paths the source includes and does not exclude."""
    match = fnmatch.fnmatchcase
    return [
        p
        for p in paths
        if any(match(p, g) for g in source.include) and not any(match(p, g) for g in source.exclude)
    ]


def read_text_file(package: Package, rel: str) -> bytes:
    """The file's bytes, gunzipped when it ends in ``.gz`` (man pages are stored compressed)."""
    data = (package.root / rel).read_bytes()
    return gzip.decompress(data) if rel.endswith(".gz") else data
