"""The model at serving time: ONNX Runtime sessions, the contract metadata, the scorer and the prefix cache.

Pure numpy + onnxruntime (no torch, no onnx). Sessions are thread-safe; every call keeps its own state.
All scoring goes through :class:`lnrnn.scorer.Scorer` on the sequence graph. The step graph is checked as
part of the artifact at load and then released; it is opened again on first use (clients that drive the
recurrence themselves, the v2 ``lnrnn-step`` model), so a server that never runs it does not hold it.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort

from lnrnn.contract import (
    PRECISION_FILES,
    SEQUENCE_GRAPH,
    STEP_GRAPH,
    ArtifactMetadata,
    ContractError,
    GraphSpec,
    graph_problems,
)
from lnrnn.scorer import CHUNK_TOKENS, Progress, Scored, Scorer
from lnrnn.serve.engine.cancel import checkpoint
from lnrnn.serve.engine.prefix_cache import PrefixCache

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
# auto, fp32, int8 (MatMulInteger), int8w (weight-only int8), int4 (4-bit weights, MatMulNBits)
PRECISIONS = ("auto", *PRECISION_FILES)
EXPORT_FLAG = {  # how to write a precision's files
    "int8": "--quantize int8",
    "int8w": "--quantize int8w, or `lnrnn quantize DIR --precision int8w`",
    "int4": "--quantize int4, or `lnrnn quantize DIR --bits 4`",
}


def has_files(model_dir: Path, precision: str) -> bool:
    """Both files of ``precision``'s pair are in ``model_dir``."""
    return all((model_dir / name).is_file() for name in PRECISION_FILES[precision])


class ModelLoadError(Exception):
    """The model directory is missing or broken, or the requested device is not available. One line."""


def _providers(device: str) -> list[str]:
    available = ort.get_available_providers()  # what the build supports, not what works: checked later
    if device == "cpu":
        return [CPU]
    if device == "cuda" and CUDA not in available:
        raise ModelLoadError(
            "--device cuda: this onnxruntime build has no CUDA provider; install lnrnn[serve,gpu] "
            "(onnxruntime-gpu) or use --device cpu"
        )
    return [CUDA, CPU] if CUDA in available else [CPU]


def _session(path: Path, device: str, threads: int) -> ort.InferenceSession:
    if not path.is_file():
        raise ModelLoadError(f"model file {path} does not exist")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    providers = _providers(device)
    ort.set_default_logger_severity(4 if device == "auto" and CUDA in providers else 3)
    try:
        session = ort.InferenceSession(str(path), options, providers=providers)
    except Exception as err:  # ORT raises several private types for unreadable graphs
        message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ModelLoadError(f"cannot load {path}: {message}") from err
    if device == "cuda" and session.get_providers()[0] != CUDA:
        raise ModelLoadError(
            f"--device cuda: CUDA is not active (onnxruntime fell back to {session.get_providers()[0]}; "
            "check the GPU, CUDA 13 and cuDNN 9 libraries) - use --device auto or cpu"
        )
    return session


def _check_graph(session: ort.InferenceSession, path: Path, spec: GraphSpec, meta: ArtifactMetadata) -> None:
    """The graph follows the contract (names, dtypes, ranks) and its fixed axes match the metadata."""
    got_in, got_out = session.get_inputs(), session.get_outputs()
    problems = graph_problems(spec, got_in, got_out)
    if problems:
        raise ModelLoadError(f"{path} does not follow the lnrnn contract: {'; '.join(problems)}")
    problems = graph_problems(spec, got_in, got_out, meta.config)
    if problems:
        cfg = meta.config
        raise ModelLoadError(
            f"{path}: metadata (lnrnn.config: {cfg.cell}, {cfg.layers} layers, state size {cfg.state_size}, "
            f"vocab {cfg.vocab_size}) does not match the graph ({'; '.join(problems)}); re-export the model"
        )


class _OnFirstUse:
    """A session opened by the first caller of :meth:`get`; later callers share it."""

    def __init__(self, open_session: Callable[[], ort.InferenceSession]) -> None:
        self._open = open_session
        self._session: ort.InferenceSession | None = None
        self._lock = threading.Lock()

    @property
    def opened(self) -> bool:
        return self._session is not None

    def get(self) -> ort.InferenceSession:
        with self._lock:
            if self._session is None:
                self._session = self._open()
            return self._session


