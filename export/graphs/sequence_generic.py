"""Generic ``sequence.onnx`` (``--sequence generic``): an ONNX ``Scan`` whose body is the exported step graph.

The Scan carries the state and the previous step's log-probs; each step first gathers the current token's
log-prob from the previous distribution, then runs the step graph. The first gathered value (before any
token was read) is dropped, so outputs are O(T): ``token_logprobs`` [B, T-1], ``last_logprobs`` [B, V].
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from lnrnn.contract import (
    SEQUENCE_GRAPH,
    SEQUENCE_INPUTS,
    SEQUENCE_OUTPUTS,
    STEP_INPUTS,
    STEP_OUTPUTS,
    VOCAB_SIZE,
)
from lnrnn.export.graphs.splice import (
    body_graph,
    contract_value_info,
    io_names,
    splice,
    value_info,
    with_name,
)

INT64_MAX = np.iinfo(np.int64).max


def build_generic(step: onnx.ModelProto) -> onnx.ModelProto:
    """Wrap ``step.onnx`` (see :func:`lnrnn.export.graphs.step.build_step`) into a whole-sequence graph."""
    if tuple(io_names(step)[0]) != STEP_INPUTS or tuple(io_names(step)[1]) != STEP_OUTPUTS:
        raise ValueError(f"step graph must have inputs {STEP_INPUTS} and outputs {STEP_OUTPUTS}")
    tokens, state = SEQUENCE_INPUTS
    token_lp_out, last_lp_out, state_out = SEQUENCE_OUTPUTS
    in_state, in_prev, in_token = "body/state", "body/prev_logprobs", "body/token"
    out_state, out_lp, out_token_lp = "body/state_out", "body/logprobs", "body/token_logprob"

    step_part = splice(
        step.graph,
        "step/",
        {"token": in_token, "state": in_state} | dict(zip(STEP_OUTPUTS, (out_lp, out_state), strict=True)),
    )
    gather_part = splice(
        helper.make_graph(
            [
                helper.make_node("Unsqueeze", [in_token, "axis1"], ["index"]),
                helper.make_node("GatherElements", [in_prev, "index"], ["picked"], axis=1),
                helper.make_node("Squeeze", ["picked", "axis1"], [out_token_lp]),
            ],
            "gather",
            [],
            [],
            initializer=[numpy_helper.from_array(np.array([1], np.int64), "axis1")],
        ),
        "gather/",
        {in_token: in_token, in_prev: in_prev, out_token_lp: out_token_lp},
    )
    step_in = {v.name: v for v in step_part.inputs}
    step_out = {v.name: v for v in step_part.outputs}
    body = body_graph(
        "step_body",
        [gather_part, step_part],
        [step_in[in_state], with_name(step_out[out_lp], in_prev), step_in[in_token]],
        [step_out[out_state], step_out[out_lp], value_info(out_token_lp, TensorProto.FLOAT, ["batch"])],
    )

    consts = {
        "zero_1d": np.array([0], np.int64),
        "one_1d": np.array([1], np.int64),
        "vocab_1d": np.array([VOCAB_SIZE], np.int64),
        "int64_max_1d": np.array([INT64_MAX], np.int64),
    }
    nodes = [
        # prev log-probs start as zeros [B, V]; the value gathered from them is dropped
        helper.make_node("Shape", [tokens], ["tokens_shape"]),
        helper.make_node("Slice", ["tokens_shape", "zero_1d", "one_1d"], ["batch_1d"]),
        helper.make_node("Concat", ["batch_1d", "vocab_1d"], ["prev_shape"], axis=0),
        helper.make_node(
            "ConstantOfShape",
            ["prev_shape"],
            ["prev0"],
            value=helper.make_tensor("v", TensorProto.FLOAT, [1], [0.0]),
        ),
        helper.make_node(
            "Scan",
            [state, "prev0", tokens],
            [state_out, last_lp_out, "all_token_logprobs"],
            body=body,
            num_scan_inputs=1,
            scan_input_axes=[1],
            scan_output_axes=[1],
        ),
        helper.make_node(
            "Slice", ["all_token_logprobs", "one_1d", "int64_max_1d", "one_1d"], [token_lp_out]
        ),  # drop t=0
    ]
    state_vi = next(v for v in step.graph.input if v.name == "state")
    layers, _, state_size = (d.dim_value for d in state_vi.type.tensor_type.shape.dim)  # [L, B, S]
    graph = helper.make_graph(
        nodes,
        "lnrnn_sequence_generic",
        [contract_value_info(t, layers, state_size) for t in SEQUENCE_GRAPH.inputs],
        [contract_value_info(t, layers, state_size) for t in SEQUENCE_GRAPH.outputs],
        initializer=[numpy_helper.from_array(v, k) for k, v in consts.items()],
    )
    model = helper.make_model(graph, opset_imports=list(step.opset_import), producer_name="lnrnn.export")
    model.ir_version = step.ir_version
    return model
