"""Footprint: size of a fresh serve-only venv (and that torch is absent there), model size, import time."""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import REPO

IMPORT_SNIPPET = "import time; t = time.perf_counter(); import {mod}; print(time.perf_counter() - t)"


def dir_mib(path: Path) -> float:
    return sum(f.lstat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink()) / 2**20


def serve_venv() -> dict[str, Any]:
    """``pip install '<repo>[serve,cpu]'`` into a new venv; its size, and whether ``import torch`` fails."""
    base = getattr(sys, "_base_executable", sys.executable)
    with tempfile.TemporaryDirectory(prefix="lnrnn-serve-venv-") as tmp:
        venv = Path(tmp) / "venv"
        start = time.perf_counter()
        subprocess.run([base, "-m", "venv", str(venv)], check=True)
        py = str(venv / "bin" / "python")
        subprocess.run(
            [py, "-m", "pip", "install", "-q", "--disable-pip-version-check", f"{REPO}[serve,cpu]"],
            check=True,
            capture_output=True,
        )
        seconds = time.perf_counter() - start
        torch = subprocess.run([py, "-c", "import torch"], capture_output=True, cwd=tmp)
        serve = subprocess.run([py, "-c", "import lnrnn.serve.app"], capture_output=True, cwd=tmp)
        return {
            "size_mib": dir_mib(venv),
            "install_s": seconds,
            "torch_import_fails": torch.returncode != 0,
            "serve_app_imports": serve.returncode == 0,
            "command": "python -m venv V && V/bin/pip install '<repo>[serve,cpu]'",
        }


def import_time(module: str, runs: int) -> dict[str, Any]:
    """Median seconds of ``import module`` in a fresh interpreter (main venv); whether torch came too."""
    times = []
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, "-c", IMPORT_SNIPPET.format(mod=module)],
            capture_output=True,
            text=True,
            check=True,
            cwd=REPO,
        )
        times.append(float(out.stdout.strip()))
    check = f"import sys, {module}; print('torch' in sys.modules)"
    loads_torch = subprocess.run(
        [sys.executable, "-c", check], capture_output=True, text=True, check=True, cwd=REPO
    ).stdout.strip()
    return {
        "median_s": statistics.median(times),
        "min_s": min(times),
        "max_s": max(times),
        "runs": runs,
        "imports_torch": loads_torch == "True",
    }


def measure(quick: bool) -> dict[str, Any]:
    model = REPO / "models" / "default"
    return {
        "serve_venv": "skipped (quick mode)" if quick else serve_venv(),
        "models_default_mib": dir_mib(model) if model.is_dir() and any(model.iterdir()) else None,
        "import_time": {m: import_time(m, 3 if quick else 5) for m in ("lnrnn.serve", "lnrnn.serve.app")},
    }
