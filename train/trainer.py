"""The training loop: truncated BPTT over contiguous streams, a validation check every eval interval, resume.

The loop's neighbours: ``run_dir`` (the files of ``--out``: config, metrics, checkpoints, ``resume.pt``),
``validation`` (exact valid BPC, what each check decides, the test BPC at the end), ``devices`` (device,
bfloat16, torch.compile) and ``regularizers`` (dropouts, weight drop, AR/TAR and the training loss).
"""

from __future__ import annotations

import logging
import math
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from tqdm import tqdm

from lnrnn.bpc import bits_per_byte
from lnrnn.train import distributed as D
from lnrnn.train.checkpoint import init_weights
from lnrnn.train.data import Splits, TokenStreams, load_splits, parse_split
from lnrnn.train.devices import check_flags, compile_cell_steps, pick_device
from lnrnn.train.model import ByteLM, ModelConfig
from lnrnn.train.optim import PlateauDecay, make_optimizer, schedule_scale
from lnrnn.train.presets import TrainConfig, config_dict
from lnrnn.train.regularizers import LossModule
from lnrnn.train.run_dir import RESUME_FILE, Progress, RunDir, refuse_existing
from lnrnn.train.validation import best_test_bpc, judge, valid_bpc

log = logging.getLogger("lnrnn.train")
EXIT_SIGINT, EXIT_SIGTERM = 130, 0  # interrupted runs save `last` + resume state first
SIGNALS = ("SIGINT", "SIGTERM")


@dataclass
class RunResult:
    step: int
    best_valid_bpc: float
    test_bpc: float | None
    stopped: str  # max_steps | max_minutes | early_stop | SIGINT | SIGTERM
    exit_code: int


