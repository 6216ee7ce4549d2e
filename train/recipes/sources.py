"""What the broad training mix is made of: the kinds of text, their sizes, and the pinned packages they use.

Read by ``broad_fetch`` (what to download) and ``broad_mix`` (what to take from it). Every source is a file
set of one package from a registry a fresh machine reaches (Debian, npm), pinned to an exact version; nothing
here is fetched at run time of the product, and no source is a text the benchmarks score
(``bench/ood_corpora.py`` builds its texts from the running Python's own stdlib, Unicode database and pydoc).

Sizes, and why (the default mix's English train part is 11,801,624 bytes with its repeats):

* English keeps its exact default-mix bytes and repeats, 42% of ``train.txt``: the next default model may lose
  at most 0.02 bits/byte on the English splits, so English stays the largest single part of every batch.
* Code 7.3 MB (26%): six languages, 0.9-1.4 MB each, so that no one language dominates what "code" means.
* Markup and structured text 4.6 MB (17%): HTML, reST/Markdown/AsciiDoc, troff, XML, JSON, CSV.
* Other languages 4.1 MB (15%): German, French, Russian, Japanese, Chinese man pages; the non-Latin scripts
  get more bytes (0.9 MB) than the Latin ones (0.7 MB) because each of their characters takes 2-3 UTF-8 bytes.

Validation: 50,000 bytes per kind, whole files held out (see ``broad_mix``). Out of the mix on purpose: Perl
(a programming language), SQL (a data/query format), Korean (Hangul) and Greek (scripts), written to
``ood/<kind>.txt`` only.

Globs are ``fnmatch`` patterns on the path inside the package (``*`` also matches ``/``).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Kind:
    name: str
    group: str  # code | markup | language | ood
    train_bytes: int  # 0 for out-of-domain kinds: never in train.txt
    valid_bytes: int  # valid/<kind>.txt, or ood/<kind>.txt for out-of-domain kinds
    max_file_bytes: int = 65_536  # a train piece is at most this prefix of one file: many files per kind
    valid_file_bytes: int = 12_500  # a held-out piece likewise: at least 4 files per validation split
    max_line_bytes: int = 0  # > 0: skip files with a longer line (minified or generated code)

    @property
    def ood(self) -> bool:
        return self.group == "ood"


@dataclass(frozen=True)
class Source:
    kind: str
    registry: str  # "deb" (apt-get download, extracted) or "npm" (npm install --no-save --ignore-scripts)
    package: str
    version: str  # pinned: broad_mix refuses another version unless --allow-drift
    include: tuple[str, ...]
    licence: str  # declared; per-file licences come from a machine-readable copyright file when there is one
    exclude: tuple[str, ...] = ()


CODE_LINE = 2_000  # longer lines than this are minified or generated code, not code people write

KINDS = (
    Kind("code-go", "code", 1_400_000, 50_000, max_line_bytes=CODE_LINE),
    Kind("code-rust", "code", 1_400_000, 50_000, max_line_bytes=CODE_LINE),
    Kind("code-c", "code", 1_200_000, 50_000, max_line_bytes=CODE_LINE),
    Kind("code-javascript", "code", 1_200_000, 50_000, max_line_bytes=CODE_LINE),
    Kind("code-typescript", "code", 900_000, 50_000, max_line_bytes=CODE_LINE),
    Kind("code-python", "code", 1_200_000, 50_000, max_line_bytes=CODE_LINE),
    Kind("html", "markup", 1_200_000, 50_000),
    Kind("rst-markdown", "markup", 900_000, 50_000),
    Kind("man-troff", "markup", 900_000, 50_000),
    Kind("xml", "markup", 600_000, 50_000),
    # few, large files: one held-out file fills the split, so most files stay in train
    Kind("json", "markup", 600_000, 50_000, max_file_bytes=300_000, valid_file_bytes=50_000),
    Kind("csv", "markup", 400_000, 50_000, max_file_bytes=160_000, valid_file_bytes=50_000),
    Kind("lang-de", "language", 700_000, 50_000),
    Kind("lang-fr", "language", 700_000, 50_000),
    Kind("lang-ru", "language", 900_000, 50_000),
    Kind("lang-ja", "language", 900_000, 50_000),
    Kind("lang-zh", "language", 900_000, 50_000),
    Kind("perl", "ood", 0, 200_000, valid_file_bytes=32_768),
    Kind("sql", "ood", 0, 200_000, valid_file_bytes=32_768),
    Kind("korean", "ood", 0, 200_000, valid_file_bytes=32_768),
    Kind("greek", "ood", 0, 200_000, valid_file_bytes=32_768),
)

GO = "usr/share/go-1.19/"
RUST = "usr/src/rustc-1.63.0/"
PY = "usr/lib/python3/dist-packages/"
DOCBOOK = "usr/share/xml/docbook/stylesheet/docbook-xsl/"
MAN_GZ = "usr/share/man/man*.gz"
JA = "usr/share/man/ja/*.gz"
SPHINX_RST = "usr/share/doc/sphinx-doc/html/_sources/*.rst.txt"

SOURCES = (
    Source("code-go", "deb", "golang-1.19-src", "1.19.8-2", (GO + "src/*.go",), "Go (BSD-3-clause)",
           exclude=("*/testdata/*", "*/vendor/*")),
    Source("code-rust", "deb", "rust-src", "1.63.0+dfsg1-2", (RUST + "library/*.rs", RUST + "compiler/*.rs"),
           "Apache-2.0 or MIT"),
    Source("code-c", "deb", "linux-libc-dev", "6.1.192-3", ("usr/include/*.h",),
           "GPL-2 (Linux-syscall-note)"),
    Source("code-c", "deb", "libc6-dev", "2.36-9+deb12u14", ("usr/include/*.h",), "LGPL-2.1+"),
    Source("code-c", "deb", "golang-1.19-src", "1.19.8-2", (GO + "src/*.c",), "Go (BSD-3-clause)",
           exclude=("*/testdata/*",)),
    Source("code-javascript", "npm", "jquery", "3.7.1", ("src/*.js",), "MIT"),
    Source("code-javascript", "npm", "lodash", "4.17.21", ("*.js",), "MIT", exclude=("*.min.js",)),
    Source("code-javascript", "npm", "three", "0.160.0", ("src/*.js", "examples/jsm/*.js"), "MIT",
           exclude=("examples/jsm/libs/*",)),
    Source("code-typescript", "npm", "typescript", "5.4.5", ("lib/lib.*.d.ts",), "Apache-2.0"),
    Source("code-typescript", "npm", "rxjs", "7.8.1", ("src/*.ts",), "Apache-2.0"),
    Source("code-python", "deb", "python3-sphinx", "5.3.0-4", (PY + "sphinx/*.py",), "BSD-2-clause"),
    Source("code-python", "deb", "python3-docutils", "0.19+dfsg-6", (PY + "docutils/*.py",),
           "public-domain, BSD-2-clause"),
    Source("html", "deb", "sphinx-doc", "5.3.0-4", ("usr/share/doc/sphinx-doc/html/*.html",), "BSD-2-clause"),
    Source("html", "deb", "git-doc", "1:2.39.5-0+deb12u3", ("usr/share/doc/git-doc/*.html",), "GPL-2"),
    Source("html", "deb", "debian-reference-en", "2.100", ("usr/share/debian-reference/*.html",), "GPL-2+"),
    Source("rst-markdown", "deb", "sphinx-doc", "5.3.0-4", (SPHINX_RST,), "BSD-2-clause"),
    Source("rst-markdown", "deb", "git-doc", "1:2.39.5-0+deb12u3", ("usr/share/doc/git-doc/*.txt",), "GPL-2"),
    Source("rst-markdown", "deb", "rust-src", "1.63.0+dfsg1-2", (RUST + "src/doc/*.md",),
           "Apache-2.0 or MIT"),
    Source("man-troff", "deb", "manpages", "6.03-2", (MAN_GZ,), "Linux-man-pages-copyleft"),
    Source("man-troff", "deb", "manpages-dev", "6.03-2", (MAN_GZ,), "Linux-man-pages-copyleft"),
    Source("xml", "deb", "docbook-xsl", "1.79.2+dfsg-2", (DOCBOOK + "*.xsl", DOCBOOK + "*.xml"),
           "DocBook-XSL (MIT-style)",
           exclude=(DOCBOOK + "common/*",)),  # common/: strings in 60 languages, Korean and Greek among them
    Source("json", "deb", "iso-codes", "4.15.0-1", ("usr/share/iso-codes/json/*.json",), "LGPL-2.1+"),
    Source("json", "npm", "mime-db", "1.52.0", ("db.json",), "MIT"),
    Source("csv", "deb", "ieee-data", "20220827.1", ("usr/share/ieee-data/*.csv",), "public-domain"),
    Source("lang-de", "deb", "manpages-de", "4.18.1-1", ("usr/share/man/de/*.gz",), "GPL-3+"),
    Source("lang-fr", "deb", "manpages-fr", "4.18.1-1", ("usr/share/man/fr/*.gz",), "GPL-3+"),
    Source("lang-ru", "deb", "manpages-ru", "4.18.1-1", ("usr/share/man/ru/*.gz",), "GPL-3+"),
    Source("lang-ja", "deb", "manpages-ja", "0.5.0.0.20221215+dfsg-1", (JA,), "as the original man pages"),
    Source("lang-zh", "deb", "manpages-zh", "1.6.4.0-1", ("usr/share/man/zh_*.gz",), "GFDL-1.2+, GPL-2+"),
    Source("perl", "deb", "perl-modules-5.36", "5.36.0-7+deb12u4", ("usr/share/perl/5.36.0/*.pm",),
           "Artistic or GPL-1+"),
    Source("sql", "deb", "postgresql-15", "15.20-0+deb12u1", ("usr/share/postgresql/15/*.sql",),
           "PostgreSQL"),
    Source("korean", "deb", "debian-faq-ko", "11.1", ("usr/share/doc/debian/FAQ/ko/*.html",),
           "Debian-FAQ (verbatim and modified copies under the same notice)"),
    Source("greek", "deb", "manpages-el", "4.18.1-1", ("usr/share/man/el/*.gz",), "GPL-3+"),
)  # fmt: skip


def packages(sources: tuple[Source, ...] = SOURCES) -> list[tuple[str, str, str]]:
    """Each (registry, package, version) once, in first-use order."""
    seen: dict[tuple[str, str], str] = {}
    for s in sources:
        seen.setdefault((s.registry, s.package), s.version)
    return [(registry, package, version) for (registry, package), version in seen.items()]
