"""Fast ``sequence.onnx`` (``--sequence fast``, default): only the recurrent step runs in per-layer ``Scan``s.

* Layer 0's input path depends only on the token, so ``cells[0].input_path(E[v])`` for all 257 tokens is
  computed once by the torch module itself and stored as a [V, G] table: one ``Gather`` per sequence.
* Upper layers' input paths (``cell.input_path``) and the head (``model.head`` + log-softmax + gather of
  the next token) run as batched ops over all T.
* Each layer's ``Scan`` body is the exported ``cell.step`` (+ ``cell.output``).

Every piece is a ``torch.onnx.export`` of a wrapper from :mod:`lnrnn.export.graphs.wrappers`, spliced in here.
"""

from __future__ import annotations

import numpy as np
import onnx
import torch
from onnx import helper, numpy_helper

from lnrnn.contract import SEQUENCE_GRAPH, SEQUENCE_INPUTS, SEQUENCE_OUTPUTS
from lnrnn.export.graphs.onnx_export import OPSET, export_module
from lnrnn.export.graphs.splice import Spliced, body_graph, contract_value_info, splice
from lnrnn.export.graphs.wrappers import CellStep, InputPath, SequenceHead
from lnrnn.train.model import ByteLM

TRACE_BATCH, TRACE_TIME = 2, 5  # verify runs other shapes, so a specialised axis fails loudly


def _cell_step(model: ByteLM, layer: int) -> onnx.ModelProto:
    cell = model.recurrent_cells[layer]
    state = torch.zeros(TRACE_BATCH, cell.state_size)
    xp = torch.zeros(TRACE_BATCH, cell.gate_multiple * cell.hidden)
    axes = {name: {0: "batch"} for name in ("state", "xp", "state_out", "h")}
    return export_module(CellStep(cell), (state, xp), ("state", "xp"), ("state_out", "h"), axes)


def _input_path(model: ByteLM, layer: int) -> onnx.ModelProto:
    x = torch.zeros(TRACE_BATCH, TRACE_TIME, model.config.hidden)
    axes = {"x": {0: "batch", 1: "time"}, "xp": {0: "batch", 1: "time"}}
    return export_module(InputPath(model.recurrent_cells[layer]), (x,), ("x",), ("xp",), axes)


def _head(model: ByteLM, n_outputs: int) -> onnx.ModelProto:
    tokens = torch.zeros(TRACE_BATCH, TRACE_TIME, dtype=torch.int64)
    outs = tuple(torch.zeros(TRACE_BATCH, TRACE_TIME, model.config.hidden) for _ in range(n_outputs))
    names = tuple(f"h{i}" for i in range(n_outputs))
    axes = {name: {0: "batch", 1: "time"} for name in ("tokens", *names)}
    axes |= {"token_logprobs": {0: "batch", 1: "time_minus_1"}, "last_logprobs": {0: "batch"}}
    return export_module(
        SequenceHead(model), (tokens, *outs), ("tokens", *names), ("token_logprobs", "last_logprobs"), axes
    )


def input_table(model: ByteLM) -> np.ndarray:
    """``cells[0].input_path(E[v])`` for every token v: [V, G0], exact (it depends only on the token)."""
    with torch.no_grad():
        return model.recurrent_cells[0].input_path(model.embedding.weight).float().numpy()


def build_fast(model: ByteLM) -> onnx.ModelProto:
    """tokens int64 [B, T], state [L, B, S] -> token_logprobs [B, T-1], last_logprobs [B, V], state_out."""
    model.eval()
    cfg = model.config
    tokens, state = SEQUENCE_INPUTS
    token_lp_out, last_lp_out, state_out = SEQUENCE_OUTPUTS
    parts: list[Spliced] = []
    inits = [numpy_helper.from_array(input_table(model), "l0/input_table")]
    nodes = [helper.make_node("Gather", ["l0/input_table", tokens], ["l0/xp"], axis=0)]  # (B, T, G0)
    outputs: list[str] = []
    finals: list[str] = []
    for i in range(cfg.layers):
        if i > 0:  # upper layers: input path over all T at once
            parts.append(
                splice(_input_path(model, i).graph, f"l{i}/in/", {"x": outputs[-1], "xp": f"l{i}/xp"})
            )
        inits.append(numpy_helper.from_array(np.array(i, np.int64), f"l{i}/index"))
        nodes.append(helper.make_node("Gather", [state, f"l{i}/index"], [f"l{i}/state0"], axis=0))  # (B, S)
        rename = {
            "state": f"l{i}/b/state",
            "xp": f"l{i}/b/xp",
            "state_out": f"l{i}/b/state_out",
            "h": f"l{i}/b/h",
        }
        step = splice(_cell_step(model, i).graph, f"l{i}/b/", rename)
        body = body_graph(f"layer{i}_step", [step], step.inputs, step.outputs)
        scan = helper.make_node(
            "Scan",
            [f"l{i}/state0", f"l{i}/xp"],
            [f"l{i}/state_final", f"l{i}/h"],
            name=f"l{i}/scan",
            body=body,
            num_scan_inputs=1,
            scan_input_axes=[1],
            scan_output_axes=[1],
        )
        nodes.append(scan)
        outputs.append(f"l{i}/h")  # (B, T, H)
        finals.append(f"l{i}/state_final")
    head_inputs = outputs if cfg.sum_layers else outputs[-1:]
    rename = {"tokens": tokens, "token_logprobs": token_lp_out, "last_logprobs": last_lp_out}
    rename |= {f"h{i}": name for i, name in enumerate(head_inputs)}
    parts.append(splice(_head(model, len(head_inputs)).graph, "head/", rename))
    inits.append(numpy_helper.from_array(np.array([0], np.int64), "axis0"))
    for name in finals:
        nodes.append(helper.make_node("Unsqueeze", [name, "axis0"], [f"{name}/1"]))
    nodes.append(helper.make_node("Concat", [f"{name}/1" for name in finals], [state_out], axis=0))

    for part in parts:
        nodes.extend(part.nodes)
        inits.extend(part.initializers)
    graph = helper.make_graph(
        _toposort(nodes),
        "lnrnn_sequence_fast",
        [contract_value_info(t, cfg.layers, cfg.state_size) for t in SEQUENCE_GRAPH.inputs],
        [contract_value_info(t, cfg.layers, cfg.state_size) for t in SEQUENCE_GRAPH.outputs],
        initializer=inits,
    )
    model_proto = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="lnrnn.export"
    )
    model_proto.ir_version = 8
    return model_proto


def _toposort(nodes: list[onnx.NodeProto]) -> list[onnx.NodeProto]:
    """Order nodes so every input is produced before use (splicing appends parts out of order)."""
    produced = {o for n in nodes for o in n.output}
    ready: set[str] = set()
    ordered: list[onnx.NodeProto] = []
    pending = list(nodes)
    while pending:
        rest = []
        for node in pending:
            if all(i == "" or i not in produced or i in ready for i in node.input):
                ordered.append(node)
                ready.update(node.output)
            else:
                rest.append(node)
        if len(rest) == len(pending):
            raise ValueError(f"cycle or missing producer among {[n.name for n in rest]}")
        pending = rest
    return ordered
