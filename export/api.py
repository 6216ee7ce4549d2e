"""Public Python API of the export stage: ``export_model`` and ``export_run``."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import onnx

from lnrnn import __version__
from lnrnn.contract import (
    PRECISION_FILES,
    QUANTIZED_PRECISIONS,
    SEQUENCE_FILE,
    STEP_FILE,
    ArtifactConfig,
    ArtifactMetadata,
)
from lnrnn.errors import UserError
from lnrnn.export.errors import ExportCheckError, VerificationError
from lnrnn.export.graphs.onnx_export import EXPORTER, set_metadata
from lnrnn.export.graphs.sequence_fast import build_fast
from lnrnn.export.graphs.sequence_generic import build_generic
from lnrnn.export.graphs.step import build_step
from lnrnn.export.quantize import scheme as q
from lnrnn.export.quantize.directory import quantize_dir, quantize_kinds
from lnrnn.export.report import ExportReport
from lnrnn.export.verify.checks import default_verify_data, verify_export
from lnrnn.train.model import ByteLM

SEQUENCE_KINDS = ("fast", "generic")


def artifact_metadata(
    model: ByteLM, valid_bpc: float | None, train_data: str, graph: str, int8_bpc_delta: float | None = None
) -> ArtifactMetadata:
    cfg = model.config
    config = ArtifactConfig(
        cell=cfg.cell,
        norm=cfg.norm,
        layers=cfg.layers,
        hidden=cfg.hidden,
        embedding=cfg.embedding_size,
        parameters=model.num_parameters(),
    )
    initial = model.initial_state.detach().double().tolist()
    return ArtifactMetadata(config, initial, valid_bpc, train_data, __version__, graph, int8_bpc_delta)


def export_model(
    model: ByteLM,
    out_dir: str | Path,
    *,
    sequence: str = "fast",
    valid_bpc: float | None = None,
    train_data: str = "",
    quantize: str | Sequence[str] | None = None,
    verify_data: bytes | None = None,
) -> ExportReport:
    """Write ``step.onnx`` and ``sequence.onnx`` (+ the quantized files of each precision in ``quantize``:
    any of "int8", "int8w" and "int4") of ``model`` into ``out_dir``, then verify.

    ``verify_data`` defaults to the packaged 10 kB sample. The report is always written to
    ``out_dir/export_report.json``; if any check failed, :class:`VerificationError` is raised afterwards with
    every typed failure in ``.failures`` and the report in ``.report``.
    """
    if sequence not in SEQUENCE_KINDS:
        raise UserError(f"unknown sequence graph {sequence!r}; expected one of {', '.join(SEQUENCE_KINDS)}")
    kinds = quantize_kinds(quantize)
    data = default_verify_data() if verify_data is None else bytes(verify_data)
    if not data:
        raise UserError("verify data is empty; it needs at least one byte")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    was_training = model.training
    model.eval()
    try:
        report, failures = _export(model, out, sequence, valid_bpc, train_data, kinds, data)
    finally:
        model.train(was_training)
    report.write(out)
    if failures:
        raise VerificationError(failures, report)
    return report


def export_run(run_dir: str | Path, out_dir: str | Path, **kw: Any) -> ExportReport:
    """Export the best checkpoint of a training run (or a checkpoint file); see :func:`export_model`."""
    from lnrnn.train.checkpoint import load_model

    model, meta = load_model(Path(run_dir))
    valid_bpc = meta.get("valid_bpc")
    train_data = meta.get("train_data", "")
    kw.setdefault("valid_bpc", float(valid_bpc) if isinstance(valid_bpc, int | float) else None)
    kw.setdefault("train_data", train_data if isinstance(train_data, str) else json.dumps(train_data))
    return export_model(model, out_dir, **kw)


def _export(
    model: ByteLM,
    out: Path,
    sequence: str,
    valid_bpc: float | None,
    train_data: str,
    quantize: tuple[str, ...],
    data: bytes,
) -> tuple[ExportReport, list[ExportCheckError]]:
    report = ExportReport(str(out), model.config.to_dict(), sequence, EXPORTER)
    t0 = time.perf_counter()
    step = build_step(model)
    t1 = time.perf_counter()
    seq = build_fast(model) if sequence == "fast" else build_generic(step)
    t2 = time.perf_counter()
    set_metadata(step, artifact_metadata(model, valid_bpc, train_data, "step"))
    set_metadata(seq, artifact_metadata(model, valid_bpc, train_data, f"sequence-{sequence}"))
    step_path, seq_path = out / STEP_FILE, out / SEQUENCE_FILE
    onnx.save(step, str(step_path))
    onnx.save(seq, str(seq_path))
    for kind in QUANTIZED_PRECISIONS:  # never leave quantized files of an older export
        for stale in PRECISION_FILES[kind]:
            (out / stale).unlink(missing_ok=True)
    report.timings_s |= {"export_step": t1 - t0, "export_sequence": t2 - t1}
    report.layer_norm_nodes = {
        STEP_FILE: count_ops(step, "LayerNormalization"),
        SEQUENCE_FILE: count_ops(seq, "LayerNormalization"),
    }

    v = verify_export(model, step_path, seq_path, data)
    report.timings_s["verify"] = v.seconds
    report.max_abs_diff, report.bpc = v.max_abs_diff, v.bpc
    for kind in quantize if not v.failures else ():
        section, checks = quantize_dir(out, data, float(v.bpc["onnx"]), precision=kind)
        report.timings_s["quantize" if kind == "int8" else f"quantize_{kind}"] = section.pop("seconds")
        setattr(report, kind, section)
        v.checks.extend(checks.checks)
        v.failures.extend(checks.failures)
    report.files = {p.name: p.stat().st_size for p in sorted(out.glob("*.onnx"))}
    report.checks = [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in v.checks]
    report.failures = [f"{type(f).__name__}: {f}" for f in v.failures]
    report.ok = not v.failures
    return report, v.failures


def count_ops(model: onnx.ModelProto, op_type: str) -> int:
    """Nodes of ``op_type`` in the main graph and every sub-graph."""
    return sum(counts.get(op_type, 0) for counts in q.op_counts(model).values())
