"""The training loop: truncated BPTT over contiguous streams, exact validation, checkpoints and resume.

Run directory (``--out``):

* ``config.json``: resolved model + training config, written at start;
* ``best.{safetensors,json}``: lowest valid BPC so far (``valid_bpc``, ``train_data``, ``step``; ``test_bpc``
  at the end); ``last.{safetensors,json}``: the latest weights (ASGD: the averaged ones);
* ``resume.pt``: weights, optimizer, step, data position, carried state, RNG states, schedules (tensors and
  plain containers only, read back with ``weights_only=True``);
* ``metrics.jsonl``: one JSON object per line, slash-namespaced keys, flushed line by line;
* ``train.log``: the greppable log lines.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm import tqdm

from lnrnn.bpc import bits_per_byte
from lnrnn.errors import UserError
from lnrnn.train import distributed as D
from lnrnn.train.checkpoint import BEST, LAST, atomic_write, atomic_write_text, load_model, save_model
from lnrnn.train.checkpoint import load_tensors_weights_only as load_weights_only
from lnrnn.train.data import Splits, TokenStreams, load_splits, parse_split
from lnrnn.train.evaluate import evaluate_bytes
from lnrnn.train.model import ARCHITECTURE_KEYS, ByteLM, ModelConfig
from lnrnn.train.optim import PlateauDecay, averaged_weights, make_optimizer, nt_trigger, schedule_scale
from lnrnn.train.presets import TrainConfig, config_dict

log = logging.getLogger("lnrnn.train")
RESUME_FILE = "resume.pt"
EXIT_SIGINT, EXIT_SIGTERM = 130, 0  # interrupted runs save `last` + resume state first


class LossModule(nn.Module):
    """Mean cross-entropy + AR + TAR (Merity et al. 2017: alpha mean((m h)^2), beta mean((h_t - h_{t-1})^2)).

    A module of its own so that DistributedDataParallel wraps the whole loss computation.
    """

    def __init__(self, model: ByteLM, ar: float, tar: float) -> None:
        super().__init__()
        self.model, self.ar, self.tar = model, ar, tar

    def forward(self, x: Tensor, y: Tensor, state: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
        out = self.model.run(x, state)
        nll = F.cross_entropy(out.logits.flatten(0, 1).float(), y.flatten())  # mean over tokens
        loss = nll
        if self.ar:
            loss = loss + self.ar * out.top_dropped.float().pow(2).mean()
        if self.tar:
            loss = loss + self.tar * (out.top_raw[:, 1:] - out.top_raw[:, :-1]).float().pow(2).mean()
        return loss, nll.detach(), out.state


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


@dataclass
class RunResult:
    step: int
    best_valid_bpc: float
    test_bpc: float | None
    stopped: str
    exit_code: int


def pick_device(name: str, ctx: D.DistContext) -> tuple[torch.device, str]:
    cuda = torch.cuda.is_available()
    if name == "cuda" and not cuda:
        raise UserError("--device cuda but CUDA is not available (torch.cuda.is_available() is False)")
    if name == "cpu" or (name == "auto" and not cuda):
        return torch.device("cpu"), "cpu" if name == "cpu" else "auto: CUDA not available"
    return torch.device("cuda", ctx.local_rank), "auto: CUDA available" if name == "auto" else "cuda"


def native_bf16(device: torch.device) -> bool:
    """Whether bfloat16 matmuls run natively: any CUDA device, or a CPU with AVX512-BF16 / AMX."""
    if device.type == "cuda":
        return True
    cpu = getattr(torch, "cpu", None)
    return any(
        bool(getattr(cpu, f, lambda: False)())
        for f in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    )


def compile_cell_steps(model: ByteLM) -> None:
    """torch.compile each cell's ``step`` (an instance attribute: weights, checkpoints, export unaffected)."""
    for cell in model.recurrent_cells:
        cell.step = torch.compile(cell.step, dynamic=False)  # type: ignore[method-assign]


def init_weights(model: ByteLM, source: Path) -> None:
    """Fine-tuning start: copy a checkpoint's best weights into ``model`` (same architecture required)."""
    donor, _ = load_model(source)
    mine, theirs = model.config.to_dict(), donor.config.to_dict()
    changed = [k for k in ARCHITECTURE_KEYS if mine[k] != theirs[k]]
    if changed:
        raise UserError(f"--init-from {source}: architecture differs ({', '.join(changed)})")
    model.load_state_dict(donor.state_dict(), strict=True)


