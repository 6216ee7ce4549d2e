"""`lnrnn compress` beside the classic compressors: bits per byte (container included) and kB/s both ways.

Texts: every validation split of ``lnrnn.train.recipes.corpora``, three out-of-domain texts
(``bench/ood_corpora.py``) and, for speed, the first 1,000,000 bytes of Tiny Shakespeare. Every lnrnn
container is decompressed and compared. The default model (int8 step graph) on this 2-core machine;
quick mode codes 2 kB slices.

python -m bench.compress [--quick] [--out PATH]   # prints the table, writes the JSON
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from bench import classic_compressors
from bench.common import REPO
from bench.ood_corpora import OUT_OF_DOMAIN
from lnrnn.codec import DEFAULT_BLOCK_SIZE, StepGraph, compress, decompress
from lnrnn.train.recipes.corpora import VALIDATION_SPLITS

DEFAULT_MODEL = REPO / "models" / "default"
OOD_BYTES = 131072
SPEED_BYTES = 1_000_000
QUICK_BYTES = 2048


def _lnrnn(data: bytes, graph: StepGraph, adaptive: bool) -> dict[str, Any]:
    start = time.perf_counter()
    packed = compress(data, graph, adaptive=adaptive)
    middle = time.perf_counter()
    restored = decompress(packed.blob, graph)
    end = time.perf_counter()
    if restored != data:
        raise RuntimeError("lnrnn decompress did not restore the input")
    return {
        "bytes": len(packed.blob),
        "bits_per_byte": 8 * len(packed.blob) / len(data),
        "overhead_bytes": packed.header.overhead,
        "compress_kb_s": len(data) / (middle - start) / 1000,
        "decompress_kb_s": len(data) / (end - middle) / 1000,
    }


def texts(quick: bool) -> list[tuple[str, str, bytes]]:
    """(name, kind, bytes): the validation splits, then the out-of-domain texts."""
    n = QUICK_BYTES if quick else None
    splits = VALIDATION_SPLITS[:1] if quick else VALIDATION_SPLITS
    out = [(s.name, "validation", s.read(n)) for s in splits]
    ood = list(OUT_OF_DOMAIN.items())[:1] if quick else OUT_OF_DOMAIN.items()
    return out + [(name, "out of domain", make(n or OOD_BYTES)) for name, make in ood]


def measure(quick: bool, log: Any = print, model_dir: Path = DEFAULT_MODEL) -> dict[str, Any]:
    graph = StepGraph.load(model_dir)
    rows = []
    for name, kind, data in texts(quick):
        row: dict[str, Any] = {"text": name, "kind": kind, "bytes": len(data)}
        row["classic"] = classic_compressors.measure(data)
        row["lnrnn neural-only"] = _lnrnn(data, graph, adaptive=False)
        row["lnrnn adaptive"] = _lnrnn(data, graph, adaptive=True)
        rows.append(row)
        best = min(row["classic"].items(), key=lambda kv: kv[1]["bits_per_byte"])
        log(
            f"  compress {name} ({len(data):,} B): adaptive {row['lnrnn adaptive']['bits_per_byte']:.3f}, "
            f"neural-only {row['lnrnn neural-only']['bits_per_byte']:.3f}, PPMd o6 "
            f"{row['classic']['PPMd o6']['bits_per_byte']:.3f}, best classic {best[0]} "
            f"{best[1]['bits_per_byte']:.3f}"
        )
    tinyshakespeare = VALIDATION_SPLITS[0].path.read_bytes()  # the whole file, not only its split
    speed_text = tinyshakespeare[: QUICK_BYTES * 4 if quick else SPEED_BYTES]
    speed = _lnrnn(speed_text, graph, adaptive=True) | {"bytes_in": len(speed_text)}
    log(
        f"  compress speed on {len(speed_text):,} B: {speed['compress_kb_s']:.1f} kB/s compress, "
        f"{speed['decompress_kb_s']:.1f} kB/s decompress"
    )
    return {
        "model": f"{model_dir.name} ({graph.precision} step graph)",
        "block_size": DEFAULT_BLOCK_SIZE,
        "rows": rows,
        "speed": speed,
    }


def render(res: dict[str, Any]) -> list[str]:
    """The markdown section: one row per text, bits/byte (container included)."""
    c = res["compress"]
    names = list(c["rows"][0]["classic"])
    header = ["text", "bytes", *names, "lnrnn neural-only", "lnrnn adaptive", "kB/s (adaptive, in / out)"]
    lines = ["| " + " | ".join(header) + " |", "| --- |" + " ---: |" * (len(header) - 1)]
    for r in c["rows"]:
        ad = r["lnrnn adaptive"]
        cells = [
            f"{r['text']} ({r['kind']})",
            f"{r['bytes']:,}",
            *[f"{r['classic'][n]['bits_per_byte']:.3f}" for n in names],
            f"{r['lnrnn neural-only']['bits_per_byte']:.3f}",
            f"{ad['bits_per_byte']:.3f}",
            f"{ad['compress_kb_s']:.1f} / {ad['decompress_kb_s']:.1f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    s = c["speed"]
    classic_speed = ", ".join(f"{n} {c['rows'][0]['classic'][n]['compress_kb_s']:,.0f}" for n in names)
    return [
        "## Compression (`lnrnn compress`, `bench/compress.py`)",
        "",
        f"Bits per byte of the whole output (lnrnn: the container, header and block table included); model "
        f"{c['model']}, blocks of {c['block_size']:,} bytes, two lanes. Every output was decompressed and "
        "compared. Out-of-domain texts: `bench/ood_corpora.py`.",
        "",
        *lines,
        "",
        f"Speed on {s['bytes_in']:,} bytes of Tiny Shakespeare (adaptive, both cores): "
        f"{s['compress_kb_s']:.1f} kB/s compress, {s['decompress_kb_s']:.1f} kB/s decompress "
        f"({s['bits_per_byte']:.3f} bits/byte). Classic compressors on the first text, kB/s compress: "
        f"{classic_speed}.",
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
