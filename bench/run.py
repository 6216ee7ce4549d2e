"""One benchmark run: every measurement of the issue, side by side, written as JSON and markdown.

python -m bench.run                       # full: bench/results.json + BENCHMARKS.md (~20 min)
python -m bench.run --quick --out PATH    # reduced (~5 min): PATH (JSON) + PATH with .md
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from bench import (
    batching,
    compress,
    device,
    footprint,
    int8_choices,
    kinds,
    ladder,
    profile_scan,
    report,
    roofline,
    scoring,
    serving,
    targets,
    typing_latency,
)
from bench.common import REPO, machine
from bench.completion import section as completion
from bench.cost import roofline_row
from lnrnn.train.recipes import compression
from lnrnn.train.recipes.corpora import VALIDATION_SPLITS


def loadavg() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def training(quick: bool) -> dict[str, Any]:
    from bench.train_speed import MODES, bench_preset

    reps, iters, warmup = (3, 1, 1) if quick else (5, 2, 1)

    def one(preset: str) -> dict[str, Any]:
        result = bench_preset(preset, reps, iters, warmup, fast=not quick)  # compiling takes ~30 s
        modes = {name: result[name] for name in MODES if name in result}
        out = {"preset": preset, "reps": reps, "iters": iters, "modes": modes, "speedup": result["speedup"]}
        return out | ({"fast_speedup": result["fast_speedup"]} if "fast_speedup" in result else {})

    # full mode adds the default model's preset: the speed-ups depend on the size (~50 s more)
    return one("small") | ({} if quick else {"mix": one("mix")})


def sections(quick: bool, tmp: Path) -> list[tuple[str, Callable[[], dict[str, Any]]]]:
    text = VALIDATION_SPLITS[0].read()  # Tiny Shakespeare validation split
    scoring_kw: dict[str, Any] = (
        {"cells": ("gru", "lstm"), "hiddens": (256,), "batches": (1, 32), "runs": 3, "budget_s": 0.25}
        if quick
        else {
            "cells": ("gru", "lstm"),
            "hiddens": (256, 1024),
            "batches": (1, 32),
            "runs": 5,
            "budget_s": 1.0,
        }
    )
    full_only: list[tuple[str, Callable[[], dict[str, Any]]]] = [
        # tested on their own (tests/bench, tests/export): kept out of the quick run CI makes
        ("int8_choices", lambda: int8_choices.measure(quick)),
        ("typing", lambda: typing_latency.measure(text, quick)),
        ("compress", lambda: compress.measure(quick)),  # tests/codec round-trips and measures it
        ("completion", lambda: completion.measure(quick)),  # tests/bench/test_ksr.py tests its parts
        ("device", lambda: device.measure(quick)),  # tests/serve/test_page_device.py drives the same page
        ("ladder", lambda: ladder.measure(quick)),  # tests/bench/test_ladder.py runs it on tiny models
        ("kinds", lambda: kinds.bench_measure(quick)),  # tests/bench/test_kinds.py runs it on tiny models
    ]
    return [
        ("roofline", lambda: roofline.measure(quick)),
        ("scoring", lambda: scoring.measure(text[: 20_000 if quick else 100_000], tmp, **scoring_kw)),
        ("profile", lambda: profile_scan.measure(text, tmp, steps=500 if quick else 2000)),
        *([] if quick else full_only[:1]),
        ("serving", lambda: serving.measure(text, quick)),
        *([] if quick else full_only[1:2]),
        ("batching", lambda: batching.measure(text, quick)),
        ("footprint", lambda: footprint.measure(quick)),
        ("compression", lambda: compression.measure(quick)),
        *([] if quick else full_only[2:]),
        ("training", lambda: training(quick)),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="reduced run (~5 min), not for BENCHMARKS.md")
    parser.add_argument(
        "--out", type=Path, default=None, help="JSON path (default bench/results[-quick].json)"
    )
    parser.add_argument("--markdown", type=Path, default=None, help="markdown path (default: --out with .md)")
    args = parser.parse_args()
    out = args.out or REPO / "bench" / ("results-quick.json" if args.quick else "results.json")
    md = args.markdown or out.with_suffix(".md")
    start = time.perf_counter()
    command = "python -m bench.run" + (" --quick" if args.quick else "")
    if not args.quick:
        command += " --out bench/results.json --markdown BENCHMARKS.md"
    results: dict[str, Any] = {
        "mode": "quick" if args.quick else "full",
        "command": command,
        "started": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),  # noqa: UP017 (py310)
        "machine": machine(),
        "load_start": loadavg(),
        "sections": {},
    }
    failed = []
    with tempfile.TemporaryDirectory(prefix="lnrnn-bench-") as tmp:
        for name, fn in sections(args.quick, Path(tmp)):
            t0, load0 = time.perf_counter(), loadavg()
            print(f"[bench] {name} (load {load0:.2f})", flush=True)
            try:
                results[name] = fn()
            except Exception as err:  # one broken section must not hide the others' numbers
                traceback.print_exc()
                results[name] = {"error": f"{type(err).__name__}: {err}"}
                failed.append(name)
            results["sections"][name] = {
                "seconds": time.perf_counter() - t0,
                "load_start": load0,
                "load_end": loadavg(),
            }
    if "error" not in results["scoring"] and "error" not in results["roofline"]:
        bw = results["roofline"]["memory_bandwidth"]["gb_per_s"]
        gemm = results["roofline"]["gemm"]["gflop_per_s"]
        for row in results["scoring"]["rows"]:
            row |= roofline_row(row, bw, gemm)
    results["targets"] = targets.evaluate(results)
    results["load_end"] = loadavg()
    results["total_s"] = time.perf_counter() - start
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    md.write_text(report.render(results), encoding="utf-8")
    print(f"[bench] wrote {out} and {md} in {results['total_s']:.0f} s; failed sections: {failed or 'none'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
