"""The byte-level recurrent language model: embedding -> stacked cells -> tied output layer.

The model is defined once, here. Training, evaluation and the ONNX exporter all call these modules.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, NamedTuple, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lnrnn.contract import VOCAB_SIZE
from lnrnn.train.cells import CELLS, INITS, NORMS, RecurrentCell, make_cell, run_layer
from lnrnn.train.regularizers import embedding_dropout, locked_dropout

# The fields that shape the weights: a checkpoint's tensors fit a model only if these agree.
ARCHITECTURE_KEYS = ("cell", "norm", "layers", "hidden", "embedding", "sum_layers", "learned_init")


@dataclass
class ModelConfig:
    cell: str = "gru"  # gru | lstm | mgu
    norm: str = "layer"  # layer (Ba et al. 2016) | none | batch (input path only, Laurent et al. 2015)
    layers: int = 1  # stacked recurrent layers
    hidden: int = 256  # H: units per layer
    embedding: int = 0  # E: embedding size, 0 = same as hidden; if E != H the top projects H -> E
    sum_layers: bool = False  # feed the sum of all layers' outputs to the output layer (Hafner's tip)
    learned_init: bool = True  # learn the initial state instead of starting from zeros
    init: str = "xavier"  # xavier | orthogonal | variance_scaling
    dropout_embedding: float = 0.0  # AWD "dropoute": drop whole byte embeddings
    dropout_input: float = 0.0  # AWD "dropouti": locked dropout on the first layer's input
    dropout_hidden: float = 0.0  # AWD "dropouth": locked dropout between layers
    dropout_output: float = 0.0  # AWD "dropout": locked dropout before the output layer
    weight_drop: float = 0.0  # AWD "wdrop": DropConnect on the hidden-to-hidden weights
    hoist: bool = True  # compute the input path for all T before the time loop (faster)

    def __post_init__(self) -> None:
        if self.cell not in CELLS:
            raise ValueError(f"unknown cell {self.cell!r}; expected one of {CELLS}")
        if self.norm not in NORMS:
            raise ValueError(f"unknown norm {self.norm!r}; expected one of {NORMS}")
        if self.init not in INITS:
            raise ValueError(f"unknown init {self.init!r}; expected one of {INITS}")
        if self.layers < 1 or self.hidden < 1 or self.embedding < 0:
            raise ValueError("layers and hidden must be >= 1, embedding >= 0")
        for name in ("dropout_embedding", "dropout_input", "dropout_hidden", "dropout_output", "weight_drop"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {value}")

    @property
    def embedding_size(self) -> int:
        return self.embedding or self.hidden

    @property
    def state_size(self) -> int:
        return 2 * self.hidden if self.cell == "lstm" else self.hidden

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> ModelConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ValueError(f"unknown model config keys: {', '.join(unknown)}")
        return cls(**raw)


class ModelOutput(NamedTuple):
    logits: Tensor  # (B, T, V)
    state: Tensor  # (L, B, S)
    top_raw: Tensor  # (B, T, H) top-layer output before dropout (for TAR)
    top_dropped: Tensor  # (B, T, H) after dropout (for AR)


class ByteLM(nn.Module):
    """Tokens (B, T) in {0..255, BOS=256} -> next-byte logits (B, T, 257), with recurrent state (L, B, S)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        hidden, emb = config.hidden, config.embedding_size
        self.embedding = nn.Embedding(VOCAB_SIZE, emb)
        self.cells = nn.ModuleList(
            make_cell(config.cell, emb if i == 0 else hidden, hidden, config.norm, config.weight_drop)
            for i in range(config.layers)
        )
        # Tying needs the top output to have the embedding size: project when H != E (never silently).
        self.projection = nn.Linear(hidden, emb, bias=False) if hidden != emb else None
        self.output_bias = nn.Parameter(torch.zeros(VOCAB_SIZE))
        self.initial_state = nn.Parameter(
            torch.zeros(config.layers, config.state_size), requires_grad=config.learned_init
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.uniform_(self.embedding.weight, -0.1, 0.1)
        for cell in self.recurrent_cells:
            cell.reset_parameters(self.config.init)
        if self.projection is not None:
            nn.init.xavier_uniform_(self.projection.weight)

    @property
    def recurrent_cells(self) -> list[RecurrentCell]:
        return cast(list[RecurrentCell], list(self.cells))  # ModuleList is untyped: it holds only these

    def init_state(self, batch: int) -> Tensor:
        """The (learned) initial state, expanded to a batch: (L, B, S)."""
        return self.initial_state.unsqueeze(1).expand(-1, batch, -1)

    def top_output(self, outputs: list[Tensor] | tuple[Tensor, ...]) -> Tensor:
        """Layer outputs (B, T, H) each -> what feeds the output layer: the top one, or their sum."""
        return torch.stack(list(outputs)).sum(0) if self.config.sum_layers else outputs[-1]

    def head(self, top: Tensor) -> Tensor:
        """Top output (..., H) -> logits (..., V); output weights are the embedding (Press & Wolf 2017)."""
        if self.projection is not None:
            top = self.projection(top)
        return F.linear(top, self.embedding.weight, self.output_bias)

    def run(self, tokens: Tensor, state: Tensor | None = None) -> ModelOutput:
        cfg = self.config
        if state is None:
            state = self.init_state(tokens.shape[0])
        weight = embedding_dropout(self.embedding.weight, cfg.dropout_embedding, self.training)
        x = locked_dropout(F.embedding(tokens, weight), cfg.dropout_input, self.training)  # (B, T, E)
        states, outputs = [], []
        for i, cell in enumerate(self.recurrent_cells):
            if i > 0:
                x = locked_dropout(x, cfg.dropout_hidden, self.training)
            x, s = run_layer(cell, x, state[i], hoist=cfg.hoist)  # (B, T, H), (B, S)
            states.append(s)
            outputs.append(x)
        top_raw = self.top_output(outputs)
        top = locked_dropout(top_raw, cfg.dropout_output, self.training)
        return ModelOutput(self.head(top), torch.stack(states), top_raw, top)

    def forward(self, tokens: Tensor, state: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """tokens (B, T), state (L, B, S) or None (initial state) -> logits (B, T, V), state (L, B, S)."""
        out = self.run(tokens, state)
        return out.logits, out.state

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
