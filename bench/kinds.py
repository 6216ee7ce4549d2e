"""Bits per byte by kind of text: English prose, code, markup, other languages, and kinds kept out of the
mix.

For each model given: model alone (``Runtime.score``, what ``lnrnn score`` and ``/v1/score`` use: fp32 and
int8) and adaptive (``lnrnn.codec.information`` with the int8 step graph, what ``lnrnn compress`` codes to),
on three groups of texts:

* ``english``: the eight shared validation splits (``VALIDATION_SPLITS``);
* ``kind``: every held-out split of the broad mix (``DATA/valid/<kind>.txt``, from ``make default-data``;
  its ``english.txt`` is the first group again and is skipped);
* ``ood``: the kinds kept out of the mix on purpose (``DATA/ood/<kind>.txt``).

Beside them, on the same bytes in the same run: gzip -9, xz -9e and PPMd order 6. The goals of a default
model that knows more than English prose are checked for the first model against the last (the
reference, today's default): every held-out kind alone below PPMd o6 and xz -9e; every out-of-domain text
alone below 8 bits/byte and adaptive no worse than PPMd o6; every English split alone (fp32) within +0.02
of the reference.

python -m bench.kinds --data runs/broad-data --model models/broad --model models/default \\
    --out bench/kinds.json [--card models/broad] [--quick]
python -m bench.kinds --results bench/kinds.json --card models/broad    # the card's table from saved results
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

from bench import classic_compressors
from bench.common import REPO
from lnrnn.bpc import bits_per_byte
from lnrnn.codec import StepGraph, information
from lnrnn.serve.engine.runtime import Runtime
from lnrnn.train.recipes.corpora import VALIDATION_SPLITS

BASELINES = ("gzip -9", "xz -9e", "PPMd o6")
GROUPS = ("english", "kind", "ood")
ENGLISH_SLACK = 0.02  # bits/byte the new default may lose on an English split
UNIFORM = 8.0  # bits/byte of a uniform guess over 256 bytes
QUICK_BYTES = 2048
START, END = "<!-- kinds:start -->", "<!-- kinds:end -->"
BENCH_MODELS = ("broad", "default")  # ``make bench``: the broad model against today's default
BENCH_DATA = REPO / "runs" / "broad-data"


def texts(data_dir: Path, quick: bool) -> list[tuple[str, str, bytes]]:
    """(group, name, bytes) of every text, English first; ``quick``: the first 2 kB of one per group."""
    limit = QUICK_BYTES if quick else None
    out = [("english", s.name, s.read(limit)) for s in VALIDATION_SPLITS]
    for group, folder in (("kind", "valid"), ("ood", "ood")):
        files = sorted((data_dir / folder).glob("*.txt"))
        if not files:
            raise SystemExit(f"kinds: error: no {data_dir / folder}/*.txt (run make default-data)")
        out += [(group, f.stem, f.read_bytes()[:limit]) for f in files if f.stem != "english"]
    if quick:
        firsts = {g: next(t for t in out if t[0] == g) for g in GROUPS}
        out = [firsts[g] for g in GROUPS]
    return out


def measure_model(directory: Path, items: list[tuple[str, str, bytes]], log: Any) -> dict[str, Any]:
    start = time.perf_counter()
    fp32 = Runtime.load(directory, device="cpu", precision="fp32")
    int8 = Runtime.load(directory, device="cpu", precision="int8")
    graph = StepGraph.load(directory, "int8")
    row: dict[str, Any] = {
        "model": directory.name,
        "path": str(directory),
        "fp32": {},
        "int8": {},
        "adaptive": {},
    }
    for _, name, data in items:
        row["fp32"][name] = bits_per_byte(fp32.score(data).nats, len(data))
        row["int8"][name] = bits_per_byte(int8.score(data).nats, len(data))
        row["adaptive"][name] = bits_per_byte(information(data, graph), len(data))
    log(f"  kinds {directory.name}: {len(items)} texts in {time.perf_counter() - start:.0f} s")
    return row


def measure(models: list[Path], data_dir: Path, quick: bool, log: Any = print) -> dict[str, Any]:
    items = texts(data_dir, quick)
    baselines = {}
    for _, name, data in items:
        classic = classic_compressors.measure(data)
        baselines[name] = {k: classic[k]["bits_per_byte"] for k in BASELINES}
    return {
        "texts": [{"group": g, "name": n, "bytes": len(d)} for g, n, d in items],
        "baselines": baselines,
        "models": [measure_model(m, items, log) for m in models],
    }


def goals(res: dict[str, Any]) -> list[dict[str, Any]]:
    """The goals of the first model (the candidate) against the last (the reference), each with its worst."""
    new, ref = res["models"][0], res["models"][-1]
    base = res["baselines"]
    out = []

    def worst(group: str, margin: Any) -> tuple[str, float]:
        names = [t["name"] for t in res["texts"] if t["group"] == group]
        name = max(names, key=margin)
        return name, margin(name)

    checks = [
        (
            "kind",
            "every held-out kind: model alone (int8) below PPMd o6",
            lambda n: new["int8"][n] - base[n]["PPMd o6"],
        ),
        (
            "kind",
            "every held-out kind: model alone (int8) below xz -9e",
            lambda n: new["int8"][n] - base[n]["xz -9e"],
        ),
        (
            "ood",
            "every out-of-domain text: model alone (int8) below 8 bits/byte",
            lambda n: new["int8"][n] - UNIFORM,
        ),
        (
            "ood",
            "every out-of-domain text: adaptive no worse than PPMd o6",
            lambda n: new["adaptive"][n] - base[n]["PPMd o6"],
        ),
        (
            "english",
            f"every English split: model alone (fp32) within +{ENGLISH_SLACK} of {ref['model']}",
            lambda n: new["fp32"][n] - ref["fp32"][n] - ENGLISH_SLACK,
        ),
    ]
    for group, goal, margin in checks:
        if not any(t["group"] == group for t in res["texts"]):
            continue
        name, value = worst(group, margin)
        strict = "no worse" not in goal and "within" not in goal
        met = value < 0 if strict else value <= 0
        out.append({"goal": goal, "worst": name, "margin": value, "met": met})
    return out


def render(res: dict[str, Any]) -> list[str]:
    models = res["models"]
    head = ["group", "text", "bytes", *BASELINES]
    for m in models:
        head += [f"{m['model']} fp32", f"{m['model']} int8", f"{m['model']} adaptive"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * 3 + "---:|" * (len(head) - 3)]
    for t in res["texts"]:
        name = t["name"]
        cells = [t["group"], name, f"{t['bytes']:,}"]
        cells += [f"{res['baselines'][name][b]:.3f}" for b in BASELINES]
        for m in models:
            cells += [f"{m['fp32'][name]:.3f}", f"**{m['int8'][name]:.3f}**", f"{m['adaptive'][name]:.3f}"]
        lines.append("| " + " | ".join(cells) + " |")
    if len(models) > 1:
        lines += [
            "",
            "| goal (first model; reference: last) | worst text | margin | met |",
            "|---|---|---:|---|",
        ]
        for g in goals(res):
            verdict = "met" if g["met"] else "**not met**"
            lines.append(f"| {g['goal']} | {g['worst']} | {g['margin']:+.3f} | {verdict} |")
    return lines


def write_card(model_dir: Path, res: dict[str, Any]) -> None:
    card = model_dir / "README.md"
    text = card.read_text(encoding="utf-8") if card.is_file() else f"# {model_dir.name}\n"
    block = f"{START}\n" + "\n".join(render(res)) + f"\n{END}"
    if START in text and END in text:
        text = re.sub(re.escape(START) + ".*?" + re.escape(END), lambda _: block, text, flags=re.S)
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    card.write_text(text, encoding="utf-8")


def bench_measure(quick: bool) -> dict[str, Any]:
    """The ``kinds`` section of ``make bench`` (needs ``make default-data``)."""
    return measure([REPO / "models" / m for m in BENCH_MODELS], BENCH_DATA, quick, log=print)


def render_section(res: dict[str, Any]) -> list[str]:
    kinds = res["kinds"]
    names = " against ".join(m["model"] for m in kinds["models"])
    return [
        "## Kinds of text",
        "",
        f"Bits per byte by kind of text, {names} (`python -m bench.update_sections kinds`;",
        "the same table is in the broad model's card): the model alone in fp32 and int8 (what `lnrnn score`",
        "and `/v1/score` use; int8 in bold, the CPU default) and adaptive (int8, what `lnrnn compress` codes",
        "to), beside gzip -9, xz -9e and PPMd order 6 on the same bytes. Groups: the eight shared English",
        "splits; the held-out split of every kind in the broad mix (`make default-data`, docs/broad-mix.md);",
        "the kinds kept out of it (ood).",
        "",
        *render(kinds),
        "",
    ]


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The broad model's goals as rows of the BENCHMARKS.md target table."""
    kinds = results.get("kinds", {})
    if len(kinds.get("models", [])) < 2:
        return []
    from bench.targets import _target

    return [
        _target(
            f"kinds: {kinds['models'][0]['model']}",
            g["goal"],
            f"worst {g['worst']}: {g['margin']:+.3f}",
            g["met"],
            f"short on {g['worst']} by {g['margin']:+.3f} bits/byte",
        )
        for g in goals(kinds)
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--data", type=Path, default=Path("runs/broad-data"), help="the broad mix (make default-data)"
    )
    parser.add_argument("--model", type=Path, action="append", default=[], help="exported model directory")
    parser.add_argument("--results", type=Path, help="render saved results instead of measuring")
    parser.add_argument("--out", type=Path, help="write the results JSON here")
    parser.add_argument("--card", type=Path, help="write the table into this model's README.md")
    parser.add_argument("--quick", action="store_true", help="2 kB of one text per group")
    args = parser.parse_args(argv)
    if args.results is not None:
        try:
            res = json.loads(args.results.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as err:
            print(f"kinds: error: cannot read {args.results}: {err}", file=sys.stderr)
            return 2
    else:
        missing = [m for m in args.model if not (m / "step.onnx").is_file()]
        if not args.model or missing:
            print(f"kinds: error: give --model DIR (exported models); missing: {missing}", file=sys.stderr)
            return 2
        res = measure(args.model, args.data, args.quick, log=lambda s: print(s, file=sys.stderr))
    if args.out is not None:
        args.out.write_text(json.dumps(res, indent=1) + "\n", encoding="utf-8")
    if args.card is not None:
        write_card(args.card, res)
    print("\n".join(render(res)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
