"""Re-measure some sections of the full benchmark and merge them into bench/results.json + BENCHMARKS.md.

python -m bench.update_sections int8_choices typing batching
python -m bench.update_sections --render-only      # targets and markdown from the JSON as it is

For when only those sections changed: the rest keeps the numbers (and date) of the last full
``make bench``; the header lists what was re-measured, when, and the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from datetime import datetime, timezone
from typing import Any

from bench import batching, compress, int8_choices, report, serving, targets, typing_latency
from bench.common import REPO
from lnrnn.train.recipes.corpora import VALIDATION_SPLITS

RESULTS, MARKDOWN = REPO / "bench" / "results.json", REPO / "BENCHMARKS.md"


def measures() -> dict[str, Any]:
    text = VALIDATION_SPLITS[0].read()
    return {
        "int8_choices": lambda: int8_choices.measure(False),
        "typing": lambda: typing_latency.measure(text, False),
        "batching": lambda: batching.measure(text, False),
        "serving": lambda: serving.measure(text, False),
        "compress": lambda: compress.measure(False),
    }


def main() -> int:
    known = measures()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sections", nargs="*", help=f"sections to re-measure: {', '.join(sorted(known))}")
    parser.add_argument("--render-only", action="store_true", help="only recompute targets and markdown")
    args = parser.parse_args()
    unknown = sorted(set(args.sections) - set(known))
    if unknown:
        parser.error(f"unknown sections {', '.join(unknown)}; choose from {', '.join(sorted(known))}")
    res = json.loads(RESULTS.read_text(encoding="utf-8"))
    for name in [] if args.render_only else args.sections:
        start, load = time.perf_counter(), os.getloadavg()[0]
        print(f"[bench] {name} (load {load:.2f})", flush=True)
        res[name] = known[name]()
        res.setdefault("updated", {})[name] = {
            "at": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),  # noqa: UP017 (py310)
            "seconds": time.perf_counter() - start,
            "load_start": load,
            "load_end": os.getloadavg()[0],
        }
        RESULTS.write_text(json.dumps(res, indent=2) + "\n", encoding="utf-8")
    res["targets"] = targets.evaluate(res)
    RESULTS.write_text(json.dumps(res, indent=2) + "\n", encoding="utf-8")
    MARKDOWN.write_text(report.render(res), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
