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
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from bench import report, targets
from bench.common import REPO
from bench.run import sections

RESULTS, MARKDOWN = REPO / "bench" / "results.json", REPO / "BENCHMARKS.md"


# sections that stand alone (scoring and roofline are combined after a full run, so they are not here)
STANDALONE = (
    "int8_choices",
    "typing",
    "batching",
    "serving",
    "compress",
    "completion",
    "device",
    "ladder",
    "kinds",
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sections", nargs="*", help=f"sections to re-measure: {', '.join(STANDALONE)}")
    parser.add_argument("--render-only", action="store_true", help="only recompute targets and markdown")
    args = parser.parse_args()
    unknown = sorted(set(args.sections) - set(STANDALONE))
    if unknown:
        parser.error(f"unknown sections {', '.join(unknown)}; choose from {', '.join(STANDALONE)}")
    res = json.loads(RESULTS.read_text(encoding="utf-8"))
    with tempfile.TemporaryDirectory(prefix="lnrnn-bench-") as tmp:
        known = dict(sections(False, Path(tmp)))  # the full run's own section definitions
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