def check_flags(model_cfg: ModelConfig, cfg: TrainConfig, device: torch.device, ctx: D.DistContext) -> None:
    if cfg.bf16 and not native_bf16(device):
        raise UserError("--bf16 needs CUDA or a CPU with AVX512-BF16/AMX (this CPU would emulate it, slowly)")
    if cfg.compile and device.type == "cpu" and not any(shutil.which(c) for c in ("g++", "c++", "clang++")):
        raise UserError("--compile on CPU needs a C++ compiler (g++) for torch.compile's inductor backend")
    if model_cfg.norm == "batch" and not model_cfg.hoist:
        raise UserError("--norm batch needs the hoisted input path (--no-hoist gives per-step statistics)")
    if cfg.batch_size % ctx.world:
        raise UserError(f"--batch-size {cfg.batch_size} is not divisible by the {ctx.world} processes")


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
        self.metrics_file: Any = None
        self.file_log: logging.Handler | None = None

    # --- setup ------------------------------------------------------------------------------------
    def params(self) -> list[nn.Parameter]:
        return [p for p in self.model.parameters() if p.requires_grad]

    def wrap(self) -> None:
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

    # --- resume -----------------------------------------------------------------------------------
    def save_resume(self) -> None:
        """Collective (gathers every process's state and RNG); rank 0 writes ``resume.pt`` atomically."""
        states = D.gather(self.ctx, self.state) if self.state is not None else None
        rngs = D.gather(self.ctx, torch.get_rng_state())
        if not self.ctx.is_main:
            return
        p = self.progress
        payload = {
            "model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            "optimizer": self.optimizer.state_dict(),
            "optimizer_kind": self.opt_kind,
            "plateau": self.plateau.state_dict(),
            "hidden": torch.cat(states, dim=1) if states is not None else None,
            "torch_rng": rngs,
            "bptt_rng": self.bptt_gen.get_state(),
            "world": self.ctx.world,
            "progress": {k: getattr(p, k) for k in p.__dataclass_fields__},
        }
        atomic_write(self.run_dir / RESUME_FILE, lambda tmp: torch.save(payload, tmp))

    def load_resume(self) -> None:
        path = self.run_dir / RESUME_FILE
        if not path.is_file():
            raise UserError(f"--resume: no {RESUME_FILE} in {self.run_dir}")
        raw = load_weights_only(path)
        if raw["world"] != self.ctx.world:
            raise UserError(f"--resume: saved with {raw['world']} processes, now {self.ctx.world}")
        self.model.load_state_dict(raw["model"])
        self.opt_kind = raw["optimizer_kind"]
        self.optimizer = make_optimizer(self.opt_kind, self.params(), self.cfg.lr, self.cfg.weight_decay)
        self.optimizer.load_state_dict(raw["optimizer"])
        self.plateau.load_state_dict(raw["plateau"])
        if raw["hidden"] is not None:
            self.state = raw["hidden"].chunk(self.ctx.world, dim=1)[self.ctx.rank].to(self.device)
        torch.set_rng_state(raw["torch_rng"][self.ctx.rank])
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

    def train_step(self) -> tuple[float, float, int]:
        """One optimiser step; returns (loss, grad norm, tokens on this process)."""
        p, cfg = self.progress, self.cfg
        if self.streams.exhausted(p.pos):  # new epoch: back to the start, from the initial state
            p.epoch, p.pos, self.state = p.epoch + 1, 0, None
        xs, ys = self.streams.get(p.pos, self.seq_len())
        t = xs.shape[1]
        lr = cfg.lr * self.plateau.scale * schedule_scale(cfg.schedule, p.step, cfg.max_steps)
        lr *= t / cfg.bptt if cfg.random_bptt else 1.0  # AWD: lr * len/bptt
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

    # --- evaluation and checkpoints ---------------------------------------------------------------
    def valid_bpc(self) -> float:
        """Exact BPC of the whole valid split on rank 0 (ASGD: averaged weights), broadcast to all."""
        value = math.nan
        if self.ctx.is_main:
            with averaged_weights(self.optimizer):
                value = bits_per_byte(*evaluate_bytes(self.model, self.splits.valid, self.cfg.eval_chunk))
        return D.broadcast_float(self.ctx, value)

    def meta(self, valid_bpc: float) -> dict[str, Any]:
        return {
            "step": self.progress.step,
            "valid_bpc": None if math.isnan(valid_bpc) else valid_bpc,
            "train_data": self.splits.description,
            "train_config": config_dict(self.model_cfg, self.cfg)["train"],
            "optimizer": self.opt_kind,
        }

    def check(self, scheduled: bool) -> float:
        """Validate; ``scheduled`` checks (every eval interval) also drive NT-ASGD, plateau and early stop."""
        p = self.progress
        value = self.valid_bpc()
        p.last_valid = value
        if scheduled:
            if self.opt_kind == "sgd" and nt_trigger(p.history, value, self.cfg.nonmono):
                self.switch_to_asgd()
            p.history.append(value)
            if self.plateau.step(value):
                log.info(f"step {p.step} | lr decayed to {self.cfg.lr * self.plateau.scale:.3g}")
            p.early_bad = 0 if value < p.best_bpc else p.early_bad + 1
        improved = value < p.best_bpc
        if improved:
            p.best_bpc = value
        if self.ctx.is_main:
            with averaged_weights(self.optimizer):
                if improved:
                    save_model(self.run_dir, BEST, self.model, self.meta(value))
                save_model(self.run_dir, LAST, self.model, self.meta(value))
        self.save_resume()
        self.write_metrics({"valid/bpc": value, "valid/best_bpc": p.best_bpc, "train/epoch": p.epoch})
        return value

    def switch_to_asgd(self) -> None:
        """NT-ASGD trigger: continue with averaged SGD from now on (t0 = 0, lambda = 0)."""
        lr = self.optimizer.param_groups[0]["lr"]
        self.opt_kind = "asgd"
        self.optimizer = make_optimizer("asgd", self.params(), lr, self.cfg.weight_decay)
        log.info(f"step {self.progress.step} | NT-ASGD: switching to averaged SGD")

    def current_lr(self) -> float:
        """The base lr of the next step (after any plateau decay just applied; before random-BPTT scaling)."""
        cfg = self.cfg
        return cfg.lr * self.plateau.scale * schedule_scale(cfg.schedule, self.progress.step, cfg.max_steps)

    def write_metrics(self, record: dict[str, Any]) -> None:
        if self.metrics_file is None:
            return
        full = {"step": self.progress.step, "time_s": round(self.progress.elapsed_s, 3), **record}
        self.metrics_file.write(json.dumps(full) + "\n")
        self.metrics_file.flush()

    def final_test(self) -> float | None:
        """Test BPC of the best checkpoint, written into ``best.json`` as ``test_bpc``."""
        if not self.ctx.is_main or len(self.splits.test) == 0 or not (self.run_dir / "best.json").is_file():
            return None
        from lnrnn.train.checkpoint import load_model

        best, meta = load_model(self.run_dir, BEST)
        test = bits_per_byte(*evaluate_bytes(best.to(self.device), self.splits.test, self.cfg.eval_chunk))
        meta = {k: v for k, v in meta.items() if k not in ("format", "lnrnn_version", "model", "vocab")}
        save_model(self.run_dir, BEST, best, {**meta, "test_bpc": test})
        self.write_metrics({"test/bpc": test})
        log.info(f"step {self.progress.step} | test bpc {test:.4f} | best valid {meta['valid_bpc']:.4f}")
        return test

    # --- the loop ---------------------------------------------------------------------------------
    @contextmanager
    def signals(self) -> Iterator[None]:
        def handler(signum: int, _frame: Any) -> None:
            self.stop_signal = signal.Signals(signum).name

        old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for s, h in old.items():
                signal.signal(s, h)

    def log_interval(self, bar: tqdm) -> None:
        p = self.progress
        if p.acc[3] == 0:
            return
        nats, tokens = D.sum_floats(self.ctx, p.acc[:2])  # over all processes
        seconds, steps = p.acc[2], p.acc[3]
        bpc = bits_per_byte(nats, int(tokens))
        cps = tokens / max(seconds, 1e-9)
        self.write_metrics(
            {
                "train/loss": nats / tokens,
                "train/bpc": bpc,
                "train/grad_norm": self.last_norm,
                "train/lr": self.optimizer.param_groups[0]["lr"],
                "perf/chars_per_s": cps,
                "perf/ms_per_step": 1000 * seconds / steps,
            }
        )
        bar.set_postfix(train_bpc=f"{bpc:.3f}", valid_bpc=f"{p.last_valid:.3f}", chars_s=f"{cps:,.0f}")
        self.interval_bpc, self.interval_ms, self.interval_cps = bpc, 1000 * seconds / steps, cps
        p.acc = [0.0, 0.0, 0.0, 0.0]

    def run(self) -> RunResult:
        cfg, p, resume = self.cfg, self.progress, self.resume
        if resume:
            self.load_resume()
            p = self.progress
        self.wrap()
        if self.ctx.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_text(
                self.run_dir / "config.json", json.dumps(config_dict(self.model_cfg, cfg), indent=2) + "\n"
            )
            self.metrics_file = open(self.run_dir / "metrics.jsonl", "a", encoding="utf-8")
            self.file_log = logging.FileHandler(self.run_dir / "train.log", encoding="utf-8")
            log.addHandler(self.file_log)
        log.info(
            f"device {self.device} ({self.device_reason}) | "
            f"{'bf16 autocast' if cfg.bf16 else 'fp32'}{', compiled steps' if cfg.compile else ''} | "
            f"processes {self.ctx.world} | params {self.model.num_parameters():,} | "
            f"train {len(self.splits.train):,} bytes | "
            f"valid {len(self.splits.valid):,} | test {len(self.splits.test):,} | "
            + (f"resumed at step {p.step}" if resume else f"run dir {self.run_dir}")
        )
        self.last_norm, self.interval_bpc, self.interval_ms, self.interval_cps = math.nan, math.nan, 0.0, 0.0
        bar = tqdm(
            total=cfg.max_steps or None,
            initial=p.step,
            unit="step",
            file=sys.stderr,
            disable=self.quiet or not sys.stderr.isatty() or not self.ctx.is_main,
            dynamic_ncols=True,
        )
        stopped, exit_code = "", 0
        start = time.perf_counter() - p.elapsed_s
        try:
            with self.signals():
                while True:
                    if cfg.max_steps and p.step >= cfg.max_steps:
                        stopped = "max_steps"
                        break
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
                            stopped = "early_stop"
                            break
                    out_of_time = bool(cfg.max_minutes) and p.elapsed_s > 60 * cfg.max_minutes
                    if D.any_rank(self.ctx, bool(self.stop_signal) or out_of_time):
                        stopped = self.stop_signal or "max_minutes"
                        break
            if stopped in ("SIGINT", "SIGTERM"):
                self.interrupted()
                exit_code = EXIT_SIGINT if stopped == "SIGINT" else EXIT_SIGTERM
            else:
                if p.step % cfg.eval_interval != 0 or p.step == 0:
                    self.log_interval(bar)
                    valid = self.check(scheduled=False)
                    log.info(
                        f"step {p.step} | final | train bpc {self.interval_bpc:.3f} | valid bpc {valid:.3f}"
                    )
            test = None if exit_code or stopped in ("SIGINT", "SIGTERM") else self.final_test()
            log.info(f"step {p.step} | stopped: {stopped} | best valid bpc {p.best_bpc:.4f}")
            D.barrier(self.ctx)
            return RunResult(p.step, p.best_bpc, test, stopped, exit_code)
        finally:
            bar.close()
            if self.metrics_file is not None:
                self.metrics_file.close()
            if self.file_log is not None:
                log.removeHandler(self.file_log)
                self.file_log.close()
            D.shutdown(self.ctx)

    def interrupted(self) -> None:
        """On SIGINT/SIGTERM: save ``last`` (without a new evaluation) and the resume state."""
        if self.ctx.is_main:
            with averaged_weights(self.optimizer):
                save_model(self.run_dir, LAST, self.model, self.meta(self.progress.last_valid))
        self.save_resume()
        log.info(
            f"step {self.progress.step} | interrupted by {self.stop_signal}: saved last and {RESUME_FILE}"
        )


def train(
    model_cfg: ModelConfig, cfg: TrainConfig, run_dir: Path, resume: bool = False, quiet: bool = False
) -> RunResult:
    run_dir = Path(run_dir)
    if not resume and (run_dir / "config.json").exists():
        raise UserError(
            f"{run_dir} already holds a run; pass --resume to continue it or choose another --out"
        )
    return Trainer(model_cfg, cfg, run_dir, quiet, resume).run()
