"""``step.onnx``: one time step of the whole model, no control flow (``ByteLM.forward`` on one token)."""

from __future__ import annotations

import onnx
import torch

from lnrnn.contract import STEP_GRAPH
from lnrnn.export.graphs.onnx_export import export_module
from lnrnn.export.graphs.wrappers import ModelStep
from lnrnn.train.model import ByteLM

TRACE_BATCH = 2  # traced at B=2; verify runs B=3 so a specialised batch fails loudly


def build_step(model: ByteLM) -> onnx.ModelProto:
    """token int64 [B], state float32 [L, B, S] -> logprobs float32 [B, V], state_out float32 [L, B, S]."""
    token = torch.zeros(TRACE_BATCH, dtype=torch.int64)
    state = model.init_state(TRACE_BATCH).detach().contiguous()
    return export_module(
        ModelStep(model),
        (token, state),
        STEP_GRAPH.input_names,
        STEP_GRAPH.output_names,
        STEP_GRAPH.dynamic_axes(),
    )
