"""The checks that run inside one environment (a venv with pinned versions, or the aarch64 root).

Copied next to the environment by ``run.py`` and run with that environment's Python; it needs only the
standard library and an installed lnrnn (with onnxruntime and numpy; constriction for format 1). Two modes:

``make``   decode the golden format-2 archives (Python API and CLI), compress the texts again in every case
           below, compare each archive with the golden files and, with ``--reference``, with the archives
           another environment made from the same texts, and decode that environment's archives here.
``decode`` decode the archives another environment wrote (its ``manifest.json``) here: the other direction
           of the cross-decoding.

One line per check on stdout (``ok``, ``FAIL``, or ``info`` for format 1, whose floats are expected to
differ between versions and CPUs); everything also goes to ``manifest.json`` in ``--out``. Exit status 1 when
a format-2 check failed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from importlib import metadata, resources
from pathlib import Path
from typing import Any

GOLDEN_LAYOUT = (400, 2)  # block size, lanes: what tests/codec/golden/format2 was made with
GOLDEN_FILES = {
    "lighthouse.f2.neural": "lighthouse.neural.lnrz",
    "lighthouse.f2.adaptive": "lighthouse.adaptive.lnrz",
}
CLI_LAYOUT = (16 * 1024, 1)  # the CLI's default block size, and the one lane it picks for one block


@dataclass(frozen=True)
class Case:
    """One archive: which text, which format, adaptive mixing or not, and the layout."""

    name: str
    text: str  # file name in the texts folder
    version: int
    adaptive: bool
    block_size: int
    lanes: int
    cli: bool = False  # made with `lnrnn compress` instead of the Python API

    @property
    def checked(self) -> bool:
        """Format 2 must give the same bytes everywhere; format 1 is only recorded."""
        return self.version == 2


def cases(format1: bool, block_size: int) -> list[Case]:
    out = []
    for version in (2, 1) if format1 else (2,):
        for adaptive in (False, True):
            kind = "adaptive" if adaptive else "neural"
            out.append(
                Case(f"lighthouse.f{version}.{kind}", "lighthouse.txt", version, adaptive, *GOLDEN_LAYOUT)
            )
            # a larger text: several blocks in each lane, so the lanes' states and the mixer run for a while
            out.append(
                Case(f"shakespeare.f{version}.{kind}", "shakespeare.txt", version, adaptive, block_size, 2)
            )
            out.append(
                Case(
                    f"cli.lighthouse.f{version}.{kind}",
                    "lighthouse.txt",
                    version,
                    adaptive,
                    *CLI_LAYOUT,
                    True,
                )
            )
    return out


class Report:
    """Prints one line per check and keeps them for the manifest."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.checks: list[dict[str, Any]] = []

    def add(self, name: str, ok: bool | None, detail: str = "", seconds: float | None = None) -> None:
        status = "info" if ok is None else "ok" if ok else "FAIL"
        took = f" ({seconds:.1f} s)" if seconds is not None else ""
        print(f"[{self.label}] {status:4} {name}{': ' + detail if detail else ''}{took}", flush=True)
        self.checks.append({"name": name, "ok": ok, "detail": detail, "seconds": seconds})

    @property
    def failed(self) -> list[str]:
        return [c["name"] for c in self.checks if c["ok"] is False]


def sha(blob: bytes) -> str:
    return hashlib.sha256(blob).hexdigest()


def versions() -> dict[str, str]:
    import numpy as np
    import onnxruntime as ort

    from lnrnn.codec.integer import producer
    from lnrnn.codec.integer.products import integer_product

    try:
        coder = metadata.version("constriction")
    except metadata.PackageNotFoundError:
        coder = "not installed"
    return {
        "machine": platform.machine(),
        "python": platform.python_version(),
        "lnrnn": metadata.version("lnrnn"),
        "numpy": np.__version__,
        "onnxruntime": ort.__version__,
        "constriction": coder,
        "format2 producer": producer(),
        # which kernel computes format 2's matrix products here (OrtProduct: onnxruntime's MatMulInteger)
        "format2 products": type(integer_product(np.ones((4, 4)))).__name__,
        # the SIMD kernels numpy dispatches to here (qemu-user's default aarch64 CPU has ASIMD, SVE, ...)
        "numpy simd": " ".join(_simd()) or "baseline only",
    }


def _simd() -> list[str]:
    try:
        from numpy._core import _multiarray_umath as umath  # type: ignore[attr-defined]
    except ImportError:  # numpy 1.x
        from numpy.core import _multiarray_umath as umath
    return [f for f in umath.__cpu_dispatch__ if umath.__cpu_features__.get(f)]


def first_line(err: BaseException) -> str:
    text = str(err).strip()
    return f"{type(err).__name__}: {text.splitlines()[0] if text else ''}"


