"""Scoring speed of one text, batch 1: PyTorch eager vs the exported graphs on ONNX Runtime (CPU).

Not a test. Exports a random 1-layer LN-GRU (default H=256) with the generic and the fast sequence graph
(+ int8), scores the same text with each, and prints a markdown table of chars/s (median of --runs).

    .venv/bin/python bench/export_speed.py --out bench/export_speed.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from lnrnn.contract import BOS_ID
from lnrnn.export.api import export_model
from lnrnn.export.verify.checks import default_verify_data
from lnrnn.train.model import ByteLM, ModelConfig


def median_seconds(fn: Callable[[], object], runs: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="lnrnn-bench-") as tmp:
        bench(Path(tmp))


def bench(tmp: Path) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--chars", type=int, default=4000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = parser.parse_args()

    torch.manual_seed(0)
    model = ByteLM(ModelConfig(cell="gru", norm="layer", layers=1, hidden=args.hidden)).eval()
    text = (default_verify_data() * (args.chars // 10240 + 1))[: args.chars]
    tokens = np.array([[BOS_ID, *text]], dtype=np.int64)  # (1, n + 1)
    state = model.init_state(1).detach().numpy().copy()
    export_model(model, tmp / "generic", sequence="generic", verify_data=text[:1000])
    fast_report = export_model(model, tmp / "fast", quantize="int8", verify_data=text[:1000])

    def session(path: Path) -> ort.InferenceSession:
        return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])

    def sequence(path: Path) -> Callable[[], object]:
        sess = session(path)
        return lambda: sess.run(None, {"tokens": tokens, "state": state})

    def step_loop(path: Path) -> Callable[[], object]:
        sess = session(path)

        def run() -> None:
            s = state
            for t in range(tokens.shape[1]):
                _, s = sess.run(None, {"token": tokens[:, t], "state": s})

        return run

    def eager() -> None:
        with torch.inference_mode():
            model(torch.from_numpy(tokens), torch.from_numpy(state))

    methods: dict[str, Callable[[], object]] = {
        "PyTorch eager (forward, hoisted input path)": eager,
        "ORT step.onnx, Python loop": step_loop(tmp / "fast" / "step.onnx"),
        "ORT sequence.onnx generic (Scan around step)": sequence(tmp / "generic" / "sequence.onnx"),
        "ORT sequence.onnx fast (layer-wise Scan)": sequence(tmp / "fast" / "sequence.onnx"),
    }
    if fast_report.int8 and fast_report.int8["kept"]:
        methods["ORT step.int8.onnx, Python loop"] = step_loop(tmp / "fast" / "step.int8.onnx")
        methods["ORT sequence.int8.onnx fast"] = sequence(tmp / "fast" / "sequence.int8.onnx")

    n = tokens.shape[1]
    rows = []
    for name, fn in methods.items():
        sec = median_seconds(fn, args.runs)
        rows.append({"method": name, "seconds": sec, "chars_per_s": n / sec, "us_per_char": 1e6 * sec / n})
    print(
        f"1-layer LN-GRU, H={args.hidden}, batch 1, {n} tokens, median of {args.runs} runs, "
        f"torch {torch.__version__} ({torch.get_num_threads()} threads), onnxruntime {ort.__version__}"
    )
    print()
    print("| method | chars/s | µs/char |")
    print("|---|---:|---:|")
    for row in rows:
        print(f"| {row['method']} | {row['chars_per_s']:,.0f} | {row['us_per_char']:.1f} |")
    if fast_report.int8:
        print(f"\nint8 BPC delta on {len(text[:1000])} bytes: {fast_report.int8['bpc_delta']:+.2e} bits/byte")
    if args.out is not None:
        result = {
            "hidden": args.hidden,
            "tokens": n,
            "runs": args.runs,
            "machine": platform.processor() or platform.machine(),
            "torch": torch.__version__,
            "onnxruntime": ort.__version__,
            "int8_bpc_delta": fast_report.int8["bpc_delta"] if fast_report.int8 else None,
            "rows": rows,
        }
        args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
