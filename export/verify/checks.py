"""Verify an exported model directory against the PyTorch model (after optimum-onnx's ``_run_validation``).

Every check runs; failures are collected as typed errors and raised once by the caller. Checks:
``onnx.checker`` (full_check), exact input/output names, parity with PyTorch on untraced shapes (B=3, T=17)
for the step graph per step and for the sequence graph, the step graph run T times against the sequence
graph, and BPC on the verify data. The default verify data is ``verify_sample.txt``: bytes 0..10240 of
Tiny Shakespeare (Karpathy's char-rnn ``input.txt``; Shakespeare's text is public domain).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
from onnxruntime.capi import onnxruntime_pybind11_state as ort_state

from lnrnn.bpc import bits_per_byte
from lnrnn.contract import (
    SEQUENCE_GRAPH,
    SEQUENCE_OUTPUTS,
    STEP_GRAPH,
    VOCAB_SIZE,
    GraphSpec,
    tensor_problems,
)
from lnrnn.export.errors import (
    CheckerError,
    ExportCheckError,
    InputNameError,
    OutputNameError,
    ShapeError,
    ToleranceError,
)
from lnrnn.export.verify import reference, runtime
from lnrnn.train.model import ByteLM

ATOL_LOGPROB = 1e-4  # max |Δ log-prob| ONNX vs PyTorch (measured: GRU < 5e-5; LSTM only at T <= 50)
ATOL_STATE = 1e-4
BPC_TOL = 1e-4  # bits/byte on the verify data
VERIFY_BATCH, VERIFY_TIME = 3, 17  # untraced shapes (graphs are traced at B=2, T=5)
VERIFY_SEED = 0
ORT_ERRORS = (ort_state.Fail, ort_state.InvalidArgument, ort_state.RuntimeException, ort_state.InvalidGraph)


def default_verify_data() -> bytes:
    return resources.files("lnrnn.export.verify").joinpath("verify_sample.txt").read_bytes()


@dataclass
class Check:
    name: str
    ok: bool
    detail: str

    def line(self) -> str:
        return f"-[{'✓' if self.ok else 'x'}] {self.name}: {self.detail}"


@dataclass
class Verification:
    checks: list[Check] = field(default_factory=list)
    failures: list[ExportCheckError] = field(default_factory=list)
    max_abs_diff: dict[str, float] = field(default_factory=dict)
    bpc: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def record(self, name: str, ok: bool, detail: str, error: type[ExportCheckError]) -> bool:
        self.checks.append(Check(name, ok, detail))
        if not ok:
            self.failures.append(error(f"{name}: {detail}"))
        return ok

    def close(self, name: str, key: str, got: np.ndarray, want: np.ndarray, atol: float) -> None:
        """Shape check, then max |Δ| <= atol (NaN counts as a failure)."""
        if got.shape != want.shape:
            self.record(name, False, f"shape {got.shape} != PyTorch {want.shape}", ShapeError)
            return
        diff = float(np.max(np.abs(got.astype(np.float64) - want))) if got.size else 0.0
        self.max_abs_diff[key] = max(self.max_abs_diff.get(key, 0.0), diff)
        ok = bool(np.isfinite(diff) and diff <= atol)
        self.record(name, ok, f"max |Δ| {diff:.2e} {'<=' if ok else '>'} {atol:.0e}", ToleranceError)


def check_graph(v: Verification, path: Path, spec: GraphSpec) -> bool:
    """``onnx.checker`` (full_check) and the inputs and outputs the contract declares, of one file."""
    name = path.name
    try:
        onnx.checker.check_model(onnx.load(str(path)), full_check=True)
        ok = v.record(f"{name} onnx.checker", True, "full_check passed", CheckerError)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as err:
        ok = v.record(f"{name} onnx.checker", False, _first_line(err), CheckerError)
    try:
        sess = runtime.open_session(path)
    except ORT_ERRORS as err:
        return v.record(f"{name} onnxruntime", False, f"cannot load: {_first_line(err)}", CheckerError)
    for kind, want, got, error in (
        ("inputs", spec.inputs, sess.get_inputs(), InputNameError),
        ("outputs", spec.outputs, sess.get_outputs(), OutputNameError),
    ):
        problems = tensor_problems(kind, want, got)
        detail = "; ".join(problems) if problems else f"{[g.name for g in got]} as the contract declares"
        ok &= v.record(f"{name} {kind}", not problems, detail, error)
    return ok


def verify_export(
    model: ByteLM,
    step_path: Path,
    sequence_path: Path,
    verify_data: bytes,
    *,
    batch: int = VERIFY_BATCH,
    time_steps: int = VERIFY_TIME,
) -> Verification:
    """Run every check on ``step.onnx`` and ``sequence.onnx`` of ``model``; never raises on a failed check."""
    start = time.perf_counter()
    v = Verification()
    names_ok = check_graph(v, step_path, STEP_GRAPH)
    names_ok &= check_graph(v, sequence_path, SEQUENCE_GRAPH)
    if names_ok:  # running graphs with wrong names would only add noise
        step, seq = runtime.open_session(step_path), runtime.open_session(sequence_path)
        rng = np.random.default_rng(VERIFY_SEED)
        tokens = rng.integers(0, VOCAB_SIZE, size=(batch, time_steps), dtype=np.int64)
        init = model.init_state(batch).detach().numpy()
        state = (init + 0.1 * rng.standard_normal(init.shape)).astype(np.float32)  # exercise the state input
        try:
            _parity(v, model, step, seq, sequence_path.name, tokens, state)
        except ORT_ERRORS as err:  # e.g. an axis specialised to the traced size
            v.record(
                f"parity (B={batch}, T={time_steps})", False, f"ONNX Runtime: {_first_line(err)}", ShapeError
            )
        try:
            v.bpc = bpc_parity(v, model, seq, verify_data)
        except ORT_ERRORS as err:
            v.record("BPC on verify data", False, f"ONNX Runtime: {_first_line(err)}", ShapeError)
    v.seconds = time.perf_counter() - start
    return v


def _parity(
    v: Verification,
    model: ByteLM,
    step: ort.InferenceSession,
    seq: ort.InferenceSession,
    seq_name: str,
    tokens: np.ndarray,
    state: np.ndarray,
) -> None:
    """Step graph per step and sequence graph vs PyTorch; the step graph run T times vs the sequence graph."""
    shape = f"B={tokens.shape[0]}, T={tokens.shape[1]}"
    want_lp, want_states = reference.step_reference(model, tokens, state)
    got_lp, got_states, s = [], [], state
    for t in range(tokens.shape[1]):
        lp, s = runtime.run_step(step, tokens[:, t], s)
        got_lp.append(lp)
        got_states.append(s)
    v.close(
        f"step.onnx logprobs per step ({shape})", "step_logprobs", np.stack(got_lp), want_lp, ATOL_LOGPROB
    )
    v.close(
        f"step.onnx state per step ({shape})", "step_state", np.stack(got_states), want_states, ATOL_STATE
    )

    got = runtime.scorer(seq, state[:, 0]).sequence(tokens, state)
    want = reference.sequence_reference(model, tokens, state)
    step_token_lp = np.take_along_axis(np.stack(got_lp[:-1], 1), tokens[:, 1:, None], axis=2)[..., 0]
    from_steps = (step_token_lp, got_lp[-1], s)
    for key, g, w, w_step in zip(SEQUENCE_OUTPUTS, got, want, from_steps, strict=True):
        atol = ATOL_STATE if key == "state_out" else ATOL_LOGPROB
        v.close(f"{seq_name} {key} ({shape})", f"sequence_{key}", g, w, atol)
        v.close(
            f"step.onnx x{tokens.shape[1]} vs {seq_name} {key}",
            f"step_loop_vs_sequence_{key}",
            g,
            w_step,
            atol,
        )


def _first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


def bpc_parity(v: Verification, model: ByteLM, seq: ort.InferenceSession, data: bytes) -> dict[str, Any]:
    """BPC of ``data`` by PyTorch and by the sequence graph (chunked scoring); |Δ| <= BPC_TOL."""
    t0 = time.perf_counter()
    torch_bpc = bits_per_byte(reference.document_nats(model, data), len(data))
    t1 = time.perf_counter()
    init = model.initial_state.detach().numpy()
    onnx_bpc = bits_per_byte(runtime.document_nats(seq, init, data), len(data))  # the serving scorer
    t2 = time.perf_counter()
    diff = abs(onnx_bpc - torch_bpc)
    v.max_abs_diff["bpc"] = diff
    ok = bool(np.isfinite(diff) and diff <= BPC_TOL)
    detail = (
        f"torch {torch_bpc:.6f} vs onnx {onnx_bpc:.6f}, |Δ| {diff:.2e} {'<=' if ok else '>'} {BPC_TOL:.0e}"
    )
    v.record(f"BPC on {len(data)} verify bytes", ok, detail, ToleranceError)
    return {
        "torch": torch_bpc,
        "onnx": onnx_bpc,
        "abs_diff": diff,
        "n_bytes": len(data),
        "torch_seconds": t1 - t0,
        "onnx_seconds": t2 - t1,
    }
