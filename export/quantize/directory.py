"""Quantize an exported model directory (int8, weight-only int8w, or 4-bit weights int4) and keep the files
only if the BPC stays within bounds.

Reads everything it needs from the fp32 ONNX files (metadata, initial state), so it runs on a directory that
``lnrnn export`` wrote earlier as well (``lnrnn quantize DIR --data FILE [--precision int8w|int4]``) as
during an export.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from lnrnn.bpc import bits_per_byte
from lnrnn.contract import (
    PRECISION_FILES,
    QUANTIZED_PRECISIONS,
    SEQUENCE_FILE,
    SEQUENCE_GRAPH,
    STEP_FILE,
    STEP_GRAPH,
    ArtifactMetadata,
)
from lnrnn.errors import UserError
from lnrnn.export.graphs.onnx_export import get_metadata, set_metadata
from lnrnn.export.quantize import int4, weights
from lnrnn.export.quantize import scheme as q
from lnrnn.export.report import REPORT_FILE
from lnrnn.export.verify import runtime
from lnrnn.export.verify.checks import Check, Verification, check_graph

# precision -> how its files are written, what the report calls the scheme, and what got quantized
SCHEMES: dict[str, tuple[Callable[[Path, Path], None], str, Callable[[onnx.ModelProto], Any]]] = {
    "int8": (q.quantize_file, q.SCHEME, q.quantization_summary),
    "int8w": (weights.quantize_file, weights.SCHEME, weights.weight_summary),
    "int4": (int4.quantize_file, int4.SCHEME, int4.int4_summary),
}


def max_delta(precision: str) -> float:
    """The largest BPC(quantized) - BPC(fp32) that keeps ``precision``'s files (bits/byte)."""
    return int4.MAX_BPC_DELTA if precision == "int4" else q.MAX_BPC_DELTA


def quantize_kinds(quantize: str | Sequence[str] | None) -> tuple[str, ...]:
    """The precisions to write: None, one name, a comma-separated list ("int8,int8w") or a sequence."""
    if quantize is None:
        return ()
    names = quantize.split(",") if isinstance(quantize, str) else list(quantize)
    kinds = tuple(dict.fromkeys(n.strip() for n in names))
    if not kinds or any(k not in QUANTIZED_PRECISIONS for k in kinds):
        expected = ", ".join(QUANTIZED_PRECISIONS)
        raise UserError(
            f"unknown quantization {quantize!r}; expected one or more of {expected}, comma-separated"
        )
    return kinds


def drop_shape_hints(path: Path) -> None:
    """Remove ``value_info`` (intermediate shapes, Scan bodies included): hints ONNX Runtime infers again at
    load, worth 5% of a small model's file (the 2x64 GRU's int8 pair: 13.6 of 271.6 kB)."""
    model = onnx.load(str(path))
    for graph in weights.all_graphs(model.graph):
        del graph.value_info[:]
    onnx.save(model, str(path))


def read_metadata(path: Path) -> ArtifactMetadata:
    model = onnx.load(str(path), load_external_data=False)
    return get_metadata(model)


