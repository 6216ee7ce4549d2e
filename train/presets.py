"""Training config (a dataclass, one comment per field) and named presets; explicit flags override presets.

A preset is a dict of overrides whose keys are fields of ``ModelConfig`` or ``TrainConfig``; resolving is
``defaults <- preset <- flags``, and an unknown key or preset is an error, never ignored.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from lnrnn.errors import UserError
from lnrnn.train.model import ARCHITECTURE_KEYS, ModelConfig


@dataclass
class TrainConfig:
    data: str = ""  # corpus file (split 90/5/5, text8/enwik8 90M/5M/5M) or directory of train/valid/test
    split: str = ""  # "train,valid,test" fractions for a single file; "" = default rule
    batch_size: int = 16  # B: contiguous streams (global over all processes)
    bptt: int = 32  # truncated BPTT length; state is carried (detached) across chunks
    random_bptt: bool = (
        False  # AWD-LSTM: base = bptt (p 0.95) or bptt/2, len ~ N(base, 5) >= 5, lr * len/bptt
    )
    optimizer: str = "adam"  # adam | ntasgd (SGD -> averaged SGD, Merity et al. 2018)
    lr: float = 2e-3  # learning rate
    weight_decay: float = 0.0  # L2 on all parameters (AWD: 1.2e-6)
    clip: float = 1.0  # clip the global gradient norm to this (0 = off); the norm is always logged
    nonmono: int = 5  # NT-ASGD: non-monotone interval (checks)
    schedule: str = "constant"  # constant | cosine: lr x (0.1 + 0.9 (1 + cos(pi step / max_steps)) / 2)
    lr_decay: float = 1.0  # multiply the lr by this on a validation plateau (1 = off)
    patience: int = 0  # plateau: decay after more than this many checks without a new best
    early_stop: int = 0  # stop after this many checks without a new best valid BPC (0 = off)
    ar: float = 0.0  # activation regularisation alpha (Merity et al. 2017), on the dropped top output
    tar: float = 0.0  # temporal activation regularisation beta, on raw top output differences
    max_steps: int = 300  # optimiser steps (0 = no limit)
    max_minutes: float = 0.0  # wall-clock limit (0 = none)
    eval_interval: int = 100  # steps between validation checks (exact BPC over the whole valid split)
    log_interval: int = 10  # steps between metrics.jsonl train records
    eval_chunk: int = 4096  # tokens per evaluation chunk (state carried; batch 1)
    seed: int = 1234  # seeds torch (model init, dropout) and the BPTT length generator
    device: str = "auto"  # auto | cpu | cuda
    bf16: bool = False  # bfloat16 autocast of the forward pass (CUDA, or a CPU with AMX / AVX512-BF16)
    compile: bool = False  # torch.compile each cell's step (fuses the per-step ops; needs a C++ compiler)
    init_from: str = ""  # fine-tune: start from this run's best weights (fresh optimizer, step 0, schedule)

    def __post_init__(self) -> None:
        checks = {
            "batch_size": self.batch_size >= 1,
            "bptt": self.bptt >= 2,
            "lr": self.lr > 0,
            "weight_decay": self.weight_decay >= 0,
            "clip": self.clip >= 0,
            "nonmono": self.nonmono >= 0,
            "lr_decay": 0 < self.lr_decay <= 1,
            "patience": self.patience >= 0,
            "early_stop": self.early_stop >= 0,
            "ar": self.ar >= 0,
            "tar": self.tar >= 0,
            "max_steps": self.max_steps >= 0,
            "max_minutes": self.max_minutes >= 0,
            "eval_interval": self.eval_interval >= 1,
            "log_interval": self.log_interval >= 1,
            "eval_chunk": self.eval_chunk >= 1,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise UserError(f"invalid value for {bad[0]}: {getattr(self, bad[0])!r}")
        if self.optimizer not in ("adam", "ntasgd"):
            raise UserError(f"unknown optimizer {self.optimizer!r}; expected adam or ntasgd")
        if self.schedule not in ("constant", "cosine"):
            raise UserError(f"unknown schedule {self.schedule!r}; expected constant or cosine")
        if self.schedule == "cosine" and self.max_steps == 0:
            raise UserError("--schedule cosine needs --max-steps > 0 (the length of the decay)")
        if self.device not in ("auto", "cpu", "cuda"):
            raise UserError(f"unknown device {self.device!r}; expected auto, cpu or cuda")


def broad_stage(lr: float, steps: int) -> dict[str, Any]:
    """A stage of the broad model: each continues the one before on 2.5M parameters with the same batch,
    cosine schedule and light dropout (the new kinds are read less than twice); lr and length are its own.
    One validation at the end: the 1.39 MB broad validation file costs minutes."""
    return {
        "batch_size": 64,
        "bptt": 128,
        "lr": lr,
        "schedule": "cosine",
        "dropout_input": 0.0,
        "dropout_hidden": 0.05,
        "dropout_output": 0.1,
        "weight_drop": 0.05,
        "max_steps": steps,
        "max_minutes": 0.0,
        "eval_interval": steps,
    }


PRESETS: dict[str, dict[str, Any]] = {
    # Seconds on CPU: for tests and smoke runs.
    "tiny": {
        "hidden": 64,
        "layers": 1,
        "batch_size": 16,
        "bptt": 32,
        "lr": 3e-3,
        "max_steps": 300,
        "eval_interval": 100,
    },
    # About 10 CPU-minutes on Tiny Shakespeare (1.1 MB): 2-layer LN-GRU, H=256.
    "small": {
        "hidden": 256,
        "layers": 2,
        "batch_size": 32,
        "bptt": 128,
        "lr": 2e-3,
        "dropout_output": 0.1,
        "max_steps": 4000,
        "max_minutes": 10.0,
        "eval_interval": 250,
        "lr_decay": 0.5,
        "patience": 1,
    },
    # The README's Tiny Shakespeare recipe, within one CPU hour on nanoGPT's split (first 90% train, last
    # 10% valid): a 2-layer LN-GRU of ~2M parameters with AWD regularisers (locked dropout, weight drop).
    "shakespeare": {
        "cell": "gru",
        "norm": "layer",
        "hidden": 384,
        "layers": 2,
        "split": "0.9,0.1,0",
        "batch_size": 32,
        "bptt": 128,
        "lr": 2e-3,
        "dropout_input": 0.1,
        "dropout_hidden": 0.2,
        "dropout_output": 0.2,
        "weight_drop": 0.2,
        "lr_decay": 0.5,
        "patience": 1,
        "max_steps": 0,
        "max_minutes": 55.0,
        "eval_interval": 500,
    },
    # The bundled default model: the weighted English corpus mix of ``train/recipes/default_mix.py``
    # (11.8 MB, ~7 passes in 10,000 steps of 64 x 128). H = 448 keeps step + sequence graphs and their int8
    # copies under the 25 MB cap (2.5M parameters). Light locked dropout and weight drop; a cosine decay
    # instead of the plateau rule because validating on the 541 kB mix costs ~3 CPU-minutes.
    # ``make default-model`` adds --bf16 --compile (AMX bfloat16 matmuls, fused steps: ~1.6x here).
    "mix": {
        "cell": "gru",
        "norm": "layer",
        "hidden": 448,
        "layers": 2,
        "batch_size": 64,
        "bptt": 128,
        "lr": 2e-3,
        "schedule": "cosine",
        "dropout_input": 0.05,
        "dropout_hidden": 0.1,
        "dropout_output": 0.15,
        "weight_drop": 0.1,
        "max_steps": 10000,
        "max_minutes": 0.0,
        "eval_interval": 2500,
    },
    # Second stage of the default model: fine-tune the ``mix`` run (``--init-from``) on a reweighted mix
    # (``make default-model``: Tiny Shakespeare x3, WikiText-2 x4, lcet10 x3, PTB-char x2), the splits that
    # were furthest from the bzip2 target, at a quarter of the lr. The architecture comes from the source run.
    "mix-finetune": {
        "batch_size": 64,
        "bptt": 128,
        "lr": 5e-4,
        "schedule": "cosine",
        "dropout_input": 0.05,
        "dropout_hidden": 0.1,
        "dropout_output": 0.15,
        "weight_drop": 0.1,
        "max_steps": 3000,
        "max_minutes": 0.0,
        "eval_interval": 1500,
    },
    # Third stage of the default model: the ``mix-finetune`` run fine-tuned on the broad mix
    # (``make default-data``: English prose 42%, code, markup, five other languages), so that the default
    # knows more than English prose. Lighter dropout than the English stages (the new kinds are seen for
    # the first time and less than twice), fresh Adam at half the first stage's lr; one validation at the
    # end (the 1.39 MB broad validation file costs minutes).
    "broad-finetune": broad_stage(lr=1e-3, steps=4800),
    # Second stage of the broad model: the ``broad-finetune`` run continued (``--init-from``) on the broad mix
    # with its English reweighted as in ``mix-finetune`` (``broad_mix --repeats``: Tiny Shakespeare x3,
    # WikiText-2 x4, lcet10 x3, PTB-char x2), because the first stage read the English of the default's first
    # stage only and lost 0.02-0.09 bits/byte on the English splits; fresh Adam at 0.4x the first stage's lr.
    "broad-reweight": broad_stage(lr=4e-4, steps=3600),
    # A third stage of the broad model, tried and not shipped (docs/broad-mix.md): the ``broad-reweight`` run
    # continued (``--init-from``) on the second stage's mix with the six kinds whose held-out split the model
    # alone coded worse than PPMd order 6 or xz -9e given twice (CSV three times: its train part is the
    # smallest); fresh Adam at 0.75x the second stage's lr. It traded English for those kinds.
    "broad-focus": broad_stage(lr=3e-4, steps=3000),
    # The broad model's third stage: the ``broad-reweight`` run continued on the broad mix with its English
    # weighted up, tinyshakespeare six times (the English split it lost most on against the default), because
    # a stage that weighted kinds up instead traded English away (``broad-focus``). 3,300 steps read ~0.8 of
    # that 34.5 MB mix: each of the 64 streams reads its own contiguous part, in order.
    "broad-english": broad_stage(lr=3e-4, steps=3300),
    # A fourth stage: the ``broad-english`` run continued on the broad mix with War and Peace twice and the
    # three Canterbury books three times besides the third stage's weights, because War and Peace, whose
    # share the third stage lowered, was the one English split that lost there. 3,000 steps read ~0.64 of that
    # 38.4 MB mix.
    "broad-books": broad_stage(lr=3e-4, steps=3000),
    # A fifth stage: the ``broad-books`` run continued on the broad mix with the English splits it still
    # lost on weighted up (tinyshakespeare eight times, PTB-char four, asyoulik six) and War and Peace three
    # times so that its share does not fall. 3,000 steps read ~0.55 of that 44.5 MB mix.
    "broad-splits": broad_stage(lr=3e-4, steps=3000),
    # A sixth stage, tried and not shipped (docs/broad-mix.md): the ``broad-splits`` run continued on the same
    # mix at half its lr, because every stage starts a fresh Adam at 3e-4 and PTB-char lost in the fifth stage
    # although its weight rose. Broad valid 1.8209 -> 1.8182, but PTB-char lost again: 3,000 steps read the
    # same 59% of its train part as the fifth stage (``broad_coverage``), which a lower lr does not change.
    "broad-anneal": broad_stage(lr=1.5e-4, steps=3000),
    # The size ladder: the ``mix`` recipe (Adam, cosine, 64 x 128; lr 3e-3 for the smallest) on the broad
    # mix, without dropout or weight drop (at these sizes the models underfit 27.8 MB). Cell and shape chosen
    # at an equal parameter budget by 600-step runs on a 3 MB sample of the mix (docs/ladder.md); the two
    # ladder runs train side by side, one thread each.
    "ladder-1m": {  # int8 files (step + sequence) within 1 MiB: 2 x 176, 421,777 parameters
        "cell": "gru",
        "norm": "layer",
        "hidden": 176,
        "layers": 2,
        "batch_size": 64,
        "bptt": 128,
        "lr": 2e-3,
        "schedule": "cosine",
        "max_steps": 4500,
        "eval_interval": 4500,
    },
    "ladder-256k": {  # int8 files within 256 KiB: 2 x 64, 67,521 parameters (2 x 80 made 341 KiB)
        "cell": "gru",
        "norm": "layer",
        "hidden": 64,
        "layers": 2,
        "batch_size": 64,
        "bptt": 128,
        "lr": 3e-3,
        "schedule": "cosine",
        "max_steps": 12000,
        "eval_interval": 12000,
    },
    # Hafner's LN-GRU on text8: one layer of 2000 units, batch 100, sequence 200, Adam with a fixed lr.
    "hafner-text8": {
        "cell": "gru",
        "norm": "layer",
        "layers": 1,
        "hidden": 2000,
        "batch_size": 100,
        "bptt": 200,
        "optimizer": "adam",
        "lr": 1e-3,
        "lr_decay": 1.0,
        "max_steps": 0,
        "eval_interval": 2000,
    },
    # AWD-LSTM's enwik8 recipe (Merity et al. 2018, README command): 3-layer LSTM, emb 400, hidden 1840,
    # dropouth 0.1, dropouti 0.1, dropout 0.4, wdrop 0.2, wdecay 1.2e-6, bptt 200, batch 128, Adam 1e-3,
    # clip 0.25, random BPTT. Their lr / 10 at epochs 25 and 35 is approximated by plateau decay (x0.1).
    # Unlike AWD (smaller top layer), our top layer has 1840 units and projects H -> E for tying.
    "awd-enwik8": {
        "cell": "lstm",
        "norm": "none",
        "layers": 3,
        "embedding": 400,
        "hidden": 1840,
        "dropout_hidden": 0.1,
        "dropout_input": 0.1,
        "dropout_output": 0.4,
        "dropout_embedding": 0.0,
        "weight_drop": 0.2,
        "weight_decay": 1.2e-6,
        "bptt": 200,
        "batch_size": 128,
        "optimizer": "adam",
        "lr": 1e-3,
        "clip": 0.25,
        "random_bptt": True,
        "lr_decay": 0.1,
        "patience": 2,
        "max_steps": 0,
        "eval_interval": 2000,
    },
}

# a preset that names no architecture fine-tunes: --init-from supplies the architecture and the weights
# (derived, so that a new stage cannot be left out and train a fresh default-shaped model instead)
FINETUNE_PRESETS = {name for name, values in PRESETS.items() if not set(ARCHITECTURE_KEYS) & values.keys()}
MODEL_KEYS = {f.name for f in fields(ModelConfig)}
TRAIN_KEYS = {f.name for f in fields(TrainConfig)}


def preset_values(preset: str | None) -> dict[str, Any]:
    """The overrides of a named preset (none for ``None``); an unknown name is an error."""
    if preset is None:
        return {}
    if preset not in PRESETS:
        raise UserError(f"unknown preset {preset!r}; valid presets: {', '.join(PRESETS)}")
    return dict(PRESETS[preset])


def resolve(preset: str | None, overrides: dict[str, Any]) -> tuple[ModelConfig, TrainConfig]:
    """defaults <- preset <- overrides (keys of either dataclass; ``None`` values mean "not given")."""
    values = preset_values(preset)
    values.update({k: v for k, v in overrides.items() if v is not None})
    unknown = sorted(set(values) - MODEL_KEYS - TRAIN_KEYS)
    if unknown:
        raise UserError(f"unknown config keys: {', '.join(unknown)}")
    try:
        model = ModelConfig(**{k: v for k, v in values.items() if k in MODEL_KEYS})
    except ValueError as err:
        raise UserError(str(err)) from err
    train = TrainConfig(**{k: v for k, v in values.items() if k in TRAIN_KEYS})
    return model, train


def config_dict(model: ModelConfig, train: TrainConfig) -> dict[str, Any]:
    """What ``config.json`` holds."""
    return {"model": model.to_dict(), "train": asdict(train)}