def decode(blob: bytes, graph: Any) -> tuple[bytes | None, str, float]:
    """(decoded bytes or None, the error's first line, seconds). The graph of the precision the header
    records: `lnrnn compress` writes format 1 with the int8 graph (its default precision, auto)."""
    from lnrnn.codec import StepGraph, decompress, unpack

    start = time.perf_counter()
    try:
        precision = unpack(blob)[0].precision
        if precision != graph.precision:
            graph = StepGraph.load(graph.model_dir, precision)
        return decompress(blob, graph), "", time.perf_counter() - start
    except Exception as err:  # what the codec raises for another version's format-1 floats, or anything
        return None, first_line(err), time.perf_counter() - start


def header_difference(ours: bytes, theirs: bytes) -> str:
    """Where two archives of the same text differ: the producer string (versions), the payloads, or both."""
    from lnrnn.codec import unpack

    (h1, p1), (h2, p2) = unpack(ours), unpack(theirs)
    parts = []
    if h1.producer != h2.producer:
        parts.append(f"producer {h1.producer!r} vs {h2.producer!r}")
    same = sum(a == b for a, b in zip(p1, p2, strict=False))
    parts.append(f"payloads {'equal' if p1 == p2 else f'differ ({same} of {len(p1)} blocks equal)'}")
    return "; ".join(parts)


def lnrnn_cli(*args: str) -> subprocess.CompletedProcess[bytes]:
    """`lnrnn ...`: the console script installed next to this Python."""
    return subprocess.run(
        [str(Path(sys.executable).parent / "lnrnn"), *args],
        capture_output=True,
        timeout=7200,
    )


def last_line(done: subprocess.CompletedProcess[bytes]) -> str:
    """The CLI's one-line error: the last line on stderr (onnxruntime may warn before it)."""
    lines = done.stderr.decode(errors="replace").strip().splitlines()
    return f"exit {done.returncode}: {lines[-1] if lines else ''}"


def compress_case(case: Case, data: bytes, text: Path, graph: Any, model: Path) -> tuple[bytes, str]:
    """The archive of one case, and why it could not be made (empty when it was)."""
    if case.cli:
        argv = ["compress", "-c", "--quiet", "--model", str(model), "--format", str(case.version), str(text)]
        done = lnrnn_cli(*argv, *(["--neural-only"] if not case.adaptive else []))
        return done.stdout, last_line(done) if done.returncode else ""
    from lnrnn.codec import compress

    try:
        blob = compress(
            data,
            graph,
            adaptive=case.adaptive,
            block_size=case.block_size,
            lanes=case.lanes,
            version=case.version,
        ).blob
    except Exception as err:  # format 1 without constriction (aarch64) fails here, by design
        return b"", first_line(err)
    return blob, ""


def make(args: argparse.Namespace) -> int:
    from lnrnn.codec import StepGraph, compress

    out, texts, golden = Path(args.out), Path(args.texts), Path(args.golden)
    out.mkdir(parents=True, exist_ok=True)
    env = versions()
    report = Report(args.label)
    report.add("versions", None, ", ".join(f"{k} {v}" for k, v in env.items()))
    model = Path(args.model) if args.model else Path(str(resources.files("lnrnn.models"))) / "default"
    graph = StepGraph.load(model, "fp32")
    lighthouse = (texts / "lighthouse.txt").read_bytes()

    # 1. the committed golden archives decode here, with the API and with `lnrnn decompress`
    from lnrnn.codec import unpack

    for file in GOLDEN_FILES.values():
        blob = (golden / file).read_bytes()
        fingerprint = unpack(blob)[0].fingerprint
        report.add(f"model fingerprint = {file}'s", fingerprint == graph.fingerprint, fingerprint.hex())
        data, error, seconds = decode(blob, graph)
        report.add(f"golden {file} decodes (API)", data == lighthouse, error, seconds)
        start = time.perf_counter()
        done = lnrnn_cli("decompress", "-c", "--model", str(model), str(golden / file))
        detail = last_line(done) if done.returncode else ""
        ok = done.returncode == 0 and done.stdout == lighthouse
        report.add(f"golden {file} decodes (lnrnn decompress)", ok, detail, time.perf_counter() - start)

    # 2. the same cases compressed again here: against the golden files and the reference environment
    reference = json.loads((Path(args.reference) / "manifest.json").read_text()) if args.reference else None
    archives: dict[str, dict[str, Any]] = {}
    for case in cases(not args.no_format1, args.block_size):
        text = texts / case.text
        data = text.read_bytes()
        start = time.perf_counter()
        blob, error = compress_case(case, data, text, graph, model)
        seconds = time.perf_counter() - start
        if error:
            report.add(f"compress {case.name}", False if case.checked else None, error, seconds)
            continue
        (out / f"{case.name}.lnrz").write_bytes(blob)
        archives[case.name] = {
            "file": f"{case.name}.lnrz",
            "text": case.text,
            "version": case.version,
            "sha256": sha(blob),
            "bytes": len(blob),
            "seconds": round(seconds, 2),
        }
        report.add(f"compress {case.name}", True, f"{len(blob)} bytes, sha256 {sha(blob)[:16]}", seconds)
        if case.name in GOLDEN_FILES:
            expected = (golden / GOLDEN_FILES[case.name]).read_bytes()
            detail = "" if blob == expected else header_difference(blob, expected)
            report.add(
                f"{case.name} = golden {GOLDEN_FILES[case.name]} byte for byte", blob == expected, detail
            )
        if case.cli and case.version == 2:  # the CLI writes what the API writes with the same layout
            same = compress(
                data, graph, adaptive=case.adaptive, block_size=case.block_size, lanes=case.lanes, version=2
            )
            report.add(
                f"{case.name} = API archive (layout {case.block_size}x{case.lanes})", same.blob == blob
            )
        if reference is not None and case.name in reference["archives"]:
            theirs = (Path(args.reference) / reference["archives"][case.name]["file"]).read_bytes()
            equal = blob == theirs
            # format 1 is recorded, not judged: its detail says "identical" or how the archives differ
            detail = ("" if case.checked else "identical") if equal else header_difference(blob, theirs)
            report.add(f"{case.name} = reference byte for byte", equal if case.checked else None, detail)

    # 3. the reference environment's archives decode here (and, without a reference, ours round-trip)
    source = Path(args.reference) if reference is not None else out
    made = reference["archives"] if reference is not None else archives
    for name, entry in made.items():
        data, error, seconds = decode((source / entry["file"]).read_bytes(), graph)
        expected = (texts / entry["text"]).read_bytes()
        whose = "reference" if reference is not None else "own"
        ok = data == expected
        if not ok and not error:
            error = "decoded to other bytes"
        report.add(f"decode {whose} {name}", ok if entry["version"] == 2 else (ok or None), error, seconds)

    manifest = {"label": args.label, "env": env, "archives": archives, "checks": report.checks}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return 1 if report.failed else 0


