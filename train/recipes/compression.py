"""Bits per byte of a model (torch-free serve runtime) vs classic compressors, per validation split.

Also int8 vs fp32 BPC of the model on the same bytes when its int8 files exist. The model card's table
and the benchmark's compression section are both this measurement.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from lnrnn.bpc import bits_per_byte
from lnrnn.contract import SEQUENCE_INT8_FILE, STEP_FILE
from lnrnn.train.recipes.corpora import REPO, VALIDATION_SPLITS

DEFAULT_MODEL = REPO / "models" / "default"


def compressed_bits_per_byte(data: bytes) -> dict[str, float]:
    """gzip -9, bzip2 -9, xz -9e and zstd -19 (where installed), in bits per byte (sizes from lnrnn.serve)."""
    from lnrnn.compressors import compressed_sizes

    return {name: 8 * size / len(data) for name, size in compressed_sizes(data, with_zstd=True).items()}


def measure(quick: bool, log: Any = print, model_dir: Path = DEFAULT_MODEL) -> dict[str, Any]:
    """Every split (quick: the first 20 kB of each) with every compressor, and the model where present."""
    runtimes = {}
    if (model_dir / STEP_FILE).is_file():
        from lnrnn.serve.engine.runtime import Runtime

        runtimes["model"] = Runtime.load(model_dir, device="cpu", threads=0, precision="fp32")
        if (model_dir / SEQUENCE_INT8_FILE).is_file():
            runtimes["model int8"] = Runtime.load(model_dir, device="cpu", threads=0, precision="int8")
    rows = []
    for split in VALIDATION_SPLITS:
        data = split.read(20_000 if quick else None)
        row: dict[str, Any] = {"corpus": split.name, "bytes": len(data), **compressed_bits_per_byte(data)}
        for name, runtime in runtimes.items():
            start = time.perf_counter()
            row[name] = bits_per_byte(runtime.score(data).nats, len(data))
            row[f"{name} seconds"] = time.perf_counter() - start
        if "model int8" in row:
            row["int8 delta"] = row["model int8"] - row["model"]
        rows.append(row)
        log(
            f"  compression {split.name}: "
            + ", ".join(
                f"{k} {v:.3f}"
                for k, v in row.items()
                if k != "bytes" and isinstance(v, float) and "seconds" not in k
            )
        )
    return {
        "model": str(model_dir.relative_to(REPO) if model_dir.is_relative_to(REPO) else model_dir)
        if runtimes
        else f"missing ({model_dir} has no step.onnx): compressors only",
        "scorer": "lnrnn.serve.engine.runtime.Runtime (onnxruntime, torch-free), fast sequence graph",
        "rows": rows,
    }
