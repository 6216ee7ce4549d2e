"""`lnrnn compress` beside the classic compressors: bits per byte (container included) and kB/s both ways.

Texts: every validation split of ``lnrnn.train.recipes.corpora``, three out-of-domain texts
(``bench/ood_corpora.py``) and, for speed, the first 1,000,000 bytes of Tiny Shakespeare (format 2 and
format 1 alternating, five runs each, medians). Every format-2 container is decompressed and compared;
format 1 (the int8 step graph) is beside it, compressed only. The default model on this 2-core machine;
quick mode codes 2 kB slices, one speed run.

python -m bench.compress [--quick] [--out PATH]   # prints the table, writes the JSON
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

from bench import classic_compressors
from bench.common import REPO
from bench.ood_corpora import OUT_OF_DOMAIN
from lnrnn.codec import DEFAULT_BLOCK_SIZE, StepGraph, compress, decompress, lanes_for
from lnrnn.train.recipes.corpora import VALIDATION_SPLITS

DEFAULT_MODEL = REPO / "models" / "default"
OOD_BYTES = 131072
SPEED_BYTES = 1_000_000
SPEED_RUNS = 5
QUICK_BYTES = 2048


def _lnrnn(
    data: bytes, graph: StepGraph, adaptive: bool, version: int, round_trip: bool = True
) -> dict[str, Any]:
    """One compress (and decompress, compared) in format ``version``: bits/byte of the whole output, kB/s."""
    start = time.perf_counter()
    packed = compress(data, graph, adaptive=adaptive, version=version)
    middle = time.perf_counter()
    out = {
        "bytes": len(packed.blob),
        "bits_per_byte": 8 * len(packed.blob) / len(data),
        "overhead_bytes": packed.header.overhead,
        "lanes": packed.header.lanes,
        "compress_kb_s": len(data) / (middle - start) / 1000,
    }
    if round_trip:
        restored = decompress(packed.blob, graph)
        if restored != data:
            raise RuntimeError(f"lnrnn decompress (format {version}) did not restore the input")
        out["decompress_kb_s"] = len(data) / (time.perf_counter() - middle) / 1000
    return out


def speed(text: bytes, graph: StepGraph, runs: int, log: Any) -> dict[str, Any]:
    """Both formats on ``text`` (adaptive), alternating, ``runs`` times each: medians and every run."""
    each: dict[str, list[dict[str, Any]]] = {"format 2": [], "format 1": []}
    for i in range(runs):
        for version in (2, 1):
            run = _lnrnn(text, graph, adaptive=True, version=version)
            each[f"format {version}"].append(run)
            log(
                f"  speed run {i + 1}/{runs}, format {version}: {run['compress_kb_s']:.1f} / "
                f"{run['decompress_kb_s']:.1f} kB/s"
            )
    out: dict[str, Any] = {"bytes_in": len(text), "runs": runs, "load_average": os.getloadavg()[0]}
    for name, done in each.items():
        out[name] = {
            "compress_kb_s": statistics.median(r["compress_kb_s"] for r in done),
            "decompress_kb_s": statistics.median(r["decompress_kb_s"] for r in done),
            "bits_per_byte": done[0]["bits_per_byte"],
            "every_run": [[round(r["compress_kb_s"], 2), round(r["decompress_kb_s"], 2)] for r in done],
        }
    return out


def texts(quick: bool) -> list[tuple[str, str, bytes]]:
    """(name, kind, bytes): the validation splits, then the out-of-domain texts."""
    n = QUICK_BYTES if quick else None
    splits = VALIDATION_SPLITS[:1] if quick else VALIDATION_SPLITS
    out = [(s.name, "validation", s.read(n)) for s in splits]
    ood = list(OUT_OF_DOMAIN.items())[:1] if quick else OUT_OF_DOMAIN.items()
    return out + [(name, "out of domain", make(n or OOD_BYTES)) for name, make in ood]


def measure(
    quick: bool, log: Any = print, model_dir: Path = DEFAULT_MODEL, speed_runs: int = SPEED_RUNS
) -> dict[str, Any]:
    graph = StepGraph.load(model_dir)
    rows = []
    for name, kind, data in texts(quick):
        row: dict[str, Any] = {"text": name, "kind": kind, "bytes": len(data)}
        row["classic"] = classic_compressors.measure(data)
        row["lnrnn neural-only"] = _lnrnn(data, graph, adaptive=False, version=2)
        row["lnrnn adaptive"] = _lnrnn(data, graph, adaptive=True, version=2)
        # format 1 beside it (compressed only: its round trips are the tests' job, and it is the slow one)
        row["format 1 neural-only"] = _lnrnn(data, graph, adaptive=False, version=1, round_trip=False)
        row["format 1 adaptive"] = _lnrnn(data, graph, adaptive=True, version=1, round_trip=False)
        rows.append(row)
        best = min(row["classic"].items(), key=lambda kv: kv[1]["bits_per_byte"])
        log(
            f"  compress {name} ({len(data):,} B): adaptive {row['lnrnn adaptive']['bits_per_byte']:.3f} "
            f"(format 1 {row['format 1 adaptive']['bits_per_byte']:.3f}), neural-only "
            f"{row['lnrnn neural-only']['bits_per_byte']:.3f}, PPMd o6 "
            f"{row['classic']['PPMd o6']['bits_per_byte']:.3f}, best classic {best[0]} "
            f"{best[1]['bits_per_byte']:.3f}"
        )
    tinyshakespeare = VALIDATION_SPLITS[0].path.read_bytes()  # the whole file, not only its split
    speed_text = tinyshakespeare[: QUICK_BYTES * 4 if quick else SPEED_BYTES]
    return {
        "model": f"{model_dir.name} (format 2: integer network from step.onnx; format 1: "
        f"{graph.precision} step graph)",
        "block_size": DEFAULT_BLOCK_SIZE,
        "rows": rows,
        "speed": speed(speed_text, graph, 1 if quick else speed_runs, log),
    }


def render(res: dict[str, Any]) -> list[str]:
    """The markdown section: one row per text, bits/byte (container included)."""
    c = res["compress"]
    names = list(c["rows"][0]["classic"])
    header = [
        "text",
        "bytes",
        *names,
        "format 1 neural-only",
        "lnrnn neural-only",
        "format 1 adaptive",
        "lnrnn adaptive",
        "kB/s (adaptive, in / out)",
    ]
    lines = ["| " + " | ".join(header) + " |", "| --- |" + " ---: |" * (len(header) - 1)]
    for r in c["rows"]:
        ad = r["lnrnn adaptive"]
        cells = [
            f"{r['text']} ({r['kind']})",
            f"{r['bytes']:,}",
            *[f"{r['classic'][n]['bits_per_byte']:.3f}" for n in names],
            f"{r['format 1 neural-only']['bits_per_byte']:.3f}",
            f"{r['lnrnn neural-only']['bits_per_byte']:.3f}",
            f"{r['format 1 adaptive']['bits_per_byte']:.3f}",
            f"{ad['bits_per_byte']:.3f}",
            f"{ad['compress_kb_s']:.1f} / {ad['decompress_kb_s']:.1f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    s = c["speed"]
    f2, f1 = s["format 2"], s["format 1"]
    classic_speed = ", ".join(f"{n} {c['rows'][0]['classic'][n]['compress_kb_s']:,.0f}" for n in names)
    used = sorted({r[k]["lanes"] for r in c["rows"] for k in ("lnrnn neural-only", "lnrnn adaptive")})
    some = " or ".join(map(str, used))
    texts_lanes = "every text here in one lane" if used == [1] else f"the texts here in {some} lanes"
    speed_lanes = lanes_for(s["bytes_in"], c["block_size"])
    return [
        "## Compression (`lnrnn compress`, `bench/compress.py`)",
        "",
        f"Bits per byte of the whole output (lnrnn: the container, header and block table included); model "
        f"{c['model']}, blocks of {c['block_size']:,} bytes, the default lanes (one below 16 blocks, two "
        f"from there: {texts_lanes}, the speed runs in {speed_lanes}). `lnrnn` columns are format 2 (the "
        "default: decodes on any machine), every output decompressed and compared; the format 1 columns "
        "are compressed only. Out-of-domain texts: `bench/ood_corpora.py`.",
        "",
        *lines,
        "",
        f"Speed on {s['bytes_in']:,} bytes of Tiny Shakespeare (adaptive, both cores, median of "
        f"{s['runs']} runs, the formats alternating; load average {s['load_average']:.2f} at the end): "
        f"format 2 {f2['compress_kb_s']:.1f} kB/s compress, {f2['decompress_kb_s']:.1f} kB/s decompress "
        f"({f2['bits_per_byte']:.3f} bits/byte); format 1 {f1['compress_kb_s']:.1f} / "
        f"{f1['decompress_kb_s']:.1f} kB/s ({f1['bits_per_byte']:.3f} bits/byte); format 2 / format 1 = "
        f"{f2['compress_kb_s'] / f1['compress_kb_s']:.2f} / "
        f"{f2['decompress_kb_s'] / f1['decompress_kb_s']:.2f}. "
        f"Classic compressors on the first text, kB/s compress: {classic_speed}.",
        "",
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 kB slices of two texts")
    parser.add_argument("--out", type=Path, default=None, help="write the JSON here")
    args = parser.parse_args()
    res = {"compress": measure(args.quick)}
    print("\n".join(render(res)))
    if args.out:
        args.out.write_text(json.dumps(res, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
