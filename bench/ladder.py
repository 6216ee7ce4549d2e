"""The size ladder: every shipped model at every precision it ships, on every shared validation split.

Per model x precision (fp32, int8, int4): parameters, bytes on disk of the step + sequence pair (and
gzip -9'd), bits/byte model-alone (``Runtime.score``, what ``lnrnn score`` prints) and adaptive
(``lnrnn.codec.information``, what ``lnrnn score --adaptive`` prints and ``lnrnn compress`` codes to), and µs
per character at batch 1 with one ONNX Runtime thread: the step graph (one call per typed character, what a
keyboard runs) and the sequence graph (scoring a text). Beside them, on the same splits and in the same run:
gzip -9, bzip2 -9, xz -9e and PPMd order 6, the adaptive compressors a phone could run instead.

python -m bench.ladder [--quick] [--plot docs/ladder.png] [--model NAME]... [--card]   # prints the JSON
python -m bench.update_sections ladder     # the full measurement into bench/results.json and BENCHMARKS.md
python -m bench.ladder --results bench/results.json --plot docs/ladder.png --card   # plot and cards from it
"""

from __future__ import annotations

import argparse
import gzip
import json
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench import classic_compressors
from bench.common import REPO
from lnrnn.bpc import bits_per_byte
from lnrnn.codec import StepGraph, information
from lnrnn.contract import PRECISION_FILES
from lnrnn.serve.engine.runtime import Runtime
from lnrnn.train.recipes.corpora import VALIDATION_SPLITS

MODELS_DIR = REPO / "models"
LADDER = ("default", "ladder-1m", "ladder-256k")  # largest first
PRECISIONS = ("fp32", "int8", "int4")
BASELINES = ("gzip -9", "bzip2 -9", "xz -9e", "PPMd o6")
QUICK_BYTES = 2048
STEP_CHARS, QUICK_STEP_CHARS = 400, 40  # characters per timed step-graph run
SEQUENCE_BYTES = 20_000  # bytes per timed sequence-graph run
RUNS = 5  # timed runs per speed figure (median)
MIB = 1 << 20
# the ladder's goals, for its int8 files (the budgets are the int8 pair's bytes): (model alone or adaptive,
# the compressor it must beat on every split)
GOALS = {
    "ladder-1m": (("alone", "bzip2 -9"), ("adaptive", "PPMd o6")),
    "ladder-256k": (("adaptive", "xz -9e"),),
}
BUDGETS = {"ladder-1m": MIB, "ladder-256k": 256 * 1024}  # bytes of the int8 pair
# int4 of the default model: at most this much above fp32 (alone) on every split, a step graph this small
INT4_MAX_DELTA, INT4_STEP_BYTES = 0.03, 1_500_000
KINDS = {"alone": "model alone", "adaptive": "adaptive"}
START, END = "<!-- ladder:start -->", "<!-- ladder:end -->"  # the card's generated table


def shipped(models_dir: Path = MODELS_DIR, names: tuple[str, ...] = LADDER) -> list[tuple[str, Path, str]]:
    """(model, directory, precision) for every pair of files that is present, in ladder order."""
    out = []
    for name in names:
        for precision in PRECISIONS:
            directory = models_dir / name
            if all((directory / f).is_file() for f in PRECISION_FILES[precision]):
                out.append((name, directory, precision))
    return out


def pair_bytes(directory: Path, precision: str) -> tuple[int, int]:
    """Bytes of the precision's step + sequence files, and of each gzip -9'd (summed)."""
    raw = [(directory / f).read_bytes() for f in PRECISION_FILES[precision]]
    return sum(len(b) for b in raw), sum(len(gzip.compress(b, compresslevel=9, mtime=0)) for b in raw)


def _median_us_per_char(fn: Any, chars: int) -> float:
    fn()  # warm-up: the first run allocates ONNX Runtime's buffers
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e6 * statistics.median(times) / chars


def step_us_per_char(graph: StepGraph, text: bytes) -> float:
    """One step-graph call per character at batch 1 (``StepGraph``: one intra-op thread)."""
    tokens = [np.array([b], dtype=np.int64) for b in text]

    def typing() -> None:
        state = graph.initial_state(1)
        for token in tokens:
            _, state = graph.step(token, state)

    return _median_us_per_char(typing, len(text))