class Trainer:
    def __init__(
        self,
        model_cfg: ModelConfig,
        cfg: TrainConfig,
        run_dir: Path,
        quiet: bool = False,
        resume: bool = False,
    ) -> None:
        self.model_cfg, self.cfg, self.run_dir, self.quiet = model_cfg, cfg, Path(run_dir), quiet
        self.resume = resume
        self.ctx = D.world_from_env()
        self.device, self.device_reason = pick_device(cfg.device, self.ctx)
        check_flags(model_cfg, cfg, self.device, self.ctx)
        self.files = RunDir(self.run_dir, self.ctx.is_main)
        self.splits: Splits = load_splits(Path(cfg.data), parse_split(cfg.split) if cfg.split else None)
        self.streams = TokenStreams(
            self.splits.train, cfg.batch_size, cfg.bptt, self.ctx.rank, self.ctx.world
        )
        torch.manual_seed(cfg.seed)
        self.model = ByteLM(model_cfg)
        if cfg.init_from and not resume:  # resuming: resume.pt holds the weights, the source may be gone
            init_weights(self.model, Path(cfg.init_from))
        self.model.to(self.device)
        if cfg.compile:
            compile_cell_steps(self.model)
        self.loss_module: nn.Module = LossModule(self.model, cfg.ar, cfg.tar)
        torch.manual_seed(cfg.seed + self.ctx.rank)  # dropout masks differ per process
        self.bptt_gen = torch.Generator().manual_seed(cfg.seed)  # same lengths on every process
        self.opt_kind = "adam" if cfg.optimizer == "adam" else "sgd"
        self.optimizer = make_optimizer(self.opt_kind, self.params(), cfg.lr, cfg.weight_decay)
        self.plateau = PlateauDecay(cfg.lr_decay, cfg.patience)
        self.progress = Progress()
        self.state: Tensor | None = None  # carried (detached) recurrent state, None = initial state
        self.stop_signal = ""
        self.last_norm, self.interval_bpc, self.interval_ms, self.interval_cps = math.nan, math.nan, 0.0, 0.0

    # --- setup and resume -------------------------------------------------------------------------
    def params(self) -> list[nn.Parameter]:
        return [p for p in self.model.parameters() if p.requires_grad]

    def wrap(self) -> None:
        """Join the process group; with more than one process, wrap the loss in DistributedDataParallel."""
        D.init(self.ctx, self.device)
        if self.ctx.enabled:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.device.type == "cuda" else None
            # The learned initial state gets no gradient while the state is carried across chunks.
            unused = self.model_cfg.learned_init
            self.loss_module = DistributedDataParallel(
                self.loss_module, device_ids=ids, find_unused_parameters=unused
            )
            if not self.ctx.is_main:
                log.setLevel(logging.WARNING)  # rank 0 logs

    def save_resume(self) -> None:
        """Collective: every process's carried state and RNG go into ``resume.pt``."""
        p = self.progress
        fields = {
            "model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            "optimizer": self.optimizer.state_dict(),
            "optimizer_kind": self.opt_kind,
            "plateau": self.plateau.state_dict(),
            "bptt_rng": self.bptt_gen.get_state(),
            "progress": {k: getattr(p, k) for k in p.__dataclass_fields__},
        }
        self.files.save_resume(self.ctx, self.state, fields)

    def load_resume(self) -> None:
        raw = self.files.load_resume(self.ctx)
        self.model.load_state_dict(raw["model"])
        self.opt_kind = raw["optimizer_kind"]
        self.optimizer = make_optimizer(self.opt_kind, self.params(), self.cfg.lr, self.cfg.weight_decay)
        self.optimizer.load_state_dict(raw["optimizer"])
        self.plateau.load_state_dict(raw["plateau"])
        if raw["hidden"] is not None:
            self.state = raw["hidden"].to(self.device)
        torch.set_rng_state(raw["torch_rng"])
        self.bptt_gen.set_state(raw["bptt_rng"])
        self.progress = Progress(**raw["progress"])

    # --- one step ---------------------------------------------------------------------------------
    def seq_len(self) -> int:
        """AWD-LSTM: base = bptt w.p. 0.95 else bptt / 2; length ~ N(base, 5), at least 5."""
        bptt = self.cfg.bptt
        if not self.cfg.random_bptt:
            return bptt
        base = bptt if torch.rand(1, generator=self.bptt_gen).item() < 0.95 else bptt / 2
        return max(5, int(base + 5.0 * torch.randn(1, generator=self.bptt_gen).item()))

    def current_lr(self) -> float:
        """The base lr of the next step (after any plateau decay just applied; before random-BPTT scaling)."""
        cfg = self.cfg
        return cfg.lr * self.plateau.scale * schedule_scale(cfg.schedule, self.progress.step, cfg.max_steps)

    def train_step(self) -> tuple[float, float, int]:
        """One optimiser step; returns (loss, grad norm, tokens on this process)."""
        p, cfg = self.progress, self.cfg
        if self.streams.exhausted(p.pos):  # new epoch: back to the start, from the initial state
            p.epoch, p.pos, self.state = p.epoch + 1, 0, None
        xs, ys = self.streams.get(p.pos, self.seq_len())
        t = xs.shape[1]
        lr = self.current_lr() * (t / cfg.bptt if cfg.random_bptt else 1.0)  # AWD: lr * len/bptt
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        x = torch.from_numpy(xs.astype(np.int64)).to(self.device)
        y = torch.from_numpy(ys.astype(np.int64)).to(self.device)
        self.loss_module.train()
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=cfg.bf16):
            loss, nll, state = self.loss_module(x, y, self.state)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(self.params(), cfg.clip if cfg.clip > 0 else math.inf)
        self.optimizer.step()
        self.state = state.detach()  # truncated BPTT: carry the state, not the graph
        p.pos += t
        p.step += 1
        return float(nll.item()), float(norm.item()), x.numel()

    # --- checks -----------------------------------------------------------------------------------
    def valid_bpc(self) -> float:
        return valid_bpc(self.ctx, self.model, self.optimizer, self.splits.valid, self.cfg.eval_chunk)

    def meta(self, valid: float) -> dict[str, Any]:
        """What ``best.json`` / ``last.json`` hold besides the model config."""
        return {
            "step": self.progress.step,
            "valid_bpc": None if math.isnan(valid) else valid,
            "train_data": self.splits.description,
            "train_config": config_dict(self.model_cfg, self.cfg)["train"],
            "optimizer": self.opt_kind,
        }

    def check(self, scheduled: bool) -> float:
        """Validate, act on the decision, save ``last`` (and ``best``) and ``resume.pt``."""
        p = self.progress
        value = self.valid_bpc()
        decision = judge(p, value, scheduled, self.plateau, self.opt_kind == "sgd", self.cfg.nonmono)
        if decision.switch_to_asgd:
            self.switch_to_asgd()
        if decision.lr_decayed:
            log.info(f"step {p.step} | lr decayed to {self.cfg.lr * self.plateau.scale:.3g}")
        self.files.save_weights(self.model, self.optimizer, self.meta(value), best=decision.improved)
        self.save_resume()
        record = {"valid/bpc": value, "valid/best_bpc": p.best_bpc, "train/epoch": p.epoch}
        self.files.write_metrics(p, record)
        return value

    def switch_to_asgd(self) -> None:
        """NT-ASGD trigger: continue with averaged SGD from now on (t0 = 0, lambda = 0)."""
        lr = self.optimizer.param_groups[0]["lr"]
        self.opt_kind = "asgd"
        self.optimizer = make_optimizer("asgd", self.params(), lr, self.cfg.weight_decay)
        log.info(f"step {self.progress.step} | NT-ASGD: switching to averaged SGD")

    # --- the loop ---------------------------------------------------------------------------------
    def run(self) -> RunResult:
        if self.resume:
            self.load_resume()
        self.wrap()
        self.files.open(config_dict(self.model_cfg, self.cfg), log)
        log.info(self.describe())
        bar = tqdm(
            total=self.cfg.max_steps or None,
            initial=self.progress.step,
            unit="step",
            file=sys.stderr,
            disable=self.quiet or not sys.stderr.isatty() or not self.ctx.is_main,
            dynamic_ncols=True,
        )
        try:
            with self.signals():
                stopped = self.loop(bar)
            return self.finish(stopped, bar)
        finally:
            bar.close()
            self.files.close(log)
            D.shutdown(self.ctx)

    def describe(self) -> str:
        cfg, n = self.cfg, self.splits
        return (
            f"device {self.device} ({self.device_reason}) | "
            f"{'bf16 autocast' if cfg.bf16 else 'fp32'}{', compiled steps' if cfg.compile else ''} | "
            f"processes {self.ctx.world} | params {self.model.num_parameters():,} | "
            f"train {len(n.train):,} bytes | valid {len(n.valid):,} | test {len(n.test):,} | "
            + (f"resumed at step {self.progress.step}" if self.resume else f"run dir {self.run_dir}")
        )

    def loop(self, bar: tqdm) -> str:
        """Train until a limit, early stopping or a signal; returns which one stopped the run."""
        cfg, p = self.cfg, self.progress
        start = time.perf_counter() - p.elapsed_s
        while True:
            if cfg.max_steps and p.step >= cfg.max_steps:
                return "max_steps"
            t0 = time.perf_counter()
            nll, self.last_norm, tokens = self.train_step()
            dt = time.perf_counter() - t0
            p.elapsed_s = time.perf_counter() - start
            p.acc = [p.acc[0] + nll * tokens, p.acc[1] + tokens, p.acc[2] + dt, p.acc[3] + 1]
            bar.update(1)
            if p.step % cfg.log_interval == 0:
                self.log_interval(bar)
            if p.step % cfg.eval_interval == 0:
                self.log_interval(bar)
                valid = self.check(scheduled=True)
                log.info(
                    f"step {p.step} | train bpc {self.interval_bpc:.3f} | valid bpc {valid:.3f} | "
                    f"{self.interval_ms:.1f} ms/step | grad norm {self.last_norm:.2f} | "
                    f"{self.interval_cps:,.0f} chars/s | lr {self.current_lr():.3g}"
                )
                if cfg.early_stop and p.early_bad >= cfg.early_stop:
                    return "early_stop"
            out_of_time = bool(cfg.max_minutes) and p.elapsed_s > 60 * cfg.max_minutes
            if D.any_rank(self.ctx, bool(self.stop_signal) or out_of_time):
                return self.stop_signal or "max_minutes"

    def finish(self, stopped: str, bar: tqdm) -> RunResult:
        """Interrupted: save and exit. Otherwise a last check (unless the last step had one), then test."""
        p, exit_code, test = self.progress, 0, None
        if stopped in SIGNALS:
            self.interrupted()
            exit_code = EXIT_SIGINT if stopped == "SIGINT" else EXIT_SIGTERM
        else:
            if p.step % self.cfg.eval_interval != 0 or p.step == 0:
                self.log_interval(bar)
                valid = self.check(scheduled=False)
                log.info(f"step {p.step} | final | train bpc {self.interval_bpc:.3f} | valid bpc {valid:.3f}")
            test = best_test_bpc(self.files, p, self.device, self.splits.test, self.cfg.eval_chunk)
        log.info(f"step {p.step} | stopped: {stopped} | best valid bpc {p.best_bpc:.4f}")
        D.barrier(self.ctx)
        return RunResult(p.step, p.best_bpc, test, stopped, exit_code)

    def log_interval(self, bar: tqdm) -> None:
        """The train record of the steps since the last one (nats and tokens summed over processes)."""
        p = self.progress
        if p.acc[3] == 0:
            return
        nats, tokens = D.sum_floats(self.ctx, p.acc[:2])
        seconds, steps = p.acc[2], p.acc[3]
        bpc = bits_per_byte(nats, int(tokens))
        cps = tokens / max(seconds, 1e-9)
        self.files.write_metrics(
            p,
            {
                "train/loss": nats / tokens,
                "train/bpc": bpc,
                "train/grad_norm": self.last_norm,
                "train/lr": self.optimizer.param_groups[0]["lr"],
                "perf/chars_per_s": cps,
                "perf/ms_per_step": 1000 * seconds / steps,
            },
        )
        bar.set_postfix(train_bpc=f"{bpc:.3f}", valid_bpc=f"{p.last_valid:.3f}", chars_s=f"{cps:,.0f}")
        self.interval_bpc, self.interval_ms, self.interval_cps = bpc, 1000 * seconds / steps, cps
        p.acc = [0.0, 0.0, 0.0, 0.0]

    @contextmanager
    def signals(self) -> Iterator[None]:
        """SIGINT/SIGTERM only set ``stop_signal``: the loop stops at the end of the step, on every rank."""

        def handler(signum: int, _frame: Any) -> None:
            self.stop_signal = signal.Signals(signum).name

        old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for s, h in old.items():
                signal.signal(s, h)

    def interrupted(self) -> None:
        """On SIGINT/SIGTERM: save ``last`` (without a new evaluation) and the resume state."""
        meta = self.meta(self.progress.last_valid)
        self.files.save_weights(self.model, self.optimizer, meta, best=False)
        self.save_resume()
        log.info(
            f"step {self.progress.step} | interrupted by {self.stop_signal}: saved last and {RESUME_FILE}"
        )


def train(
    model_cfg: ModelConfig, cfg: TrainConfig, run_dir: Path, resume: bool = False, quiet: bool = False
) -> RunResult:
    run_dir = Path(run_dir)
    if not resume:
        refuse_existing(run_dir)
    return Trainer(model_cfg, cfg, run_dir, quiet, resume).run()
