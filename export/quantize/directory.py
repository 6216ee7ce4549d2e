"""Quantize an exported model directory to int8 and keep the files only if the BPC stays within bounds.

Reads everything it needs from the fp32 ONNX files (metadata, initial state), so it runs on a directory that
``lnrnn export`` wrote earlier as well (``lnrnn quantize DIR --data FILE``) as during an export.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from lnrnn.bpc import bits_per_byte
from lnrnn.contract import (
    SEQUENCE_FILE,
    SEQUENCE_GRAPH,
    SEQUENCE_INT8_FILE,
    STEP_FILE,
    STEP_GRAPH,
    STEP_INT8_FILE,
    ArtifactMetadata,
)
from lnrnn.export.graphs.onnx_export import get_metadata, set_metadata
from lnrnn.export.quantize import scheme as q
from lnrnn.export.report import REPORT_FILE
from lnrnn.export.verify import runtime
from lnrnn.export.verify.checks import Check, Verification, check_graph


def read_metadata(path: Path) -> ArtifactMetadata:
    model = onnx.load(str(path), load_external_data=False)
    return get_metadata(model)


def quantize_dir(
    out: Path, data: bytes, fp32_bpc: float | None = None
) -> tuple[dict[str, Any], Verification]:
    """Write ``step.int8.onnx`` and ``sequence.int8.onnx`` beside the fp32 files of ``out`` and measure them
    on ``data``: BPC(int8) - BPC(fp32) <= ``q.MAX_BPC_DELTA`` keeps them, else they are deleted.

    Returns the report's int8 section and the checks (structure problems are failures)."""
    start = time.perf_counter()
    meta = {graph: read_metadata(out / src) for src, graph in ((STEP_FILE, "step"), (SEQUENCE_FILE, "seq"))}
    initial = np.asarray(meta["seq"].initial_state, dtype=np.float32)
    if fp32_bpc is None:
        fp32_bpc = bits_per_byte(runtime.document_nats(out / SEQUENCE_FILE, initial, data), len(data))
    pairs = ((STEP_FILE, STEP_INT8_FILE, "step"), (SEQUENCE_FILE, SEQUENCE_INT8_FILE, "seq"))
    for src, dst, _ in pairs:
        q.quantize_file(out / src, out / dst)
    check = Verification()  # int8 structure checks are reported, but a big delta is not an export failure
    check_graph(check, out / STEP_INT8_FILE, STEP_GRAPH)
    check_graph(check, out / SEQUENCE_INT8_FILE, SEQUENCE_GRAPH)
    int8_bpc = bits_per_byte(runtime.document_nats(out / SEQUENCE_INT8_FILE, initial, data), len(data))
    delta = int8_bpc - fp32_bpc
    kept = bool(delta <= q.MAX_BPC_DELTA) and not check.failures
    quantized = {}
    for _, dst, graph in pairs:
        proto = onnx.load(str(out / dst))
        quantized[dst] = q.quantization_summary(proto)
        if kept:
            set_metadata(proto, dataclasses.replace(meta[graph], int8_bpc_delta=delta))
            onnx.save(proto, str(out / dst))
        else:
            (out / dst).unlink()
    verdict = "kept" if kept else "deleted"
    relation = "<=" if delta <= q.MAX_BPC_DELTA else ">"
    detail = f"{int8_bpc:.6f} - {fp32_bpc:.6f} = {delta:+.2e} bits/byte ({relation} {q.MAX_BPC_DELTA})"
    check.checks.append(Check("int8 BPC delta", True, f"{detail}; int8 files {verdict}"))
    section = {
        "scheme": q.SCHEME,
        "bpc": int8_bpc,
        "bpc_delta": delta,
        "max_delta": q.MAX_BPC_DELTA,
        "kept": kept,
        "quantized_ops": quantized,
        "seconds": time.perf_counter() - start,
    }
    return section, check


def update_report(out: Path, data: bytes) -> tuple[dict[str, Any], list[str]]:
    """Quantize ``out`` again and replace the int8 parts of its ``export_report.json`` (if there is one)."""
    section, check = quantize_dir(out, data)
    seconds = section.pop("seconds")
    path = out / REPORT_FILE
    if path.is_file():
        report = json.loads(path.read_text(encoding="utf-8"))
        report["int8"] = section
        report["timings_s"]["quantize"] = seconds
        report["files"] = {p.name: p.stat().st_size for p in sorted(out.glob("*.onnx"))}
        ours = {c.name for c in check.checks}
        kept = [c for c in report["checks"] if c["name"] not in ours and "int8" not in c["name"]]
        report["checks"] = kept + [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in check.checks]
        path.write_text(
            json.dumps(report, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8"
        )
    return section, [c.line() for c in check.checks]