def measure_one(
    directory: Path, precision: str, splits: list[tuple[str, bytes]], quick: bool
) -> dict[str, Any]:
    runtime = Runtime.load(directory, device="cpu", threads=1, precision=precision)
    graph = StepGraph.load(directory, precision)
    on_disk, gzipped = pair_bytes(directory, precision)
    cfg = runtime.meta.config
    row: dict[str, Any] = {
        "model": directory.name,
        "precision": precision,
        "shape": f"{cfg.cell} {cfg.layers}x{cfg.hidden}",
        "parameters": cfg.parameters,
        "bytes": on_disk,
        "step_bytes": (directory / PRECISION_FILES[precision][0]).stat().st_size,
        "gzip_bytes": gzipped,
        "alone": {},
        "adaptive": {},
    }
    for name, data in splits:
        row["alone"][name] = bits_per_byte(runtime.score(data).nats, len(data))
        row["adaptive"][name] = bits_per_byte(information(data, graph), len(data))
    text = splits[0][1]
    row["step_us_per_char"] = step_us_per_char(graph, text[: QUICK_STEP_CHARS if quick else STEP_CHARS])
    sample = text[:SEQUENCE_BYTES]
    row["sequence_us_per_char"] = _median_us_per_char(lambda: runtime.score(sample), len(sample))
    return row


def measure(
    quick: bool,
    log: Any = print,
    models_dir: Path = MODELS_DIR,
    names: tuple[str, ...] = LADDER,
    with_browser: bool = True,
) -> dict[str, Any]:
    splits = [
        (s.name, s.read(QUICK_BYTES if quick else None)) for s in VALIDATION_SPLITS[: 1 if quick else None]
    ]
    baselines = {}
    for name, data in splits:
        classic = classic_compressors.measure(data)
        baselines[name] = {k: classic[k]["bits_per_byte"] for k in BASELINES}
    rows = []
    for name, directory, precision in shipped(models_dir, names):
        start = time.perf_counter()
        row = measure_one(directory, precision, splits, quick)
        rows.append(row)
        log(
            f"  ladder {name} {precision}: {row['bytes']:,} B, alone {_mean(row['alone'], splits):.3f}, "
            f"adaptive {_mean(row['adaptive'], splits):.3f} bits/byte (byte-weighted), "
            f"{row['step_us_per_char']:.0f} µs/char step, {time.perf_counter() - start:.0f} s"
        )
    return {
        "splits": {name: len(data) for name, data in splits},
        "baselines": baselines,
        "rows": rows,
        "threads": 1,
        "browser": browser(models_dir, names, quick) if with_browser else {},
    }


BROWSER_PRECISION = "int8w"  # what the page's device mode runs (serve/page/route.py)
BROWSER_CONTEXT, BROWSER_TYPED, BROWSER_HEAT = 200, 40, 4096  # characters: context, typed one by one, scored


def browser(
    models_dir: Path = MODELS_DIR, names: tuple[str, ...] = LADDER, quick: bool = False
) -> dict[str, dict[str, Any]]:
    """µs per character in headless Chromium (ONNX Runtime Web, wasm, one thread) for every model that ships
    the page's int8w pair: lnrnn.js scoring 4 KiB (sequence graph) and the page's input -> suggestions time
    per typed character (median of ``RUNS`` scorings; median keystroke)."""
    import tempfile

    from playwright.sync_api import sync_playwright

    from bench.device import ARGS, CHROMIUM, heat_on_device, keystrokes, ready
    from bench.serving import running_server

    text = VALIDATION_SPLITS[0].read().decode("ascii")  # Tiny Shakespeare validation split: ASCII
    context, typed = text[:BROWSER_CONTEXT], text[BROWSER_CONTEXT : BROWSER_CONTEXT + BROWSER_TYPED]
    heat = text[1000 : 1000 + (512 if quick else BROWSER_HEAT)]
    out = {}
    with tempfile.TemporaryDirectory(prefix="lnrnn-ladder-") as tmp, sync_playwright() as p:
        for name in names:
            directory = models_dir / name
            if not all((directory / f).is_file() for f in PRECISION_FILES[BROWSER_PRECISION]):
                continue
            env = {"LNRNN_PRECISION": BROWSER_PRECISION}
            with running_server(directory, Path(tmp) / f"{name}.log", env=env) as (url, _, _):
                chromium = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
                page = chromium.new_context().new_page()
                page.goto(url + "/")
                ready(page, "device")
                keys = keystrokes(page, context, typed[: 10 if quick else None])
                scored = heat_on_device(page, heat, RUNS)
                chromium.close()
            out[name] = {
                "precision": BROWSER_PRECISION,
                "score_us_per_char": 1000 * statistics.median(scored) / len(heat),
                "keystroke_ms_p50": statistics.median(keys),
                "scored_chars": len(heat),
                "typed_chars": len(keys),
            }
    return out


