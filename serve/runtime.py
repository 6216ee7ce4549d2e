"""The model at serving time: two ONNX Runtime sessions, the contract metadata, and numpy scoring.

Pure numpy + onnxruntime (no torch, no onnx). Sessions are thread-safe; every call keeps its own state.
Scoring a text feeds [BOS, b0, ..., b(n-1)] from the initial state. Long inputs go in chunks of
``chunk_tokens``: a chunk continues from the previous ``state_out`` without repeating a byte, and its first
byte is paid for with the previous ``last_logprobs``. A 1-token chunk uses the step graph, so the
sequence graph never sees T < 2 (ORT's Scan over an empty sequence kills the process).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from lnrnn.contract import (
    BOS_ID,
    INT8_MAX_BPC_DELTA,
    MIN_SEQUENCE_TOKENS,
    SEQUENCE_FILE,
    SEQUENCE_INPUTS,
    SEQUENCE_INT8_FILE,
    SEQUENCE_OUTPUTS,
    STEP_FILE,
    STEP_INPUTS,
    STEP_INT8_FILE,
    STEP_OUTPUTS,
    ArtifactMetadata,
    ContractError,
)
from lnrnn.serve.cancel import checkpoint

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
PREFIX_LOOKBACK = 16  # predict: reuse a cached context up to this many bytes shorter than the request
# int8 graphs quantize each call's activations with one scale (ORT dynamic quantization), so finishing a
# cached prefix in a separate call gives other numbers than one fresh call (up to 0.009 in probability,
# measured on the default model). With int8 only exact hits are reused: a response stays a function of
# its request, not of what was asked before.
CACHE_MAX_CONTEXT = 4096  # longer contexts are not cached (keys hold the whole context)

PRECISIONS = ("auto", "fp32", "int8")
# Per call ORT keeps [T, 3H] input projections and [T, 257] log-probs per layer in its arena: at 2x448 a
# 4096-token chunk peaked at 561 MiB for 4 concurrent scores, 512 at 129 MiB, at the same speed.
CHUNK_TOKENS = 512
Progress = Callable[[int], None]  # called with the number of bytes just scored


class ModelLoadError(Exception):
    """The model directory is missing or broken, or the requested device is not available. One line."""


@dataclass(frozen=True)
class Scored:
    """Result of scoring one byte string: total nats and, on request, each byte's nats."""

    n_bytes: int
    nats: float
    byte_nats: np.ndarray | None = None  # float64 [n_bytes]


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


def _check_names(
    session: ort.InferenceSession, path: Path, inputs: tuple[str, ...], outputs: tuple[str, ...]
):
    got_in = tuple(i.name for i in session.get_inputs())
    got_out = tuple(o.name for o in session.get_outputs())
    if set(got_in) != set(inputs) or set(got_out) != set(outputs):
        raise ModelLoadError(
            f"{path} does not follow the lnrnn contract: inputs {got_in} outputs {got_out}, "
            f"expected {inputs} and {outputs}"
        )


def _check_shapes(session: ort.InferenceSession, path: Path, meta: ArtifactMetadata) -> None:
    """The metadata must describe this graph: state [L, B, S] and log-probs [B, V] (static dims only)."""
    cfg = meta.config
    state = next(i.shape for i in session.get_inputs() if i.name == "state")
    expected = {0: cfg.layers, 2: cfg.state_size}
    wrong = len(state) != 3 or any(isinstance(state[d], int) and state[d] != n for d, n in expected.items())
    vocab = next(o.shape for o in session.get_outputs() if o.name in ("logprobs", "last_logprobs"))
    wrong_v = len(vocab) != 2 or (isinstance(vocab[1], int) and vocab[1] != cfg.vocab_size)
    if wrong or wrong_v:
        raise ModelLoadError(
            f"{path}: metadata (lnrnn.config: {cfg.cell}, {cfg.layers} layers, state size {cfg.state_size}, "
            f"vocab {cfg.vocab_size}) does not match the graph (state {state}, log-probs {vocab}); "
            "re-export the model"
        )


