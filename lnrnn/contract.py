"""The artifact contract between ``lnrnn.export`` (writes) and ``lnrnn.serve`` (reads).

Torch-free and onnx-free on purpose: names, numbers, the graphs' declared inputs and outputs (name, dtype,
axes: ``STEP_GRAPH``, ``SEQUENCE_GRAPH``; exporters build from them, loaders check against them with
``graph_problems``), the document layout (``document_array``) and JSON helpers.

A model directory holds:

* ``step.onnx``: one time step, no control flow.
  inputs  ``token`` int64 [B], ``state`` float32 [L, B, S]
  outputs ``logprobs`` float32 [B, V] (log-softmax of the next byte after consuming ``token``),
          ``state_out`` float32 [L, B, S]
* ``sequence.onnx``: a whole sequence, dynamic B and T (T >= 1).
  inputs  ``tokens`` int64 [B, T], ``state`` float32 [L, B, S]
  outputs ``token_logprobs`` float32 [B, T-1] = log p(tokens[:, t+1] | tokens[:, :t+1]),
          ``last_logprobs`` float32 [B, V] (distribution after the last token),
          ``state_out`` float32 [L, B, S]
* optionally ``step.int8.onnx`` / ``sequence.int8.onnx`` with the same names, written only when their
  validation BPC is within ``INT8_MAX_BPC_DELTA`` of the fp32 files (recorded as ``lnrnn.int8_bpc_delta``).
* optionally ``step.int8w.onnx`` / ``sequence.int8w.onnx``: weight-only int8 (int8 weights turned back into
  fp32 when the file loads, all arithmetic fp32), kept by the same rule and recorded under the same key.
* optionally ``step.int4.onnx`` / ``sequence.int4.onnx``: 4-bit weights (com.microsoft ``MatMulNBits`` and
  ``GatherBlockQuantized``), fp32 activations, kept within ``INT4_MAX_BPC_DELTA`` and recorded under the
  same key. Precision "auto" never picks them: they are asked for by name.

S = H for GRU/MGU and 2H for LSTM (h then c). V = 257: the 256 byte values and BOS = 256.
A document is scored as [BOS, b0, ..., b(n-1)] from the initial state, so every byte is paid for.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Protocol

import numpy as np

# --- vocabulary --------------------------------------------------------------------------------
N_BYTES = 256
BOS_ID = 256
VOCAB_SIZE = 257
VOCAB_NAME = "bytes+bos"

# --- file names --------------------------------------------------------------------------------
STEP_FILE = "step.onnx"
SEQUENCE_FILE = "sequence.onnx"
STEP_INT8_FILE = "step.int8.onnx"
SEQUENCE_INT8_FILE = "sequence.int8.onnx"
STEP_INT8W_FILE = "step.int8w.onnx"
SEQUENCE_INT8W_FILE = "sequence.int8w.onnx"
STEP_INT4_FILE = "step.int4.onnx"
SEQUENCE_INT4_FILE = "sequence.int4.onnx"
# precision -> (step file, sequence file): which pair of files a precision loads
PRECISION_FILES = {
    "fp32": (STEP_FILE, SEQUENCE_FILE),
    "int8": (STEP_INT8_FILE, SEQUENCE_INT8_FILE),
    "int8w": (STEP_INT8W_FILE, SEQUENCE_INT8W_FILE),
    "int4": (STEP_INT4_FILE, SEQUENCE_INT4_FILE),
}
# what `lnrnn export --quantize` / `lnrnn quantize` can write
QUANTIZED_PRECISIONS = ("int8", "int8w", "int4")

# --- the graphs' inputs and outputs: name, dtype, axes (declared once; exporters and loaders read these) --
BATCH, TIME, TIME_MINUS_1 = "batch", "time", "time_minus_1"  # dynamic axes
LAYERS, STATE, VOCAB = "layers", "state_size", "vocab"  # fixed by the model's config
DYNAMIC_AXES = (BATCH, TIME, TIME_MINUS_1)


@dataclass(frozen=True)
class TensorSpec:
    name: str
    dtype: str  # numpy name: "int64" | "float32"
    axes: tuple[str, ...]

    @property
    def onnx_type(self) -> str:
        """How ONNX Runtime names the type: "tensor(int64)", "tensor(float)"."""
        return "tensor(float)" if self.dtype == "float32" else f"tensor({self.dtype})"

    def shape(self, layers: int, state_size: int) -> list[int | str]:
        """Fixed axes as numbers, dynamic ones by name."""
        fixed = {LAYERS: layers, STATE: state_size, VOCAB: VOCAB_SIZE}
        return [fixed.get(axis, axis) for axis in self.axes]


@dataclass(frozen=True)
class GraphSpec:
    file: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    @property
    def input_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.inputs)

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.outputs)

    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        """``{tensor: {axis index: axis name}}`` for the exporter (torch.onnx ``dynamic_axes``)."""
        return {
            t.name: {i: axis for i, axis in enumerate(t.axes) if axis in DYNAMIC_AXES}
            for t in (*self.inputs, *self.outputs)
        }


_STATE_IN = TensorSpec("state", "float32", (LAYERS, BATCH, STATE))  # state in and out never share a name
_STATE_OUT = TensorSpec("state_out", "float32", (LAYERS, BATCH, STATE))
STEP_GRAPH = GraphSpec(
    STEP_FILE,
    inputs=(TensorSpec("token", "int64", (BATCH,)), _STATE_IN),
    outputs=(TensorSpec("logprobs", "float32", (BATCH, VOCAB)), _STATE_OUT),
)
SEQUENCE_GRAPH = GraphSpec(
    SEQUENCE_FILE,
    inputs=(TensorSpec("tokens", "int64", (BATCH, TIME)), _STATE_IN),
    outputs=(
        TensorSpec("token_logprobs", "float32", (BATCH, TIME_MINUS_1)),
        TensorSpec("last_logprobs", "float32", (BATCH, VOCAB)),
        _STATE_OUT,
    ),
)
STEP_INPUTS, STEP_OUTPUTS = STEP_GRAPH.input_names, STEP_GRAPH.output_names
SEQUENCE_INPUTS, SEQUENCE_OUTPUTS = SEQUENCE_GRAPH.input_names, SEQUENCE_GRAPH.output_names
MIN_SEQUENCE_TOKENS = 1  # T = 0 never reaches ORT: its Scan over an empty sequence kills the process (SIGFPE)

# --- metadata_props keys -----------------------------------------------------------------------
META_CONFIG = "lnrnn.config"  # JSON ArtifactConfig
META_INITIAL_STATE = "lnrnn.initial_state"  # JSON nested list [L][S]: the learned initial state
META_VALID_BPC = "lnrnn.valid_bpc"  # float as text, "" when unknown
META_TRAIN_DATA = "lnrnn.train_data"  # free text: which data trained it
META_VERSION = "lnrnn.version"  # lnrnn version that exported it
META_GRAPH = "lnrnn.graph"  # "step" | "sequence-generic" | "sequence-fast"
# quantized files only (int8, int8w and int4; the key predates int4): valid BPC(that file) - BPC(fp32)
META_INT8_BPC_DELTA = "lnrnn.int8_bpc_delta"
INT8_MAX_BPC_DELTA = 0.01  # int8 files are kept (export) and picked by precision "auto" (serve) within this
INT4_MAX_BPC_DELTA = 0.03  # int4 files are kept within this: a quarter of int8's bytes for a larger delta
REQUIRED_META = (META_CONFIG, META_INITIAL_STATE, META_VALID_BPC, META_TRAIN_DATA, META_VERSION)

CELLS = ("gru", "lstm", "mgu")
NORMS = ("layer", "none", "batch")


class ContractError(ValueError):
    """A model file or its metadata does not follow the artifact contract."""


@dataclass(frozen=True)
class ArtifactConfig:
    """What ``lnrnn.config`` holds: enough to shape inputs without torch or the checkpoint."""

    cell: str
    norm: str
    layers: int
    hidden: int
    embedding: int
    parameters: int = 0
    vocab: str = VOCAB_NAME
    vocab_size: int = VOCAB_SIZE
    bos_id: int = BOS_ID

    @property
    def state_size(self) -> int:
        """S: h for GRU/MGU, h then c for LSTM."""
        return 2 * self.hidden if self.cell == "lstm" else self.hidden

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ArtifactConfig:
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as err:
            raise ContractError(f"{META_CONFIG} is not valid JSON: {err}") from err
        if not isinstance(raw, dict):
            raise ContractError(f"{META_CONFIG} must be a JSON object")
        known = set(cls.__dataclass_fields__)
        try:
            cfg = cls(**{k: v for k, v in raw.items() if k in known})
        except TypeError as err:
            raise ContractError(f"{META_CONFIG} is missing fields: {err}") from err
        cfg.validate()
        return cfg

    def validate(self) -> None:
        if self.cell not in CELLS:
            raise ContractError(f"unknown cell {self.cell!r}; expected one of {CELLS}")
        if self.norm not in NORMS:
            raise ContractError(f"unknown norm {self.norm!r}; expected one of {NORMS}")
        for name in ("layers", "hidden", "embedding"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ContractError(f"{name} must be a positive integer, got {value!r}")
        if self.vocab != VOCAB_NAME or self.vocab_size != VOCAB_SIZE or self.bos_id != BOS_ID:
            raise ContractError(
                f"vocabulary must be {VOCAB_NAME!r} with {VOCAB_SIZE} ids and BOS {BOS_ID}, got "
                f"{self.vocab!r}/{self.vocab_size}/{self.bos_id}"
            )


@dataclass(frozen=True)
class ArtifactMetadata:
    """All lnrnn metadata of one ONNX file, parsed and checked."""

    config: ArtifactConfig
    initial_state: list[list[float]]  # [L][S]
    valid_bpc: float | None
    train_data: str
    version: str
    graph: str = ""
    int8_bpc_delta: float | None = None

    @property
    def int8_kept(self) -> bool:
        """This int8 file recorded a BPC delta within ``INT8_MAX_BPC_DELTA``: precision "auto" takes it."""
        return self.int8_bpc_delta is not None and self.int8_bpc_delta <= INT8_MAX_BPC_DELTA

    def to_props(self) -> dict[str, str]:
        props = {
            META_CONFIG: self.config.to_json(),
            META_INITIAL_STATE: json.dumps(self.initial_state),
            META_VALID_BPC: "" if self.valid_bpc is None else repr(float(self.valid_bpc)),
            META_TRAIN_DATA: self.train_data,
            META_VERSION: self.version,
        }
        if self.graph:
            props[META_GRAPH] = self.graph
        if self.int8_bpc_delta is not None:
            props[META_INT8_BPC_DELTA] = repr(float(self.int8_bpc_delta))
        return props

    @classmethod
    def from_props(cls, props: Mapping[str, str]) -> ArtifactMetadata:
        missing = [k for k in REQUIRED_META if k not in props]
        if missing:
            raise ContractError(f"model metadata is missing {', '.join(missing)}")
        config = ArtifactConfig.from_json(props[META_CONFIG])
        try:
            state = json.loads(props[META_INITIAL_STATE])
        except json.JSONDecodeError as err:
            raise ContractError(f"{META_INITIAL_STATE} is not valid JSON: {err}") from err
        if (
            not isinstance(state, list)
            or len(state) != config.layers
            or any(not isinstance(row, list) or len(row) != config.state_size for row in state)
        ):
            raise ContractError(
                f"{META_INITIAL_STATE} must be a [{config.layers}][{config.state_size}] list of numbers"
            )
        return cls(
            config=config,
            initial_state=[[float(v) for v in row] for row in state],
            valid_bpc=_optional_float(props[META_VALID_BPC], META_VALID_BPC),
            train_data=props[META_TRAIN_DATA],
            version=props[META_VERSION],
            graph=props.get(META_GRAPH, ""),
            int8_bpc_delta=_optional_float(props.get(META_INT8_BPC_DELTA, ""), META_INT8_BPC_DELTA),
        )


def _optional_float(text: str, key: str) -> float | None:
    if text == "":
        return None
    try:
        return float(text)
    except ValueError as err:
        raise ContractError(f"{key} must be a number, got {text!r}") from err


def encode(text: str) -> bytes:
    """Text -> UTF-8 bytes. Lone surrogates cannot be encoded and raise ``ValueError``."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as err:
        raise ValueError(f"text is not encodable as UTF-8: {err.reason} at position {err.start}") from err