def _mean(per_split: dict[str, float], splits: list[tuple[str, bytes]] | dict[str, int]) -> float:
    """Byte-weighted mean over the splits (total bits / total bytes)."""
    sizes = dict(splits) if isinstance(splits, dict) else {n: len(d) for n, d in splits}
    return sum(per_split[n] * sizes[n] for n in sizes) / sum(sizes.values())


def weighted(res: dict[str, Any], per_split: dict[str, float]) -> float:
    """Byte-weighted mean bits/byte over the splits a result measured."""
    return _mean(per_split, res["splits"])


def size(n: int) -> str:
    return f"{n / MIB:.2f} MiB" if n >= MIB else f"{n / 1024:.0f} KiB"


def render(res: dict[str, Any]) -> list[str]:
    lad = res["ladder"]
    names = list(lad["splits"])
    short = {n: n.split("-")[0][:6] for n in names}
    head = ["model", "prec.", "params", "on disk (gzip)", "µs/char step", "µs/char seq."]
    summary = [
        [
            f"{r['model']} ({r['shape']})",
            r["precision"],
            f"{r['parameters']:,}",
            f"{size(r['bytes'])} ({size(r['gzip_bytes'])})",
            f"{r['step_us_per_char']:.0f}",
            f"{r['sequence_us_per_char']:.1f}",
        ]
        for r in lad["rows"]
    ]
    per_split = []
    for r in lad["rows"]:
        for kind in ("alone", "adaptive"):
            per_split.append(
                [
                    f"{r['model']} {r['precision']} {kind}",
                    *[f"{r[kind][n]:.3f}" for n in names],
                    f"{weighted(lad, r[kind]):.3f}",
                ]
            )
    for b in BASELINES:
        values = {n: lad["baselines"][n][b] for n in names}
        per_split.append([b, *[f"{values[n]:.3f}" for n in names], f"{weighted(lad, values):.3f}"])
    return [
        "## The size ladder (`bench/ladder.py`)",
        "",
        "Every shipped model at every precision it ships; one ONNX Runtime thread; µs per character at "
        "batch 1: the step graph one call per character (typing), the sequence graph scoring 20 kB. "
        "Bits/byte on each shared validation split, model alone (`lnrnn score`) and adaptive (`lnrnn score "
        "--adaptive`, what `lnrnn compress` codes to), beside the classic compressors measured in the same "
        "run; the last column is the byte-weighted mean. Plot: `docs/ladder.png`.",
        "",
        *_table(head, summary),
        "",
        *render_browser(lad),
        *_table(["bits/byte", *[short[n] for n in names], "all"], per_split),
        "",
        *render_goals(lad),
        "",
    ]


def goals(lad: dict[str, Any]) -> list[dict[str, Any]]:
    """Each ladder goal on the int8 files: the budget, then every (kind, compressor) on every split."""
    out = []
    for model, pairs in GOALS.items():
        row = next((r for r in lad["rows"] if r["model"] == model and r["precision"] == "int8"), None)
        if row is None:
            continue
        budget = BUDGETS[model]
        out.append(
            {
                "model": model,
                "goal": f"int8 pair <= {size(budget)}",
                "measured": f"{row['bytes']:,} B",
                "met": row["bytes"] <= budget,
                "short": [] if row["bytes"] <= budget else ["size"],
            }
        )
        for kind, baseline in pairs:
            short = [n for n in lad["splits"] if row[kind][n] >= lad["baselines"][n][baseline]]
            margin = max(row[kind][n] - lad["baselines"][n][baseline] for n in lad["splits"])
            out.append(
                {
                    "model": model,
                    "goal": f"{KINDS[kind]} below {baseline} on every split",
                    "measured": f"worst split {margin:+.3f} bits/byte vs {baseline}",
                    "met": not short,
                    "short": short,
                }
            )
    return out + _int4_goals(lad)