class Runtime:
    """A loaded model directory. Construct with :meth:`load`."""

    def __init__(
        self,
        model_dir: Path,
        step: ort.InferenceSession,
        sequence: ort.InferenceSession,
        meta: ArtifactMetadata,
        files: dict[str, int],
        chunk_tokens: int,
        cache_size: int,
        int8: bool = False,
    ) -> None:
        self.model_dir = model_dir
        self.int8 = int8
        self.step_session = step
        self.sequence_session = sequence
        self.meta = meta
        self.files = files
        self.chunk_tokens = max(int(chunk_tokens), MIN_SEQUENCE_TOKENS)
        self.provider: str = step.get_providers()[0]
        self.initial_state = np.asarray(meta.initial_state, dtype=np.float32)[:, None, :]  # [L, 1, S]
        self._cache: OrderedDict[bytes, tuple[np.ndarray, np.ndarray]] = OrderedDict()
        self._cache_size = cache_size
        self._lookback = 0 if int8 else PREFIX_LOOKBACK
        self._lock = threading.Lock()

    @property
    def precision(self) -> str:
        """Which pair of files is loaded: "int8" or "fp32"."""
        return "int8" if self.int8 else "fp32"

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
        """Open ``step.onnx`` and ``sequence.onnx`` (or the int8 pair) and check them against the contract.

        ``precision`` "auto" takes the int8 pair when it exists, runs on the CPU provider and records a BPC
        delta within ``INT8_MAX_BPC_DELTA`` (int8 MatMuls are a CPU speed-up; on CUDA fp32 is faster),
        else the fp32 pair. "fp32" and "int8" take that pair or fail.
        """
        model_dir = Path(model_dir)
        if not model_dir.is_dir():
            raise ModelLoadError(
                f"model directory {model_dir} does not exist (pass a model directory or set LNRNN_MODEL_DIR)"
            )
        if precision not in PRECISIONS:
            raise ModelLoadError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        has_int8 = (model_dir / STEP_INT8_FILE).is_file() and (model_dir / SEQUENCE_INT8_FILE).is_file()
        if precision == "int8" and not has_int8:
            raise ModelLoadError(
                f"precision int8: {model_dir} has no {STEP_INT8_FILE} and {SEQUENCE_INT8_FILE} "
                "(export with --quantize int8) - use precision auto or fp32"
            )
        auto = precision == "auto" and has_int8
        int8 = precision == "int8" or (auto and CUDA not in _providers(device))
        runtime = cls._open(model_dir, device, threads, int8, chunk_tokens, cache_size)
        if auto and not int8 and runtime.provider == CPU:  # CUDA was listed but is not active
            runtime = cls._open(model_dir, device, threads, True, chunk_tokens, cache_size)
        delta = runtime.meta.int8_bpc_delta
        if auto and runtime.int8 and (delta is None or delta > INT8_MAX_BPC_DELTA):
            runtime = cls._open(model_dir, device, threads, False, chunk_tokens, cache_size)
        return runtime

    @classmethod
    def _open(
        cls, model_dir: Path, device: str, threads: int, int8: bool, chunk_tokens: int, cache_size: int
    ) -> Runtime:
        step_path = model_dir / (STEP_INT8_FILE if int8 else STEP_FILE)
        seq_path = model_dir / (SEQUENCE_INT8_FILE if int8 else SEQUENCE_FILE)
        step = _session(step_path, device, threads)
        sequence = _session(seq_path, device, threads)
        _check_names(step, step_path, STEP_INPUTS, STEP_OUTPUTS)
        _check_names(sequence, seq_path, SEQUENCE_INPUTS, SEQUENCE_OUTPUTS)
        try:
            meta = ArtifactMetadata.from_props(step.get_modelmeta().custom_metadata_map)
        except ContractError as err:
            raise ModelLoadError(f"{step_path}: {err}") from err
        _check_shapes(step, step_path, meta)
        _check_shapes(sequence, seq_path, meta)
        files = {p.name: p.stat().st_size for p in sorted(model_dir.glob("*.onnx"))}
        return cls(model_dir, step, sequence, meta, files, chunk_tokens, cache_size, int8)

    # --- graph calls ------------------------------------------------------------------------------

    def step(self, tokens: np.ndarray, state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """tokens int64 [B], state [L, B, S] -> next-byte log-probs [B, 257], state [L, B, S]."""
        if tokens.ndim != 1 or len(tokens) < 1 or state.ndim != 3 or state.shape[1] != len(tokens):
            raise ValueError(
                f"step needs tokens [B >= 1] and state [L, B, S]; got {tokens.shape}, {state.shape}"
            )
        checkpoint()  # a call the gate gave up on stops here (cancel.py)
        logprobs, state_out = self.step_session.run(STEP_OUTPUTS, {"token": tokens, "state": state})
        return logprobs, state_out

    def _sequence(self, tokens: np.ndarray, state: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if tokens.ndim != 2 or tokens.shape[1] < MIN_SEQUENCE_TOKENS:  # ORT's Scan SIGFPEs on T = 0
            raise ValueError(f"the sequence graph needs T >= {MIN_SEQUENCE_TOKENS}, got shape {tokens.shape}")
        if tokens.shape[0] < 1:
            raise ValueError("the sequence graph needs B >= 1, got an empty batch")
        checkpoint()
        token_lp, last, state_out = self.sequence_session.run(
            SEQUENCE_OUTPUTS, {"tokens": tokens, "state": state}
        )
        return token_lp, last, state_out

    def advance(
        self,
        tokens: np.ndarray,
        state: np.ndarray,
        last: np.ndarray | None = None,
        *,
        per_token: bool = False,
        progress: Progress | None = None,
    ) -> tuple[float, np.ndarray | None, np.ndarray, np.ndarray]:
        """Feed ``tokens`` (int64 [n], n >= 1) from ``state`` [L, 1, S] in chunks, paying for every token
        after the first, and for the first too when ``last`` (the log-probs before it) is given.

        Returns total nats, per-token nats (if asked), the log-probs after the last token [257] and the state.
        """
        if len(tokens) < 1:
            raise ValueError("advance needs at least one token (T >= 1)")
        total = 0.0
        pieces: list[np.ndarray] = []
        n, size = len(tokens), self.chunk_tokens
        for start in range(0, n, size):
            chunk = tokens[start : start + size]
            paid = [] if last is None else [-float(last[chunk[0]])]
            if len(chunk) >= MIN_SEQUENCE_TOKENS:
                token_lp, last_b, state = self._sequence(chunk[None, :], state)
                nats = -token_lp[0].astype(np.float64)
            else:
                last_b, state = self.step(chunk, state)
                nats = np.zeros(0)
            if paid:
                nats = np.concatenate([paid, nats])
            total += float(nats.sum())
            if per_token:
                pieces.append(nats)
            if progress is not None:
                progress(len(chunk))
            last = last_b[0]
        assert last is not None
        return total, (np.concatenate(pieces) if per_token else None), last, state

    # --- public operations ------------------------------------------------------------------------

    def score(self, data: bytes, *, per_byte: bool = False, progress: Progress | None = None) -> Scored:
        """Nats of ``data`` (n >= 1 bytes) scored as [BOS, b0, ..., b(n-1)] from the initial state."""
        if not data:
            raise ValueError("nothing to score: the text is empty")
        tokens = np.frombuffer(bytes([0]) + data, dtype=np.uint8).astype(np.int64)
        tokens[0] = BOS_ID
        total, byte_nats, _, _ = self.advance(
            tokens, self.initial_state, per_token=per_byte, progress=progress
        )
        return Scored(len(data), total, byte_nats)

    def context(self, data: bytes, *, cache: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Log-probs of the next byte [257] and the state [L, 1, S] after BOS + ``data``; cached by prefix."""
        hit = self._cache_get(data) if cache else None
        if hit is not None and hit[0] == len(data):
            return hit[1], hit[2]
        if hit is not None:
            done, last, state = hit
            tokens = np.frombuffer(data[done:], dtype=np.uint8).astype(np.int64)
        else:
            done, last, state = 0, None, self.initial_state
            tokens = np.frombuffer(bytes([0]) + data, dtype=np.uint8).astype(np.int64)
            tokens[0] = BOS_ID
        _, _, last, state = self.advance(tokens, state, last)
        if cache:
            self._cache_put(data, last, state)
        return last, state

    # --- prefix cache (LRU) -----------------------------------------------------------------------

    def _cache_get(self, data: bytes) -> tuple[int, np.ndarray, np.ndarray] | None:
        if self._cache_size == 0 or len(data) > CACHE_MAX_CONTEXT:
            return None
        with self._lock:
            for cut in range(min(self._lookback, len(data)) + 1):
                key = data[: len(data) - cut]
                entry = self._cache.get(key)
                if entry is not None:
                    self._cache.move_to_end(key)
                    return len(key), entry[0], entry[1]
        return None

    def _cache_put(self, data: bytes, last: np.ndarray, state: np.ndarray) -> None:
        if self._cache_size == 0 or len(data) > CACHE_MAX_CONTEXT:
            return
        with self._lock:
            self._cache[data] = (last, state)
            self._cache.move_to_end(data)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
