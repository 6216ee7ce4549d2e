"""Shared helpers for the benchmarks: repeated timing with medians, and a description of the machine."""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


def repeat(fn: Callable[[], Any], runs: int = 5, warmup: int = 1) -> dict[str, float]:
    """Time ``fn`` ``runs`` times after ``warmup`` calls: median, min and max seconds."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return {"median_s": statistics.median(times), "min_s": min(times), "max_s": max(times), "runs": runs}


def machine() -> dict[str, Any]:
    """CPU model, cores, memory, Python, library versions and the git commit."""
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = 0.0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem_gib = int(line.split()[1]) / 2**20
    except OSError:
        pass
    versions = {}
    for dist in ("torch", "onnx", "onnxruntime", "onnxruntime-gpu", "numpy", "fastapi", "uvicorn"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain"], cwd=REPO, capture_output=True, text=True
        ).stdout
        commit += "+dirty" if dirty.strip() else ""
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(mem_gib, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": versions,
        "commit": commit,
    }


MB_PER_MIB = 1.048576  # the targets are in MB (10^6 bytes); /proc and du report MiB


def mb_and_mib(mib: float) -> str:
    """``"209 MB (199 MiB)"``: a size in MiB shown in the targets' unit first."""
    return f"{mib * MB_PER_MIB:.0f} MB ({mib:.0f} MiB)"


def fmt(value: float, digits: int = 1) -> str:
    """Thousands separators for big numbers, fixed digits for small ones."""
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.{digits}f}"
