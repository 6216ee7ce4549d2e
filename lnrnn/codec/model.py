"""The step graph the codec runs on both sides: its bytes, its fingerprint and one single-thread session.

Always the CPU provider with one intra-op thread: the encoder and the decoder must compute the same
floats, and a GPU or a thread pool may not. One session serves both lanes: with one intra-op thread each
``run`` computes in its calling thread, and ONNX Runtime releases the GIL while it does.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from lnrnn.codec.container import FINGERPRINT_BYTES
from lnrnn.codec.errors import ModelFileError
from lnrnn.contract import (
    PRECISION_FILES,
    STEP_GRAPH,
    STEP_INPUTS,
    STEP_INT8_FILE,
    STEP_OUTPUTS,
    ArtifactMetadata,
    ContractError,
    graph_problems,
)

PRECISIONS = ("auto", "fp32", "int8", "int4")
ARCHIVE_PRECISIONS = ("fp32", "int8")  # what a format-1 header records; int4 scores (``information``) only


@dataclass(frozen=True)
class StepGraph:
    """A loaded step graph. Construct with :meth:`load`."""

    model_dir: Path
    precision: str  # "int8", "fp32" or "int4"
    fingerprint: bytes  # first 16 bytes of the SHA-256 of the graph file
    meta: ArtifactMetadata
    session: ort.InferenceSession

    @property
    def int8(self) -> bool:
        return self.precision == "int8"

    @property
    def file(self) -> Path:
        return self.model_dir / PRECISION_FILES[self.precision][0]

    def initial_state(self, rows: int) -> np.ndarray:
        """The learned start state for ``rows`` streams: float32 [L, rows, S]."""
        initial = np.asarray(self.meta.initial_state, dtype=np.float32)
        return np.ascontiguousarray(np.repeat(initial[:, None, :], rows, axis=1))

    def step(self, tokens: np.ndarray, state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """tokens int64 [B], state float32 [L, B, S] -> log-probs float32 [B, 257], state."""
        logp, state_out = self.session.run(STEP_OUTPUTS, {STEP_INPUTS[0]: tokens, STEP_INPUTS[1]: state})
        return logp, state_out

    @classmethod
    def load(cls, model_dir: Path | str, precision: str = "auto") -> StepGraph:
        """``precision`` "auto" takes ``step.int8.onnx`` when the export kept it (BPC delta within
        ``INT8_MAX_BPC_DELTA``), else ``step.onnx``; "int8", "fp32" and "int4" take that file or fail."""
        model_dir = Path(model_dir)
        if precision not in PRECISIONS:
            raise ModelFileError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        if not model_dir.is_dir():
            raise ModelFileError(
                f"model directory {model_dir} does not exist (pass --model or set LNRNN_MODEL_DIR)"
            )
        if precision in ("auto", "int8") and (model_dir / STEP_INT8_FILE).is_file():
            graph = cls._open(model_dir, "int8")
            if precision == "int8" or graph.meta.int8_kept:
                return graph
        elif precision == "int8":
            raise ModelFileError(f"precision int8: {model_dir} has no {STEP_INT8_FILE}; use fp32 or auto")
        if precision == "int4":
            if not (model_dir / PRECISION_FILES["int4"][0]).is_file():
                raise ModelFileError(
                    f"precision int4: {model_dir} has no {PRECISION_FILES['int4'][0]} "
                    "(write it with `lnrnn quantize DIR --bits 4`); use fp32 or auto"
                )
            return cls._open(model_dir, "int4")
        return cls._open(model_dir, "fp32")

    @classmethod
    def _open(cls, model_dir: Path, precision: str) -> StepGraph:
        path = model_dir / PRECISION_FILES[precision][0]
        try:
            data = path.read_bytes()
        except OSError as err:
            raise ModelFileError(f"cannot read {path}: {err.strerror}") from None
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        ort.set_default_logger_severity(3)
        try:
            session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
        except Exception as err:  # ORT raises several private types for unreadable graphs
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ModelFileError(f"cannot load {path}: {first}") from None
        try:
            meta = ArtifactMetadata.from_props(session.get_modelmeta().custom_metadata_map)
        except ContractError as err:
            raise ModelFileError(f"{path}: {err}") from None
        problems = graph_problems(STEP_GRAPH, session.get_inputs(), session.get_outputs(), meta.config)
        if problems:
            raise ModelFileError(f"{path} is not an lnrnn step graph: {'; '.join(problems)}")
        fingerprint = hashlib.sha256(data).digest()[:FINGERPRINT_BYTES]
        return cls(model_dir, precision, fingerprint, meta, session)