class Runtime:
    """A loaded model directory. Construct with :meth:`load`."""

    def __init__(
        self,
        model_dir: Path,
        step: Callable[[], ort.InferenceSession],
        sequence: ort.InferenceSession,
        meta: ArtifactMetadata,
        files: dict[str, int],
        chunk_tokens: int,
        cache_size: int,
        precision: str = "fp32",
    ) -> None:
        self.model_dir = model_dir
        self.precision = precision  # which pair of files is loaded: "fp32", "int8", "int8w" or "int4"
        self._step = _OnFirstUse(step)  # shared with views (copy.copy keeps the same holder)
        self.sequence_session = sequence
        self.meta = meta
        self.files = files
        self.provider: str = sequence.get_providers()[0]
        initial = np.asarray(meta.initial_state, dtype=np.float32)
        self.scorer = Scorer(sequence, initial, chunk_tokens=chunk_tokens, checkpoint=checkpoint)
        self.initial_state = self.scorer.start_state()  # [L, 1, S]
        self.cache = PrefixCache(cache_size)

    @property
    def step_session(self) -> ort.InferenceSession:
        """The step graph's session, opened on first use (once, whichever thread asks first)."""
        return self._step.get()

    @property
    def step_loaded(self) -> bool:
        return self._step.opened

    @property
    def int8(self) -> bool:
        """The int8 pair (int8 activations too) is loaded."""
        return self.precision == "int8"

    def describe(self) -> str:
        """What is loaded, in one phrase: "gru 2x448, int8, CPUExecutionProvider"."""
        cfg = self.meta.config
        return f"{cfg.cell} {cfg.layers}x{cfg.hidden}, {self.precision}, {self.provider}"

    @classmethod
    def load(
        cls,
        model_dir: Path | str,
        *,
        device: str = "auto",
        threads: int = 0,
        precision: str = "auto",
        chunk_tokens: int = CHUNK_TOKENS,
        cache_size: int = 256,
    ) -> Runtime:
        """Open ``step.onnx`` and ``sequence.onnx`` (or another precision's pair, ``PRECISION_FILES``) and
        check them against the contract.

        ``precision`` "auto" takes the int8 pair when it exists, runs on the CPU provider and records a BPC
        delta within ``INT8_MAX_BPC_DELTA`` (int8 MatMuls are a CPU speed-up; on CUDA fp32 is faster),
        else the fp32 pair. "fp32", "int8", "int8w" (weight-only int8: fp32 arithmetic on int8 weights,
        the numbers the page computes on the device) and "int4" (4-bit weights, fp32 activations) take that
        pair or fail; "auto" never picks int8w or int4.
        """
        model_dir = Path(model_dir)
        if not model_dir.is_dir():
            raise ModelLoadError(
                f"model directory {model_dir} does not exist (pass a model directory or set LNRNN_MODEL_DIR)"
            )
        if precision not in PRECISIONS:
            raise ModelLoadError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        if precision in EXPORT_FLAG and not has_files(model_dir, precision):
            step_file, sequence_file = PRECISION_FILES[precision]
            raise ModelLoadError(
                f"precision {precision}: {model_dir} has no {step_file} and {sequence_file} "
                f"(export with {EXPORT_FLAG[precision]}) - use precision auto or fp32"
            )
        if precision != "auto":
            return cls._open(model_dir, device, threads, precision, chunk_tokens, cache_size)
        auto = "int8" if has_files(model_dir, "int8") and CUDA not in _providers(device) else "fp32"
        runtime = cls._open(model_dir, device, threads, auto, chunk_tokens, cache_size)
        if has_files(model_dir, "int8") and auto == "fp32" and runtime.provider == CPU:  # CUDA is not active
            runtime = cls._open(model_dir, device, threads, "int8", chunk_tokens, cache_size)
        if runtime.int8 and not runtime.meta.int8_kept:
            runtime = cls._open(model_dir, device, threads, "fp32", chunk_tokens, cache_size)
        return runtime

    @classmethod
    def _open(
        cls, model_dir: Path, device: str, threads: int, precision: str, chunk_tokens: int, cache_size: int
    ) -> Runtime:
        step_file, sequence_file = PRECISION_FILES[precision]
        step_path, seq_path = model_dir / step_file, model_dir / sequence_file
        step = _session(step_path, device, threads)
        sequence = _session(seq_path, device, threads)
        try:
            meta = ArtifactMetadata.from_props(step.get_modelmeta().custom_metadata_map)
        except ContractError as err:
            raise ModelLoadError(f"{step_path}: {err}") from err
        _check_graph(step, step_path, STEP_GRAPH, meta)
        _check_graph(sequence, seq_path, SEQUENCE_GRAPH, meta)
        del step  # checked; reopened on first use (the step property)
        files = {p.name: p.stat().st_size for p in sorted(model_dir.glob("*.onnx"))}

        def open_step() -> ort.InferenceSession:
            return _session(step_path, device, threads)

        return cls(model_dir, open_step, sequence, meta, files, chunk_tokens, cache_size, precision)

    def view(self, scorer: Scorer, on_lookup: Callable[[str], None] | None = None) -> Runtime:
        """The same loaded model with another scorer (e.g. batched) and a prefix cache of its own."""
        other = copy.copy(self)
        other.scorer = scorer
        other.cache = PrefixCache(self.cache.size, on_lookup=on_lookup)
        return other

    # --- public operations ------------------------------------------------------------------------

    @property
    def chunk_tokens(self) -> int:
        return self.scorer.chunk_tokens

    def score(self, data: bytes, *, per_byte: bool = False, progress: Progress | None = None) -> Scored:
        """Nats of ``data`` (n >= 1 bytes) scored as [BOS, b0, ..., b(n-1)] from the initial state."""
        return self.scorer.score(data, per_byte=per_byte, progress=progress)

    def context(self, data: bytes, *, cache: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Log-probs of the next byte [257] and the state [L, 1, S] after BOS + ``data``; cached by prefix."""
        hit = self.cache.get(data) if cache else None
        if hit is not None and hit.done == len(data):
            return hit.last, hit.state
        if hit is not None:
            fed = self.scorer.feed_text(data[hit.done :], hit.state, hit.last)
        else:
            fed = self.scorer.feed_text(data)
        last, state = fed.last[0], fed.state
        if cache:
            self.cache.put(data, last, state)
        return last, state
