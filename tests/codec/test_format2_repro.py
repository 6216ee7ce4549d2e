"""Format 2 archives are byte-identical, and cross-decode, whatever computes the floats underneath: BLAS
thread counts, other OpenBLAS kernels (``OPENBLAS_CORETYPE``: other blocking, other summation orders), the
matrix products by BLAS instead of onnxruntime's integer kernel, and numpy with its SIMD dispatch switched
off (``NPY_DISABLE_CPU_FEATURES``), each in a fresh process. Controls in the same processes show that these
settings do change float results (a float32 matrix product, np.exp), so the equal archives are not an
accident of settings that change nothing."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from lnrnn.codec import StepGraph, compress
from tests.helpers import REPO

GOLDEN = Path(__file__).parent / "golden" / "format2"
LAYOUT = {"block_size": 200, "lanes": 2}

CHILD = """
import hashlib, json, sys
import numpy as np
from lnrnn.codec import StepGraph, compress, decompress
try:
    from numpy._core import _multiarray_umath as umath
except ImportError:  # numpy 1.x
    from numpy.core import _multiarray_umath as umath

model, text, reference, layout = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
graph = StepGraph.load(model, "fp32")
data = open(text, "rb").read()
blob = compress(data, graph, adaptive=False, version=2, **layout).blob
decoded = decompress(open(reference, "rb").read(), graph) == data
rng = np.random.default_rng(0)
a = rng.standard_normal((32, 448)).astype(np.float32)
w = rng.standard_normal((448, 1344)).astype(np.float32)
x = rng.standard_normal(100_000).astype(np.float32)
sha = lambda b: hashlib.sha256(b).hexdigest()
print(json.dumps({
    "archive": sha(blob), "decoded": decoded,
    "matmul": sha((a @ w).tobytes()), "exp": sha(np.exp(x).tobytes()),
    "features": sorted(k for k, v in umath.__cpu_features__.items() if v),
}))
"""


def dispatched_features() -> list[str]:
    """The SIMD targets numpy dispatches to on this CPU beyond its baseline (e.g. X86_V3 or AVX2 ...)."""
    try:
        from numpy._core import _multiarray_umath as umath
    except ImportError:  # numpy 1.x
        from numpy.core import _multiarray_umath as umath  # type: ignore[no-redef]
    return [f for f in umath.__cpu_dispatch__ if umath.__cpu_features__.get(f)]


def child(env: dict[str, str], model: Path, text: Path, reference: Path) -> dict[str, object]:
    full = {k: v for k, v in os.environ.items() if not k.startswith(("OMP_", "OPENBLAS_", "NPY_", "MKL_"))}
    full.update(env)
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(model), str(text), str(reference), json.dumps(LAYOUT)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=full,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


@pytest.mark.slow
def test_archives_are_identical_under_other_blas_kernels_threads_and_simd(tmp_path: Path) -> None:
    model = REPO / "models" / "default"
    if not (model / "step.onnx").is_file():
        pytest.skip("models/default has no step.onnx")
    text = GOLDEN / "lighthouse.txt"
    graph = StepGraph.load(model, "fp32")
    blob = compress(text.read_bytes(), graph, adaptive=False, version=2, **LAYOUT).blob  # type: ignore[arg-type]
    reference = tmp_path / "reference.lnrz"
    reference.write_bytes(blob)
    disabled = dispatched_features()
    blas = str(np.show_config(mode="dicts")["Build Dependencies"]["blas"].get("name", ""))  # type: ignore[index]
    blas_products = {"LNRNN_INTEGER_PRODUCTS": "numpy"}  # the matrix products by BLAS, not onnxruntime
    envs: dict[str, dict[str, str]] = {
        "default": {},
        **{
            f"threads {n}": {"OMP_NUM_THREADS": str(n), "OPENBLAS_NUM_THREADS": str(n), **blas_products}
            for n in (1, 2, 4)
        },
        "OpenBLAS Prescott (SSE3)": {"OPENBLAS_CORETYPE": "Prescott", **blas_products},
        "OpenBLAS Sandybridge (AVX)": {"OPENBLAS_CORETYPE": "Sandybridge", **blas_products},
    }
    if disabled:
        envs["numpy SIMD off"] = {"NPY_DISABLE_CPU_FEATURES": " ".join(disabled)}
        envs["numpy SIMD off, BLAS products"] = {**envs["numpy SIMD off"], **blas_products}
    with ThreadPoolExecutor(2) as pool:
        results = pool.map(lambda e: child(e, model, text, reference), envs.values())
        runs = dict(zip(envs, results, strict=True))
    expected = hashlib.sha256(blob).hexdigest()
    for name, result in runs.items():
        assert result["archive"] == expected, f"{name}: another archive"
        assert result["decoded"] is True, f"{name}: the reference archive did not decode"
    # controls: the settings do change float results, so they exercise other code paths
    base = runs["default"]
    if "openblas" in blas.lower():
        assert any(runs[n]["matmul"] != base["matmul"] for n in envs if n.startswith("OpenBLAS")), (
            "OPENBLAS_CORETYPE changed no float32 product: the kernels were not switched"
        )
    if disabled:
        off = runs["numpy SIMD off"]
        assert not set(disabled) & set(off["features"]), off["features"]  # type: ignore[arg-type]
        assert off["exp"] != base["exp"], "numpy's exp gave the same bits without SIMD: no other code path"