def decode_other(args: argparse.Namespace) -> int:
    """Decode another environment's archives here; those byte-identical to ours (``--same-as``, a manifest
    whose archives were decoded already) are not decoded twice."""
    from lnrnn.codec import StepGraph

    other, texts = Path(args.dir), Path(args.texts)
    manifest = json.loads((other / "manifest.json").read_text())
    known: set[str] = set()
    if args.same_as:
        known = {a["sha256"] for a in json.loads(Path(args.same_as).read_text())["archives"].values()}
    model = Path(args.model) if args.model else Path(str(resources.files("lnrnn.models"))) / "default"
    graph = StepGraph.load(model, "fp32")
    report = Report(args.label)
    report.add("versions", None, ", ".join(f"{k} {v}" for k, v in versions().items()))
    for name, entry in manifest["archives"].items():
        if entry["sha256"] in known:
            report.add(
                f"decode {manifest['label']} {name}", True, "byte-identical to our own archive (decoded)"
            )
            continue
        data, error, seconds = decode((other / entry["file"]).read_bytes(), graph)
        ok = data == (texts / entry["text"]).read_bytes()
        if not ok and not error:
            error = "decoded to other bytes"
        report.add(
            f"decode {manifest['label']} {name}",
            ok if entry["version"] == 2 else (ok or None),
            error,
            seconds,
        )
    Path(args.out).write_text(
        json.dumps({"label": args.label, "of": manifest["label"], "checks": report.checks}, indent=1)
    )
    return 1 if report.failed else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    p = sub.add_parser("make", help="decode the golden archives, compress every case, compare, cross-decode")
    p.add_argument("--label", required=True)
    p.add_argument("--texts", required=True, help="folder with lighthouse.txt and shakespeare.txt")
    p.add_argument("--golden", required=True, help="tests/codec/golden/format2")
    p.add_argument("--out", required=True)
    p.add_argument("--reference", help="folder of another environment's `make` output to compare with")
    p.add_argument("--model", help="model directory (default: the installed package's models/default)")
    p.add_argument("--no-format1", action="store_true", help="format 2 only (no constriction here)")
    p.add_argument("--block-size", type=int, default=4096, help="block size for shakespeare.txt (2 lanes)")
    p.set_defaults(run=make)
    p = sub.add_parser("decode", help="decode another environment's archives here")
    p.add_argument("--label", required=True)
    p.add_argument("--dir", required=True, help="that environment's `make` output")
    p.add_argument("--texts", required=True)
    p.add_argument("--out", required=True, help="JSON file for the results")
    p.add_argument("--same-as", help="our own manifest.json: archives with the same bytes are skipped")
    p.add_argument("--model")
    p.set_defaults(run=decode_other)
    args = parser.parse_args()
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
