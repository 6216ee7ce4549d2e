"""This machine's roofline: memory bandwidth (large numpy copy) and matmul GFLOP/s (numpy GEMM).

Measured in the same run as the model benchmarks so that "achieved / bound" compares like with like.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bench.common import repeat


def memory_bandwidth_gbs(mib: int = 512, runs: int = 5) -> dict[str, Any]:
    """Bytes moved by ``np.copyto`` of a large float32 array (read + write), per second."""
    src = np.ones(mib * 2**20 // 4, dtype=np.float32)
    dst = np.empty_like(src)
    timing = repeat(lambda: np.copyto(dst, src), runs=runs)
    moved = 2 * src.nbytes
    return {"gb_per_s": moved / timing["median_s"] / 1e9, "array_mib": mib, **timing}


def gemm_gflops(n: int = 2048, runs: int = 5) -> dict[str, Any]:
    """Dense float32 n x n x n matmul: 2 n^3 FLOPs."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    timing = repeat(lambda: a @ b, runs=runs)
    return {"gflop_per_s": 2 * n**3 / timing["median_s"] / 1e9, "n": n, **timing}


def gemv_gflops(n: int = 1024, runs: int = 5, inner: int = 200) -> dict[str, Any]:
    """Matrix-vector products at batch 1 (the recurrent step's shape): 2 n^2 FLOPs each."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, 3 * n), dtype=np.float32)
    x = rng.standard_normal((1, n), dtype=np.float32)

    def run() -> None:
        for _ in range(inner):
            x @ a

    timing = repeat(run, runs=runs)
    return {"gflop_per_s": inner * 2 * n * 3 * n / timing["median_s"] / 1e9, "n": n, **timing}


def measure(quick: bool = False) -> dict[str, Any]:
    runs = 3 if quick else 5
    return {
        "memory_bandwidth": memory_bandwidth_gbs(mib=128 if quick else 512, runs=runs),
        "gemm": gemm_gflops(n=1024 if quick else 2048, runs=runs),
        "gemv": gemv_gflops(runs=runs),
    }
