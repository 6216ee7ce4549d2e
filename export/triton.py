"""A Triton Inference Server model repository from an exported model directory.

Triton batches requests (dynamic and sequence batchers) only when every input and output has the batch
dimension first; the lnrnn step graph's state is [L, B, S]. So the repository holds wrapped copies:

* ``<name>_step``: the step graph with ``state`` [B, L, S] in and ``state_out`` [B, L, S] out (a Transpose
  each side), plus the sequence batcher's control inputs ``START`` and ``READY`` (INT32 [B, 1]). START = 1
  replaces that row's state with the learned initial state; READY = 0 (an empty batch slot) passes the row's
  state through unchanged. Its config uses the sequence batcher with **implicit state**: Triton keeps each
  sequence's state on the server (``state``/``state_out`` are not client tensors) and starts it from the
  learned initial state (``initial_state/initial_state.bin``, raw float32 [L, S]); a client sends one
  ``token`` per request with a ``sequence_id``, and reads ``logprobs``.
* ``<name>_sequence``: the sequence graph for whole-text scoring with the state inside: ``tokens`` INT64
  [B, T] (a document is BOS = 256 then its bytes) -> ``token_logprobs`` [B, T-1], ``last_logprobs``
  [B, 257]; dynamic batching (Triton batches requests of equal T).

Nothing here needs Triton: the configs are plain text, checked by the tests against Triton's own
``model_config.proto`` (shipped by ``tritonclient``), and the graphs run in ONNX Runtime.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from lnrnn.contract import (
    BOS_ID,
    SEQUENCE_FILE,
    SEQUENCE_INT8_FILE,
    STEP_FILE,
    STEP_INT8_FILE,
    VOCAB_SIZE,
    ArtifactMetadata,
)
from lnrnn.errors import UserError
from lnrnn.export.graphs.onnx_export import get_metadata, set_metadata

CONFIG_FILE = "config.pbtxt"
MODEL_FILE = "model.onnx"
INITIAL_STATE_DIR = "initial_state"  # Triton reads initial_state.data_file from here
INITIAL_STATE_FILE = "initial_state.bin"
START, READY = "START", "READY"
STEP_LABEL, SEQUENCE_LABEL = "triton-step", "triton-sequence"  # their lnrnn.graph metadata
# A Triton release with the ONNX Runtime backend and implicit state; any since 21.x should do (not run here)
TRITON_IMAGE = "nvcr.io/nvidia/tritonserver:24.08-py3"
IDLE_US = 600_000_000  # a sequence idle 10 minutes is released (Triton's default is 1 s)


@dataclass(frozen=True)
class TritonRepository:
    root: Path
    step: str
    sequence: str
    files: dict[str, int]


def _rename_uses(graph: onnx.GraphProto, old: str, new: str) -> None:
    """Every node input named ``old`` (in subgraphs too: they may read outer-scope values) becomes ``new``."""
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name == old:
                node.input[i] = new
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                _rename_uses(attr.g, old, new)
            for g in attr.graphs:
                _rename_uses(g, old, new)


def _rename_output(graph: onnx.GraphProto, old: str, new: str) -> None:
    for node in graph.node:
        for i, name in enumerate(node.output):
            if name == old:
                node.output[i] = new
    _rename_uses(graph, old, new)


def _set_nodes(graph: onnx.GraphProto, nodes: list[onnx.NodeProto]) -> None:
    """Replace the node list (kept in topological order: new input-side nodes first, output-side last)."""
    copies = [onnx.NodeProto() for _ in nodes]
    for copy, node in zip(copies, nodes, strict=True):
        copy.CopyFrom(node)
    del graph.node[:]
    graph.node.extend(copies)


def _replace_io(
    graph: onnx.GraphProto, inputs: list[onnx.ValueInfoProto], outputs: list[onnx.ValueInfoProto]
) -> None:
    names = {v.name for v in [*graph.input, *graph.output, *inputs, *outputs]}
    kept = [v for v in graph.value_info if v.name not in names]  # old shapes of renamed tensors must go
    del graph.value_info[:]
    graph.value_info.extend(kept)
    del graph.input[:]
    graph.input.extend(inputs)
    del graph.output[:]
    graph.output.extend(outputs)


def batch_first_step(step: onnx.ModelProto, meta: ArtifactMetadata) -> onnx.ModelProto:
    """The step graph with state [B, L, S] and the START/READY controls (see the module docstring)."""
    model = onnx.ModelProto()
    model.CopyFrom(step)
    g = model.graph
    cfg = meta.config
    L, S = cfg.layers, cfg.state_size
    _rename_uses(g, "state", "lbs_state")
    _rename_output(g, "state_out", "lbs_state_out")
    initial = np.asarray(meta.initial_state, dtype=np.float32)[None]  # [1, L, S]
    g.initializer.extend(
        [
            numpy_helper.from_array(initial, "triton_initial_state"),
            numpy_helper.from_array(np.array([-1, 1, 1], dtype=np.int64), "triton_flag_shape"),
        ]
    )
    before = [
        # START = 1: this row begins a sequence, so it starts from the learned initial state
        helper.make_node("Reshape", [START, "triton_flag_shape"], ["start_b11"]),
        helper.make_node("Cast", ["start_b11"], ["start_bool"], to=TensorProto.BOOL),
        helper.make_node("Where", ["start_bool", "triton_initial_state", "state"], ["state_in_blf"]),
        helper.make_node("Transpose", ["state_in_blf"], ["lbs_state"], perm=[1, 0, 2]),
    ]
    after = [
        helper.make_node("Transpose", ["lbs_state_out"], ["state_next_blf"], perm=[1, 0, 2]),
        # READY = 0: an empty slot of the batch; its state passes through untouched
        helper.make_node("Reshape", [READY, "triton_flag_shape"], ["ready_b11"]),
        helper.make_node("Cast", ["ready_b11"], ["ready_bool"], to=TensorProto.BOOL),
        helper.make_node("Where", ["ready_bool", "state_next_blf", "state_in_blf"], ["state_out"]),
    ]
    _set_nodes(g, [*before, *g.node, *after])
    _replace_io(
        g,
        [
            helper.make_tensor_value_info("token", TensorProto.INT64, ["batch"]),
            helper.make_tensor_value_info("state", TensorProto.FLOAT, ["batch", L, S]),
            helper.make_tensor_value_info(START, TensorProto.INT32, ["batch", 1]),
            helper.make_tensor_value_info(READY, TensorProto.INT32, ["batch", 1]),
        ],
        [
            helper.make_tensor_value_info("logprobs", TensorProto.FLOAT, ["batch", VOCAB_SIZE]),
            helper.make_tensor_value_info("state_out", TensorProto.FLOAT, ["batch", L, S]),
        ],
    )
    set_metadata(model, replace(meta, graph=STEP_LABEL))
    onnx.checker.check_model(model)
    return model


def stateless_sequence(sequence: onnx.ModelProto, meta: ArtifactMetadata) -> onnx.ModelProto:
    """The sequence graph with the learned initial state inside: ``tokens`` [B, T] in, log-probs out."""
    model = onnx.ModelProto()
    model.CopyFrom(sequence)
    g = model.graph
    cfg = meta.config
    initial = np.asarray(meta.initial_state, dtype=np.float32)[:, None, :]  # [L, 1, S]
    g.initializer.extend(
        [
            numpy_helper.from_array(initial, "triton_initial_state"),
            numpy_helper.from_array(np.array([0], dtype=np.int64), "triton_zero"),
            numpy_helper.from_array(np.array([1], dtype=np.int64), "triton_one"),
            numpy_helper.from_array(np.array([cfg.layers], dtype=np.int64), "triton_layers"),
            numpy_helper.from_array(np.array([cfg.state_size], dtype=np.int64), "triton_state_size"),
        ]
    )
    _rename_uses(g, "state", "triton_state")
    before = [
        helper.make_node("Shape", ["tokens"], ["tokens_shape"]),
        helper.make_node("Slice", ["tokens_shape", "triton_zero", "triton_one"], ["batch_size"]),
        helper.make_node(
            "Concat", ["triton_layers", "batch_size", "triton_state_size"], ["state_shape"], axis=0
        ),
        helper.make_node("Expand", ["triton_initial_state", "state_shape"], ["triton_state"]),
    ]
    _set_nodes(g, [*before, *g.node])
    _replace_io(
        g,
        [helper.make_tensor_value_info("tokens", TensorProto.INT64, ["batch", "time"])],
        [
            helper.make_tensor_value_info("token_logprobs", TensorProto.FLOAT, ["batch", "time_minus_1"]),
            helper.make_tensor_value_info("last_logprobs", TensorProto.FLOAT, ["batch", VOCAB_SIZE]),
        ],
    )
    set_metadata(model, replace(meta, graph=SEQUENCE_LABEL))
    onnx.checker.check_model(model)
    return model


def step_config(name: str, meta: ArtifactMetadata, max_batch_size: int) -> str:
    L, S = meta.config.layers, meta.config.state_size
    return f"""# lnrnn step graph, sequence batcher with implicit state (written by `lnrnn export-triton`).
