"""A trainable ``ByteLM`` from an exported model directory (its fp32 ``step.onnx``), so that a shipped model
can be fine-tuned when its training run is gone (``lnrnn train --init-from models/default``).

The matrices are found by the step graph's wiring (``lnrnn.codec.integer.weights``, the reader format 2
uses), not by guessed names, and copied into the modules of ``train/cells.py``: ``x @ W`` in the graph is
``nn.Linear`` with weight ``W.T``; the two layer-norm slices of each path ([r; z] and n) are the two
``LayerNorm`` modules of ``GroupedLayerNorm``. Only what that reader supports is accepted (a layer-norm GRU
with a tied output layer); anything else is a one-line ``UserError``.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np
import onnx
import torch

from lnrnn.codec.errors import ModelFileError
from lnrnn.codec.integer.onnxfile import OnnxFormatError, read_graph
from lnrnn.codec.integer.weights import gru_weights
from lnrnn.contract import STEP_FILE, ArtifactMetadata, ContractError
from lnrnn.errors import UserError
from lnrnn.train.model import ByteLM, ModelConfig


def resolve_source(source: Path) -> Path:
    """``--init-from``'s path, or the shipped model of that name (``default``, ``ladder-1m``) when a bare
    name is no path here."""
    if source.exists():
        return source
    shipped = Path(str(resources.files("lnrnn.models"))) / source.name
    if len(source.parts) == 1 and shipped.is_dir():
        return shipped
    raise UserError(f"--init-from: {source} does not exist (nor is it a shipped model's name)")


def is_export(source: Path) -> bool:
    """An exported model directory (holds ``step.onnx``) rather than a training run."""
    return source.is_dir() and (source / STEP_FILE).is_file()


def export_metadata(model_dir: Path) -> ArtifactMetadata:
    path = model_dir / STEP_FILE
    try:
        props = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
    except Exception as err:  # OSError, or protobuf's own DecodeError for a truncated or foreign file
        raise UserError(f"{path}: unreadable ONNX file ({type(err).__name__}: {err})") from err
    try:
        return ArtifactMetadata.from_props(props)
    except ContractError as err:
        raise UserError(f"{path}: not an lnrnn step graph ({err})") from err


def architecture(model_dir: Path) -> dict[str, object]:
    """The ``ModelConfig`` architecture keys of an exported model."""
    config = export_metadata(model_dir).config
    return {
        "cell": config.cell,
        "norm": config.norm,
        "layers": config.layers,
        "hidden": config.hidden,
        "embedding": config.embedding,
        "sum_layers": False,
        "learned_init": True,
    }


def model_from_export(model_dir: Path, config: ModelConfig | None = None) -> ByteLM:
    """The model whose fp32 step graph is ``model_dir/step.onnx`` (``config``: the regularisers to train
    with; its architecture must be the export's)."""
    meta = export_metadata(model_dir)
    path = model_dir / STEP_FILE
    try:
        weights = gru_weights(read_graph(path.read_bytes()), meta.config, meta.initial_state)
    except (ModelFileError, OnnxFormatError) as err:
        raise UserError(f"--init-from {model_dir}: cannot read its weights back: {err}") from err
    arch = architecture(model_dir)
    if config is None:
        config = ModelConfig(**arch)  # type: ignore[arg-type]
    wrong = sorted(k for k, v in arch.items() if getattr(config, k) != v)
    if wrong:
        raise UserError(f"--init-from {model_dir}: its weights fix {', '.join(wrong)}")
    model = ByteLM(config)
    hidden = weights.hidden
    tensors: dict[str, np.ndarray] = {
        "embedding.weight": weights.embedding,
        "output_bias": weights.output_bias,
        "initial_state": weights.initial_state.astype(np.float32),
    }
    for i, layer in enumerate(weights.layers):
        tensors[f"cells.{i}.w_ih.weight"] = layer.w_in.T
        tensors[f"cells.{i}.w_hh.weight"] = layer.w_rec.T
        for path_name, gain, bias in (
            ("x", layer.gain_in, layer.bias_in),
            ("h", layer.gain_rec, layer.bias_rec),
        ):
            for k, (lo, hi) in enumerate(((0, 2 * hidden), (2 * hidden, 3 * hidden))):
                tensors[f"cells.{i}.norm_{path_name}.norms.{k}.weight"] = gain[lo:hi]
                tensors[f"cells.{i}.norm_{path_name}.norms.{k}.bias"] = bias[lo:hi]
    state = {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32)) for k, v in tensors.items()}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        first = str(err).strip().splitlines()[0]
        raise UserError(f"--init-from {model_dir}: the weights do not fit the model ({first})") from err
    model.eval()
    return model
