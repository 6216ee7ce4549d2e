"""Scoring throughput (bytes/s): PyTorch eager vs the exported ONNX graphs on ONNX Runtime, batch 1 and 32.

Random weights (speed does not depend on the weight values). Every method scores the same bytes:
batch 1 is one stream of the text, batch B splits the text into B streams of ``len(text) // B`` bytes.
A cell whose run would take longer than ``budget_s`` is measured on a prefix of each stream whose length is
chosen from a calibration run, and the row says so (``prefix``): bytes/s of a recurrent scorer does not
depend on the position in the text, so the prefix rate is the full-text rate.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import torch

from bench.common import repeat
from lnrnn.contract import BOS_ID, SEQUENCE_FILE, SEQUENCE_INT8_FILE, STEP_FILE
from lnrnn.export.api import export_model
from lnrnn.export.errors import VerificationError
from lnrnn.export.quantize import scheme as q
from lnrnn.train.model import ByteLM, ModelConfig

EAGER = "pytorch-eager"
STEP_LOOP = "ort-step-loop"
GENERIC = "ort-generic-scan"
FAST = "ort-fast-scan"
FAST_INT8 = "ort-fast-scan-int8"
METHODS = (EAGER, STEP_LOOP, GENERIC, FAST, FAST_INT8)
LABELS = {
    EAGER: "PyTorch eager (inference_mode, hoisted)",
    STEP_LOOP: "ORT step.onnx, Python loop",
    GENERIC: "ORT generic Scan",
    FAST: "ORT fast Scan",
    FAST_INT8: "ORT fast Scan int8",
}
CALIBRATION_TOKENS = 256

Runner = Callable[[np.ndarray], Callable[[], object]]  # tokens [B, T] -> a no-argument call to time


@dataclass
class Prepared:
    """One random model and its exported directories."""

    cell: str
    hidden: int
    model: ByteLM
    generic_dir: Path
    fast_dir: Path
    int8_source: str  # "export" (kept by export_model) or "bench" (quantized here: export dropped it)
    int8_bpc_delta: float | None
    export_s: float
    verify_failures: list[str]


def prepare(cell: str, hidden: int, tmp: Path, verify_data: bytes) -> Prepared:
    """A random 1-layer LN model; export generic, and fast + int8 (quantized here if export dropped it)."""
    torch.manual_seed(0)
    model = ByteLM(ModelConfig(cell=cell, norm="layer", layers=1, hidden=hidden)).eval()
    start = time.perf_counter()
    generic_dir, fast_dir = tmp / f"{cell}{hidden}-generic", tmp / f"{cell}{hidden}-fast"
    failures: list[str] = []
    try:
        export_model(model, generic_dir, sequence="generic", verify_data=verify_data)
    except VerificationError as err:  # random LSTM dynamics are chaotic: fp32 drift, files still written
        failures.append(str(err))
    try:
        report = export_model(model, fast_dir, sequence="fast", quantize="int8", verify_data=verify_data)
    except VerificationError as err:
        failures.append(str(err))
        report = err.report
    source = "export"
    if not (fast_dir / SEQUENCE_INT8_FILE).exists():  # dropped: random weights can exceed the BPC budget
        q.quantize_file(fast_dir / SEQUENCE_FILE, fast_dir / SEQUENCE_INT8_FILE)
        source = "bench"
    delta = report.int8["bpc_delta"] if report.int8 else None
    seconds = time.perf_counter() - start
    return Prepared(cell, hidden, model, generic_dir, fast_dir, source, delta, seconds, failures)


def _session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def runners(p: Prepared) -> dict[str, Runner]:
    """Each method as tokens -> a call; sessions are created once per method."""
    model = p.model

    def eager(tokens: np.ndarray) -> Callable[[], object]:
        ids = torch.from_numpy(tokens)
        state = model.init_state(tokens.shape[0]).contiguous()

        def run() -> object:
            with torch.inference_mode():
                logits, _ = model(ids, state)
                logp = torch.log_softmax(logits[:, :-1], dim=-1)
                return logp.gather(2, ids[:, 1:, None])

        return run

    def sequence(path: Path) -> Runner:
        sess = _session(path)

        def make(tokens: np.ndarray) -> Callable[[], object]:
            state = _state(model, tokens.shape[0])
            return lambda: sess.run(None, {"tokens": tokens, "state": state})

        return make

    step_sess = _session(p.fast_dir / STEP_FILE)

    def step_loop(tokens: np.ndarray) -> Callable[[], object]:
        state0 = _state(model, tokens.shape[0])
        columns = [np.ascontiguousarray(tokens[:, t]) for t in range(tokens.shape[1])]

        def run() -> object:
            s = state0
            for col in columns:
                _, s = step_sess.run(None, {"token": col, "state": s})
            return s

        return run

    return {
        EAGER: eager,
        STEP_LOOP: step_loop,
        GENERIC: sequence(p.generic_dir / SEQUENCE_FILE),
        FAST: sequence(p.fast_dir / SEQUENCE_FILE),
        FAST_INT8: sequence(p.fast_dir / SEQUENCE_INT8_FILE),
    }


def _state(model: ByteLM, batch: int) -> np.ndarray:
    return model.init_state(batch).detach().numpy().astype(np.float32).copy()


def streams(text: bytes, batch: int) -> np.ndarray:
    """[BOS, bytes...] for ``batch`` equal streams of the text: int64 [B, len(text) // B + 1]."""
    n = len(text) // batch
    data = np.frombuffer(text[: n * batch], dtype=np.uint8).reshape(batch, n).astype(np.int64)
    return np.concatenate([np.full((batch, 1), BOS_ID, dtype=np.int64), data], axis=1)


def measure_method(make: Runner, tokens: np.ndarray, runs: int, budget_s: float) -> dict[str, Any]:
    """Calibrate on a short prefix, pick the longest prefix that fits ``budget_s`` per run, then time it."""
    batch, full = tokens.shape[0], tokens.shape[1] - 1
    calib = min(full, CALIBRATION_TOKENS)
    fn = make(tokens[:, : calib + 1])
    fn()  # first call: allocations, thread pools
    start = time.perf_counter()
    fn()
    per_token = (time.perf_counter() - start) / calib
    n = full if per_token * full <= budget_s else max(calib, int(budget_s / per_token))
    timing = repeat(make(tokens[:, : n + 1]), runs=runs, warmup=1)
    scored = batch * n
    return {
        "batch": batch,
        "bytes_scored": scored,
        "bytes_total": batch * full,
        "prefix": n < full,
        "bytes_per_s": scored / timing["median_s"],
        "bytes_per_s_min": scored / timing["max_s"],
        "bytes_per_s_max": scored / timing["min_s"],
        "us_per_step": 1e6 * timing["median_s"] / n,
        **timing,
    }


def measure(
    text: bytes,
    tmp: Path,
    *,
    cells: tuple[str, ...],
    hiddens: tuple[int, ...],
    batches: tuple[int, ...],
    runs: int,
    budget_s: float,
    verify_bytes: int = 256,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """All rows: per (cell, H, batch) every method, with its ratio to PyTorch eager."""
    rows: list[dict[str, Any]] = []
    models: list[dict[str, Any]] = []
    for hidden in hiddens:
        for cell in cells:
            p = prepare(cell, hidden, tmp, text[:verify_bytes])
            models.append(
                {
                    "cell": cell,
                    "hidden": hidden,
                    "parameters": p.model.num_parameters(),
                    "export_s": p.export_s,
                    "int8_source": p.int8_source,
                    "int8_bpc_delta_random_weights": p.int8_bpc_delta,
                    "verify_bytes": verify_bytes,
                    "export_verify_failures": p.verify_failures,
                    "files": {f.name: f.stat().st_size for f in sorted(p.fast_dir.glob("*.onnx"))},
                }
            )
            make = runners(p)
            for batch in batches:
                tokens = streams(text, batch)
                base: float | None = None
                for method in METHODS:
                    row = {"cell": cell, "hidden": hidden, "method": method, "label": LABELS[method]}
                    row |= measure_method(make[method], tokens, runs, budget_s)
                    base = row["bytes_per_s"] if method == EAGER else base
                    row["vs_eager"] = row["bytes_per_s"] / base if base else math.nan
                    rows.append(row)
                    log(
                        f"  scoring {cell} H={hidden} B={batch} {method}: {row['bytes_per_s']:,.0f} B/s "
                        f"({row['vs_eager']:.2f}x eager{', prefix' if row['prefix'] else ''})"
                    )
    return {
        "text_bytes": len(text),
        "runs": runs,
        "budget_s_per_run": budget_s,
        "torch_threads": torch.get_num_threads(),
        "ort_intra_op_threads": "default (0 = one per core)",
        "weights": "random (seeded); speed does not depend on the weight values",
        "models": models,
        "rows": rows,
    }