def _int4_goals(lad: dict[str, Any]) -> list[dict[str, Any]]:
    rows = {r["precision"]: r for r in lad["rows"] if r["model"] == "default"}
    if "int4" not in rows or "fp32" not in rows:
        return []
    int4, fp32 = rows["int4"], rows["fp32"]
    delta = {n: int4["alone"][n] - fp32["alone"][n] for n in lad["splits"]}
    short = [n for n, d in delta.items() if d > INT4_MAX_DELTA]
    return [
        {
            "model": "default",
            "goal": f"int4 at most +{INT4_MAX_DELTA} bits/byte over fp32 (alone) on every split",
            "measured": f"worst split {max(delta.values()):+.4f} bits/byte",
            "met": not short,
            "short": short,
        },
        {
            "model": "default",
            "goal": f"int4 step graph <= {INT4_STEP_BYTES / 1e6:.1f} MB",
            "measured": f"{int4['step_bytes'] / 1e6:.2f} MB",
            "met": int4["step_bytes"] <= INT4_STEP_BYTES,
            "short": [] if int4["step_bytes"] <= INT4_STEP_BYTES else ["size"],
        },
    ]


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The ladder's goals as rows of the BENCHMARKS.md target table."""
    if "rows" not in results.get("ladder", {}):
        return []
    from bench.targets import _target

    return [
        _target(
            f"size ladder: {g['model']}",
            g["goal"],
            g["measured"],
            g["met"],
            f"short on {', '.join(g['short'])}",
        )
        for g in goals(results["ladder"])
    ]


def render_browser(lad: dict[str, Any]) -> list[str]:
    """The browser's numbers (headless Chromium, the page's device mode), when they were measured."""
    found = lad.get("browser") or {}
    if not found:
        return []
    rows = [
        [
            name,
            b["precision"],
            f"{b['score_us_per_char']:.1f}",
            f"{b['keystroke_ms_p50']:.2f}",
        ]
        for name, b in found.items()
    ]
    head = ["model", "prec.", "µs/char scoring (lnrnn.js, 4 KiB)", "ms per keystroke p50 (input -> DOM)"]
    return [
        "In the browser: headless Chromium, ONNX Runtime Web (wasm, one thread), the page's device mode with "
        "the weight-only int8 pair; median of 5 scorings, median of the typed characters.",
        "",
        *_table(head, rows),
        "",
    ]


def render_goals(lad: dict[str, Any], model: str | None = None) -> list[str]:
    rows = [
        [g["model"], g["goal"], g["measured"], "met" if g["met"] else f"not met ({', '.join(g['short'])})"]
        for g in goals(lad)
        if model is None or g["model"] == model
    ]
    return _table(["model", "goal", "measured", "verdict"], rows) if rows else []


def card_table(lad: dict[str, Any], model: str) -> list[str]:
    """The model card's table: one row per split, every precision alone and adaptive, the compressors."""
    rows = {r["precision"]: r for r in lad["rows"] if r["model"] == model}
    precisions = [p for p in PRECISIONS if p in rows]
    head = ["validation split", "bytes", *[f"alone {p}" for p in precisions]]
    head += [f"adaptive {p}" for p in precisions] + list(BASELINES)
    body = []
    for name, n in [*lad["splits"].items(), ("all (byte-weighted)", sum(lad["splits"].values()))]:
        one = name in lad["splits"]

        def value(per_split: dict[str, float], one: bool = one, name: str = name) -> str:
            return f"{per_split[name] if one else weighted(lad, per_split):.4f}"

        cells = [value(rows[p]["alone"]) for p in precisions] + [
            value(rows[p]["adaptive"]) for p in precisions
        ]
        classic = [value({k: lad["baselines"][k][b] for k in lad["splits"]}) for b in BASELINES]
        body.append([name, f"{n:,}", *cells, *classic])
    files = [
        [
            p,
            f"{rows[p]['bytes']:,}",
            f"{rows[p]['gzip_bytes']:,}",
            f"{rows[p]['step_us_per_char']:.0f}",
            f"{rows[p]['sequence_us_per_char']:.1f}",
        ]
        for p in precisions
    ]
    return [
        START,
        *_table(head, body),
        "",
        *_table(
            ["precision", "step + sequence bytes", "gzip -9'd", "µs/char step", "µs/char sequence"], files
        ),
        "",
        *render_goals(lad, model),
        END,
    ]


