"""Where the time of one batch-1 step goes: ORT profiler on the fast Scan, torch profiler on eager.

Used to explain the "fast Scan >= 10x PyTorch eager" target: both run the same small per-step kernels, so
the ratio is set by the per-kernel overhead of each framework times the kernels per step.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import torch

from bench import scoring
from bench.common import repeat


def ort_profile(path: Path, tokens: np.ndarray, state: np.ndarray, tmp: Path) -> dict[str, Any]:
    """Kernels per Scan iteration and each op's share (profiled run); µs/step from an unprofiled session.

    The profiler itself costs far more than a small kernel, so only counts and shares come from it.
    """
    feeds = {"tokens": tokens, "state": state}
    plain = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    wall = repeat(lambda: plain.run(None, feeds), runs=3)["median_s"]
    options = ort.SessionOptions()
    options.enable_profiling = True
    options.profile_file_prefix = str(tmp / "ort-profile")
    sess = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    sess.run(None, feeds)
    events = json.loads(Path(sess.end_profiling()).read_text())
    by_op: dict[str, float] = defaultdict(float)
    count: dict[str, int] = defaultdict(int)
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            op = e.get("args", {}).get("op_name", "?")
            by_op[op] += e["dur"]
            count[op] += 1
    steps = tokens.shape[1] - 1
    inside = {op: us for op, us in by_op.items() if op != "Scan" and count[op] >= steps}
    kernels = sum(count[op] for op in inside) / steps
    total = sum(inside.values()) or 1.0
    us_per_step = 1e6 * wall / steps
    return {
        "steps": steps,
        "us_per_step": us_per_step,
        "kernels_per_step": kernels,
        "us_per_kernel": us_per_step / kernels if kernels else 0.0,
        "profiled_us_per_step": by_op.get("Scan", 0.0) / steps,
        "op_share_pct": {op: 100 * us / total for op, us in sorted(inside.items(), key=lambda kv: -kv[1])},
        "op_count_per_step": {op: count[op] / steps for op in inside},
    }


def gemv_floor_us(hidden: int, gates: int = 3) -> float:
    """numpy (1, H) @ (H, g*H): the one matrix product a step cannot avoid."""
    rng = np.random.default_rng(0)
    w = rng.standard_normal((hidden, gates * hidden), dtype=np.float32)
    x = rng.standard_normal((1, hidden), dtype=np.float32)

    def run() -> None:
        for _ in range(1000):
            x @ w

    return 1e3 * repeat(run, runs=3)["median_s"]


def eager_profile(p: scoring.Prepared, tokens: np.ndarray) -> dict[str, Any]:
    fn = scoring.runners(p)[scoring.EAGER](tokens)
    wall = repeat(fn, runs=3)["median_s"]
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        fn()
    steps = tokens.shape[1] - 1
    top_level = [e for e in prof.events() if e.cpu_parent is None]
    return {
        "steps": steps,
        "us_per_step": 1e6 * wall / steps,
        "top_level_ops_per_step": len(top_level) / steps,
        "us_per_top_level_op": 1e6 * wall / len(top_level) if top_level else 0.0,
    }


def measure(text: bytes, tmp: Path, hidden: int = 256, steps: int = 2000) -> dict[str, Any]:
    p = scoring.prepare("gru", hidden, tmp / "profile", text[:1000])
    tokens = scoring.streams(text[:steps], 1)
    state = p.model.init_state(1).detach().numpy().copy()
    return {
        "model": f"1-layer LN-GRU H={hidden}, batch 1, {steps} bytes",
        "ort_fast_scan": ort_profile(p.fast_dir / "sequence.onnx", tokens, state, tmp),
        "pytorch_eager": eager_profile(p, tokens),
        "gemv_floor_us": gemv_floor_us(hidden),
    }