# A client sends one byte per request: token (INT64 [1]; BOS = {BOS_ID} first), with sequence_id and
# sequence_start/sequence_end; Triton keeps the recurrent state of every sequence on the server.
name: "{name}"
platform: "onnxruntime_onnx"
max_batch_size: {max_batch_size}
input [
  {{ name: "token" data_type: TYPE_INT64 dims: [ 1 ] reshape: {{ shape: [ ] }} }}
]
output [
  {{ name: "logprobs" data_type: TYPE_FP32 dims: [ {VOCAB_SIZE} ] }}
]
sequence_batching {{
  max_sequence_idle_microseconds: {IDLE_US}
  direct {{ }}
  control_input [
    {{ name: "{START}" control [ {{ kind: CONTROL_SEQUENCE_START int32_false_true: [ 0, 1 ] }} ] }},
    {{ name: "{READY}" control [ {{ kind: CONTROL_SEQUENCE_READY int32_false_true: [ 0, 1 ] }} ] }}
  ]
  state [
    {{
      input_name: "state"
      output_name: "state_out"
      data_type: TYPE_FP32
      dims: [ {L}, {S} ]
      initial_state: {{
        name: "learned"
        data_type: TYPE_FP32
        dims: [ {L}, {S} ]
        data_file: "{INITIAL_STATE_FILE}"
      }}
    }}
  ]
}}
"""


def sequence_config(name: str, max_batch_size: int) -> str:
    return f"""# lnrnn whole-text scoring (`lnrnn export-triton`): tokens = BOS ({BOS_ID}) then the bytes.