def document_array(data: bytes | np.ndarray, dtype: type[np.integer] = np.int64) -> np.ndarray:
    """[BOS, b0, ..., b(n-1)]: the token ids a document is scored as (the only place BOS is put first)."""
    raw = np.frombuffer(data, dtype=np.uint8) if isinstance(data, bytes | bytearray) else np.asarray(data)
    tokens = np.empty(len(raw) + 1, dtype=dtype)
    tokens[0] = BOS_ID
    tokens[1:] = raw
    return tokens


class GraphValue(Protocol):
    """What ONNX Runtime says about one input or output (``onnxruntime.NodeArg``)."""

    @property
    def name(self) -> str: ...
    @property
    def type(self) -> str: ...
    @property
    def shape(self) -> Sequence[int | str | None]: ...


def graph_problems(
    spec: GraphSpec,
    inputs: Sequence[GraphValue],
    outputs: Sequence[GraphValue],
    config: ArtifactConfig | None = None,
) -> list[str]:
    """Where a loaded graph differs from ``spec`` (see ``tensor_problems``); empty = it follows it."""
    return tensor_problems("inputs", spec.inputs, inputs, config) + tensor_problems(
        "outputs", spec.outputs, outputs, config
    )


def tensor_problems(
    kind: str, want: Sequence[TensorSpec], got: Sequence[GraphValue], config: ArtifactConfig | None = None
) -> list[str]:
    """Names and their order, dtypes, ranks and, given the model's ``config``, every fixed axis (a dimension
    the graph leaves symbolic is accepted)."""
    names = [g.name for g in got]
    if names != [t.name for t in want]:
        return [f"{kind} {names}, expected {[t.name for t in want]}"]
    problems = []
    for t, g in zip(want, got, strict=True):
        if g.type != t.onnx_type:
            problems.append(f"{t.name} is {g.type}, expected {t.onnx_type}")
        elif len(g.shape) != len(t.axes):
            problems.append(f"{t.name} has shape {list(g.shape)}, expected axes {list(t.axes)}")
        elif config is not None:
            expected_shape = t.shape(config.layers, config.state_size)
            for axis, dim, expected in zip(t.axes, g.shape, expected_shape, strict=True):
                if isinstance(dim, int) and isinstance(expected, int) and dim != expected:
                    problems.append(f"{t.name} axis {axis} is {dim}, but the metadata says {expected}")
    return problems
