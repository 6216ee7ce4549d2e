"""Evaluation during training: the exact valid BPC of a check, what a check decides, the test BPC at the end.

Every number is exact over its whole split (``evaluate_bytes``: one document, state carried across chunks)
and comes from ``lnrnn.bpc.bits_per_byte``. Rank 0 evaluates; the other processes receive its value.
Under NT-ASGD's averaging phase the averaged weights are the ones evaluated.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
import torch

from lnrnn.bpc import bits_per_byte
from lnrnn.train import distributed as D
from lnrnn.train.checkpoint import BEST, load_model, save_model
from lnrnn.train.evaluate import evaluate_bytes
from lnrnn.train.model import ByteLM
from lnrnn.train.optim import PlateauDecay, averaged_weights, nt_trigger
from lnrnn.train.run_dir import Progress, RunDir

log = logging.getLogger("lnrnn.train")


def valid_bpc(
    ctx: D.DistContext, model: ByteLM, optimizer: torch.optim.Optimizer, data: np.ndarray, chunk: int
) -> float:
    """Exact BPC of ``data`` on rank 0 (ASGD: averaged weights), broadcast to every process."""
    value = math.nan
    if ctx.is_main:
        with averaged_weights(optimizer):
            value = bits_per_byte(*evaluate_bytes(model, data, chunk))
    return D.broadcast_float(ctx, value)


@dataclass
class Decision:
    """What one validation check asks of the loop."""

    improved: bool = False  # a new best: save ``best``
    switch_to_asgd: bool = False  # NT-ASGD's trigger fired
    lr_decayed: bool = False  # the plateau rule just lowered the lr


def judge(
    p: Progress, value: float, scheduled: bool, plateau: PlateauDecay, sgd: bool, nonmono: int
) -> Decision:
    """Record a check's ``value`` in ``p``.

    Scheduled checks (every eval interval) also drive NT-ASGD (``sgd``: still in its plain-SGD phase), the
    plateau decay and the early-stop count; the final check of a run only records a possible new best.
    """
    p.last_valid = value
    decision = Decision()
    if scheduled:
        decision.switch_to_asgd = sgd and nt_trigger(p.history, value, nonmono)
        p.history.append(value)
        decision.lr_decayed = plateau.step(value)
        p.early_bad = 0 if value < p.best_bpc else p.early_bad + 1
    decision.improved = value < p.best_bpc
    if decision.improved:
        p.best_bpc = value
    return decision


def best_test_bpc(
    files: RunDir, p: Progress, device: torch.device, data: np.ndarray, chunk: int
) -> float | None:
    """Test BPC of the best checkpoint, written into ``best.json`` (rank 0; None without a test split)."""
    if not files.is_main or len(data) == 0 or not files.has_best():
        return None
    best, meta = load_model(files.path, BEST)
    test = bits_per_byte(*evaluate_bytes(best.to(device), data, chunk))
    meta = {k: v for k, v in meta.items() if k not in ("format", "lnrnn_version", "model", "vocab")}
    save_model(files.path, BEST, best, {**meta, "test_bpc": test})
    files.write_metrics(p, {"test/bpc": test})
    log.info(f"step {p.step} | test bpc {test:.4f} | best valid {meta['valid_bpc']:.4f}")
    return test