# bits of the text = -sum(token_logprobs) / ln 2. Requests of equal length are batched together.
name: "{name}"
platform: "onnxruntime_onnx"
max_batch_size: {max_batch_size}
input [
  {{ name: "tokens" data_type: TYPE_INT64 dims: [ -1 ] }}
]
output [
  {{ name: "token_logprobs" data_type: TYPE_FP32 dims: [ -1 ] }},
  {{ name: "last_logprobs" data_type: TYPE_FP32 dims: [ {VOCAB_SIZE} ] }}
]
dynamic_batching {{ max_queue_delay_microseconds: 1000 }}
"""


def export_triton(
    model_dir: Path, out: Path, *, name: str = "lnrnn", precision: str = "fp32", max_batch_size: int = 64
) -> TritonRepository:
    """Write ``out/<name>_step`` and ``out/<name>_sequence`` (config.pbtxt, 1/model.onnx); replaces them."""
    if not model_dir.is_dir():
        raise UserError(f"model directory {model_dir} does not exist")
    if precision not in ("fp32", "int8"):
        raise UserError(f"precision must be fp32 or int8, got {precision!r}")
    if max_batch_size < 1:
        raise UserError(f"--max-batch-size must be >= 1 (Triton batches only then), got {max_batch_size}")
    if not name.replace("_", "").replace("-", "").isalnum():
        raise UserError(f"--name {name!r}: use letters, digits, '-' and '_' (it names directories)")
    step_file, seq_file = (
        (STEP_INT8_FILE, SEQUENCE_INT8_FILE) if precision == "int8" else (STEP_FILE, SEQUENCE_FILE)
    )
    for file in (step_file, seq_file):
        if not (model_dir / file).is_file():
            hint = " (export with --quantize int8, or use --precision fp32)" if precision == "int8" else ""
            raise UserError(f"{model_dir / file} does not exist{hint}")
    step = onnx.load(str(model_dir / step_file))
    sequence = onnx.load(str(model_dir / seq_file))
    meta = get_metadata(step)
    step_name, seq_name = f"{name}_step", f"{name}_sequence"
    files: dict[str, int] = {}

    def write(model_name: str, graph: onnx.ModelProto, config: str) -> Path:
        root = out / model_name
        if root.exists():
            shutil.rmtree(root)
        (root / "1").mkdir(parents=True)
        onnx.save(graph, str(root / "1" / MODEL_FILE))
        (root / CONFIG_FILE).write_text(config)
        return root

    root = write(step_name, batch_first_step(step, meta), step_config(step_name, meta, max_batch_size))
    (root / INITIAL_STATE_DIR).mkdir()
    np.asarray(meta.initial_state, dtype="<f4").tofile(root / INITIAL_STATE_DIR / INITIAL_STATE_FILE)
    write(seq_name, stateless_sequence(sequence, meta), sequence_config(seq_name, max_batch_size))
    for path in sorted(out.rglob("*")):
        if path.is_file() and path.relative_to(out).parts[0] in (step_name, seq_name):
            files[str(path.relative_to(out))] = path.stat().st_size
    return TritonRepository(out, step_name, seq_name, files)


def run_command(repo: Path) -> str:
    """The ``docker run`` line that serves ``repo`` with Triton on ports 8000 (HTTP) and 8001 (gRPC)."""
    return (
        f"docker run --rm -p 8000:8000 -p 8001:8001 -v {repo.resolve()}:/models {TRITON_IMAGE} "
        "tritonserver --model-repository=/models"
    )
