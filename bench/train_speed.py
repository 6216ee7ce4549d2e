"""Training throughput (chars/s) of the presets: naive per-step input path, hoisted, and hoisted with
``--bf16 --compile`` (bfloat16 autocast + torch.compile of each step; where the CPU has native bfloat16),
in one process.

    .venv/bin/python bench/train_speed.py [--presets tiny,small] [--reps 5] [--iters 10] [--out PATH]

One repetition = ``--iters`` timed optimiser steps (Adam, clipping, AR/TAR as in the preset) after a warm-up;
the table reports the median over ``--reps`` repetitions. Every mode uses the same weights and batches.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import machine  # noqa: E402
from lnrnn.train.devices import compile_cell_steps, native_bf16  # noqa: E402
from lnrnn.train.model import ByteLM  # noqa: E402
from lnrnn.train.presets import resolve  # noqa: E402
from lnrnn.train.regularizers import LossModule  # noqa: E402

MODES = {"naive": (False, False), "hoisted": (True, False), "bf16+compile": (True, True)}  # (hoist, fast)


def make_step(preset: str, hoist: bool, fast: bool = False) -> tuple[Callable[[], None], dict[str, Any]]:
    """One training step (forward, loss, backward, clip, Adam) of ``preset`` on a fixed random batch.

    ``fast``: what ``--bf16 --compile`` does in the trainer (autocast of the forward pass, compiled steps).
    """
    model_cfg, cfg = resolve(preset, {"hoist": hoist})
    torch.manual_seed(0)
    model = ByteLM(model_cfg)
    if fast:
        compile_cell_steps(model)
    loss_module = LossModule(model, cfg.ar, cfg.tar).train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=cfg.lr)
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (cfg.batch_size, cfg.bptt), generator=gen)
    y = torch.randint(0, 256, (cfg.batch_size, cfg.bptt), generator=gen)
    state: list[torch.Tensor | None] = [None]

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=fast):
            loss, _, new_state = loss_module(x, y, state[0])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, cfg.clip)
        opt.step()
        state[0] = new_state.detach()

    meta = {"batch": cfg.batch_size, "bptt": cfg.bptt, "hidden": model_cfg.hidden, "layers": model_cfg.layers}
    return step, {**meta, "cell": model_cfg.cell, "norm": model_cfg.norm}


def bench_preset(preset: str, reps: int, iters: int, warmup: int, fast: bool = True) -> dict[str, Any]:
    """The modes alternate within each repetition, so load changes hit them alike.

    ``fast=False`` (or a CPU without native bfloat16) leaves out the bf16+compile mode.
    """
    fast = fast and native_bf16(torch.device("cpu"))
    steps = {name: make_step(preset, *flags) for name, flags in MODES.items() if fast or not flags[1]}
    times: dict[str, list[float]] = {name: [] for name in steps}
    for step, _ in steps.values():
        for _ in range(warmup):
            step()
    for _ in range(reps):
        for name, (step, _) in steps.items():
            start = time.perf_counter()
            for _ in range(iters):
                step()
            times[name].append(time.perf_counter() - start)
    out: dict[str, Any] = {}
    for name, (_, meta) in steps.items():
        median = statistics.median(times[name])
        out[name] = {
            "median_ms_per_step": 1000 * median / iters,
            "chars_per_s": meta["batch"] * meta["bptt"] * iters / median,
            "min_s": min(times[name]),
            "max_s": max(times[name]),
            **meta,
        }
    out["speedup"] = out["hoisted"]["chars_per_s"] / out["naive"]["chars_per_s"]
    if "bf16+compile" in out:
        out["fast_speedup"] = out["bf16+compile"]["chars_per_s"] / out["hoisted"]["chars_per_s"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", default="tiny,small", help="comma-separated preset names")
    parser.add_argument("--reps", type=int, default=5, help="repetitions (the median is reported)")
    parser.add_argument("--iters", type=int, default=10, help="timed steps per repetition")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("train_speed.json"))
    args = parser.parse_args()

    results = {
        preset: bench_preset(preset, args.reps, args.iters, args.warmup) for preset in args.presets.split(",")
    }

    threads = torch.get_num_threads()
    print(f"torch {torch.__version__}, {threads} threads; median of {args.reps} x {args.iters} steps\n")
    print("| preset | mode | model | B x T | chars/s | ms/step |")
    print("|---|---|---|---|---:|---:|")
    for preset, r in results.items():
        for mode in (m for m in MODES if m in r):
            v = r[mode]
            print(
                f"| {preset} | {mode} | {v['layers']}x{v['hidden']} {v['norm']}-{v['cell']} "
                f"| {v['batch']} x {v['bptt']} | {v['chars_per_s']:,.0f} | {v['median_ms_per_step']:.1f} |"
            )
    payload = {
        "machine": machine(),
        "torch_threads": threads,
        "reps": args.reps,
        "iters": args.iters,
        "results": results,
    }
    args.out.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