def write_card(model_dir: Path, lad: dict[str, Any]) -> None:
    """``evaluation.json`` (this model's rows) and the table between the card's ladder markers."""
    mine = dict(lad, rows=[r for r in lad["rows"] if r["model"] == model_dir.name])
    (model_dir / "evaluation.json").write_text(json.dumps(mine, indent=1) + "\n")
    card = model_dir / "README.md"
    text = card.read_text() if card.is_file() else f"# {model_dir.name}\n\n{START}\n{END}\n"
    if START not in text:
        text += f"\n{START}\n{END}\n"
    head, rest = text.split(START, 1)
    tail = rest.split(END, 1)[1]
    card.write_text(head + "\n".join(card_table(lad, model_dir.name)) + tail)


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(r) + " |" for r in rows]


def plot(res: dict[str, Any], out: Path) -> None:
    """Bytes on disk (log scale) against byte-weighted bits/byte, model alone and adaptive."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lad = res["ladder"]
    fig, ax = plt.subplots(figsize=(7.5, 4.8), dpi=120)
    markers = {"fp32": "o", "int8": "s", "int4": "^"}
    for kind, color in (("alone", "tab:blue"), ("adaptive", "tab:orange")):
        for r in lad["rows"]:
            ax.scatter(r["bytes"], weighted(lad, r[kind]), marker=markers[r["precision"]], color=color)
            if kind == "alone":
                ax.annotate(
                    f"{r['model']} {r['precision']}",
                    (r["bytes"], weighted(lad, r[kind])),
                    fontsize=7,
                    xytext=(4, 4),
                    textcoords="offset points",
                )
        ax.scatter([], [], color=color, label=f"model {kind}")
    for b, style in zip(BASELINES, (":", "-.", "--", "-"), strict=True):
        value = weighted(lad, {n: lad["baselines"][n][b] for n in lad["splits"]})
        ax.axhline(value, color="grey", linestyle=style, linewidth=1, label=f"{b} ({value:.2f})")
    for p, m in markers.items():
        ax.scatter([], [], marker=m, color="black", label=p)
    ax.set_xscale("log")
    ax.set_xlabel("bytes on disk (step + sequence graph), log scale")
    ax.set_ylabel("bits/byte, shared validation splits (byte-weighted)")
    ax.set_title("lnrnn size ladder")
    ax.legend(fontsize=7, loc="upper right")
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="first split, 2 kB: a check, not the table")
    parser.add_argument("--plot", type=Path, default=None, help="also draw the plot to this PNG")
    parser.add_argument("--model", action="append", default=None, help="only this model (repeatable)")
    parser.add_argument("--card", action="store_true", help="write each measured model's card table")
    parser.add_argument(
        "--results",
        type=Path,
        default=None,
        help="take the numbers from this results JSON (bench/results.json: `python -m bench.update_sections "
        "ladder` measured them) instead of measuring again",
    )
    args = parser.parse_args()
    if args.results is not None:
        if not args.results.is_file() or "ladder" not in json.loads(args.results.read_text()):
            parser.error(f"{args.results} has no ladder section: `python -m bench.update_sections ladder`")
        lad = json.loads(args.results.read_text())["ladder"]
        if args.model:
            lad = dict(lad, rows=[r for r in lad["rows"] if r["model"] in args.model])
        res = {"ladder": lad}
    else:
        res = {"ladder": measure(args.quick, names=tuple(args.model) if args.model else LADDER)}
    if args.plot:
        plot(res, args.plot)
    if args.card:
        for name in sorted({r["model"] for r in res["ladder"]["rows"]}):
            write_card(MODELS_DIR / name, res["ladder"])
    print(json.dumps(res["ladder"], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
