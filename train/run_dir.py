"""The run directory (``--out``): what a run writes, and what ``--resume`` reads back.

* ``config.json``: resolved model + training config, written at start;
* ``best.{safetensors,json}``: lowest valid BPC so far (``valid_bpc``, ``train_data``, ``step``; ``test_bpc``
  at the end); ``last.{safetensors,json}``: the latest weights (ASGD: the averaged ones);
* ``resume.pt``: weights, optimizer, step, data position, carried state, RNG states, schedules (tensors and
  plain containers only, read back with ``weights_only=True``);
* ``metrics.jsonl``: one JSON object per line, slash-namespaced keys, flushed line by line;
* ``train.log``: the greppable log lines.

Only rank 0 writes files; ``save_resume`` is collective (every process's carried state and RNG go in).
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import torch
from torch import Tensor

from lnrnn.errors import UserError
from lnrnn.train import distributed as D
from lnrnn.train.checkpoint import BEST, LAST, atomic_write, atomic_write_text, save_model
from lnrnn.train.checkpoint import load_tensors_weights_only as load_weights_only
from lnrnn.train.model import ByteLM
from lnrnn.train.optim import averaged_weights

CONFIG_FILE = "config.json"
RESUME_FILE = "resume.pt"


@dataclass
class Progress:
    """Everything the loop mutates, saved in ``resume.pt``."""

    step: int = 0
    epoch: int = 0
    pos: int = 0
    best_bpc: float = math.inf
    last_valid: float = math.nan
    history: list[float] = field(default_factory=list)  # valid BPC of every interval check (NT-ASGD)
    early_bad: int = 0
    elapsed_s: float = 0.0
    acc: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0, 0.0])  # nats, tokens, seconds, steps


def refuse_existing(run_dir: Path) -> None:
    """A new run never overwrites another one silently."""
    if (run_dir / CONFIG_FILE).exists():
        raise UserError(
            f"{run_dir} already holds a run; pass --resume to continue it or choose another --out"
        )


class RunDir:
    """The files of one run; on ranks other than 0 every write is a no-op."""

    def __init__(self, path: Path, is_main: bool) -> None:
        self.path, self.is_main = Path(path), is_main
        self.metrics_file: TextIO | None = None
        self.log_handler: logging.Handler | None = None

    # --- config, metrics and log ------------------------------------------------------------------
    def open(self, config: dict[str, Any], log: logging.Logger) -> None:
        """Write ``config.json``; append to ``metrics.jsonl`` and send ``log`` to ``train.log`` too."""
        if not self.is_main:
            return
        self.path.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.path / CONFIG_FILE, json.dumps(config, indent=2) + "\n")
        self.metrics_file = open(self.path / "metrics.jsonl", "a", encoding="utf-8")
        self.log_handler = logging.FileHandler(self.path / "train.log", encoding="utf-8")
        log.addHandler(self.log_handler)

    def close(self, log: logging.Logger) -> None:
        if self.metrics_file is not None:
            self.metrics_file.close()
        if self.log_handler is not None:
            log.removeHandler(self.log_handler)
            self.log_handler.close()

    def write_metrics(self, progress: Progress, record: dict[str, Any]) -> None:
        """One ``metrics.jsonl`` line: the step, the training time so far, then ``record``."""
        if self.metrics_file is None:
            return
        full = {"step": progress.step, "time_s": round(progress.elapsed_s, 3), **record}
        self.metrics_file.write(json.dumps(full) + "\n")
        self.metrics_file.flush()

    # --- checkpoints ------------------------------------------------------------------------------
    def save_weights(
        self, model: ByteLM, optimizer: torch.optim.Optimizer, meta: dict[str, Any], best: bool
    ) -> None:
        """``last`` (and ``best`` when ``best``), holding ASGD's averaged weights while it averages."""
        if not self.is_main:
            return
        with averaged_weights(optimizer):
            if best:
                save_model(self.path, BEST, model, meta)
            save_model(self.path, LAST, model, meta)

    def has_best(self) -> bool:
        return (self.path / f"{BEST}.json").is_file()

    # --- resume.pt --------------------------------------------------------------------------------
    def save_resume(self, ctx: D.DistContext, hidden: Tensor | None, fields: dict[str, Any]) -> None:
        """Collective: gathers every process's carried state and torch RNG; rank 0 writes ``resume.pt``.

        ``fields`` holds the rest (weights, optimizer, schedules, progress), as tensors and plain containers.
        """
        states = D.gather(ctx, hidden) if hidden is not None else None
        rngs = D.gather(ctx, torch.get_rng_state())
        if not ctx.is_main:
            return
        payload = {
            **fields,
            "hidden": torch.cat(states, dim=1) if states is not None else None,
            "torch_rng": rngs,
            "world": ctx.world,
        }
        atomic_write(self.path / RESUME_FILE, lambda tmp: torch.save(payload, tmp))

    def load_resume(self, ctx: D.DistContext) -> dict[str, Any]:
        """``resume.pt`` (weights only), with ``hidden`` and ``torch_rng`` cut to this process's share."""
        path = self.path / RESUME_FILE
        if not path.is_file():
            raise UserError(f"--resume: no {RESUME_FILE} in {self.path}")
        raw = load_weights_only(path)
        if raw["world"] != ctx.world:
            raise UserError(f"--resume: saved with {raw['world']} processes, now {ctx.world}")
        if raw["hidden"] is not None:
            raw["hidden"] = raw["hidden"].chunk(ctx.world, dim=1)[ctx.rank]
        raw["torch_rng"] = raw["torch_rng"][ctx.rank]
        return dict(raw)