def quantize_dir(
    out: Path,
    data: bytes,
    fp32_bpc: float | None = None,
    precision: str = "int8",
    block_size: int | None = None,
    bound: float | None = None,
) -> tuple[dict[str, Any], Verification]:
    """Write ``precision``'s pair (``step.int8.onnx`` and ``sequence.int8.onnx``, or the int8w or int4 pair)
    beside the fp32 files of ``out`` and measure them on ``data``: BPC(quantized) - BPC(fp32) <= ``bound``
    (default ``max_delta(precision)``) keeps them, else they are deleted. ``block_size``: int4's blocks along
    K (default ``int4.BLOCK_SIZE``; small models lose less with smaller blocks).

    Returns the report's section for ``precision`` and the checks (structure problems are failures)."""
    if precision not in SCHEMES:
        raise ValueError(f"precision must be one of {', '.join(SCHEMES)}, got {precision!r}")
    write, scheme, summary = SCHEMES[precision]
    if block_size is not None:
        if precision != "int4" or block_size not in int4.BLOCK_SIZES:
            raise UserError(
                f"a block size is an int4 setting, one of {', '.join(map(str, int4.BLOCK_SIZES))}; "
                f"got {block_size} for {precision}"
            )
        write, scheme = functools.partial(int4.quantize_file, block_size=block_size), int4.scheme(block_size)
    if bound is not None and not bound > 0:
        raise UserError(f"the largest BPC delta to keep must be > 0 bits/byte, got {bound}")
    start = time.perf_counter()
    meta = {graph: read_metadata(out / src) for src, graph in ((STEP_FILE, "step"), (SEQUENCE_FILE, "seq"))}
    initial = np.asarray(meta["seq"].initial_state, dtype=np.float32)
    if fp32_bpc is None:
        fp32_bpc = bits_per_byte(runtime.document_nats(out / SEQUENCE_FILE, initial, data), len(data))
    step_file, sequence_file = PRECISION_FILES[precision]
    pairs = ((STEP_FILE, step_file, "step"), (SEQUENCE_FILE, sequence_file, "seq"))
    for src, dst, _ in pairs:
        write(out / src, out / dst)
        drop_shape_hints(out / dst)
    check = Verification()  # structure checks are reported, but a big delta is not an export failure
    check_graph(check, out / step_file, STEP_GRAPH)
    check_graph(check, out / sequence_file, SEQUENCE_GRAPH)
    bpc = bits_per_byte(runtime.document_nats(out / sequence_file, initial, data), len(data))
    delta = bpc - fp32_bpc
    bound = max_delta(precision) if bound is None else bound
    kept = bool(delta <= bound) and not check.failures
    quantized = {}
    for _, dst, graph in pairs:
        proto = onnx.load(str(out / dst))
        quantized[dst] = summary(proto)
        if kept:
            set_metadata(proto, dataclasses.replace(meta[graph], int8_bpc_delta=delta))
            onnx.save(proto, str(out / dst))
        else:
            (out / dst).unlink()
    verdict = "kept" if kept else "deleted"
    relation = "<=" if delta <= bound else ">"
    detail = f"{bpc:.6f} - {fp32_bpc:.6f} = {delta:+.2e} bits/byte ({relation} {bound})"
    check.checks.append(Check(f"{precision} BPC delta", True, f"{detail}; {precision} files {verdict}"))
    section = {
        "scheme": scheme,
        "bpc": bpc,
        "bpc_delta": delta,
        "max_delta": bound,
        "kept": kept,
        "quantized_ops": quantized,
        **({"block_size": block_size or int4.BLOCK_SIZE} if precision == "int4" else {}),
        "seconds": time.perf_counter() - start,
    }
    return section, check


def update_report(
    out: Path,
    data: bytes,
    precision: str = "int8",
    block_size: int | None = None,
    bound: float | None = None,
) -> tuple[dict[str, Any], list[str]]:
    """Quantize ``out`` again and replace ``precision``'s parts of its ``export_report.json`` (if any)."""
    section, check = quantize_dir(out, data, precision=precision, block_size=block_size, bound=bound)
    seconds = section.pop("seconds")
    path = out / REPORT_FILE
    if path.is_file():
        report = json.loads(path.read_text(encoding="utf-8"))
        report[precision] = section
        report["timings_s"]["quantize" if precision == "int8" else f"quantize_{precision}"] = seconds
        report["files"] = {p.name: p.stat().st_size for p in sorted(out.glob("*.onnx"))}
        ours = (f"{precision} ", *PRECISION_FILES[precision])  # this precision's checks, replaced
        kept = [c for c in report["checks"] if not c["name"].startswith(ours)]
        report["checks"] = kept + [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in check.checks]
        path.write_text(
            json.dumps(report, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8"
        )
    return section, [c.line() for c in check.checks]
