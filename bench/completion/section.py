"""The benchmark's completion section: keystroke savings against two baselines, a plot, the latency row.

In ``make bench``; alone: ``python -m bench.update_sections completion`` (merged into bench/results.json and
BENCHMARKS.md).
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from bench.common import REPO
from bench.completion import ksr, latency
from bench.serving import model_dir
from lnrnn.train.recipes.corpora import VALIDATION_SPLITS

PLOT = REPO / "docs" / "completion-ksr.png"
SYSTEMS = {"lnrnn": "lnrnn", "word_frequency": "word frequency", "ppm": "PPM (order 5, D)"}
GOALS = {"vs_word_frequency": 1.25, "vs_ppm": 1.1}
LATENCY_GOALS_MS = {"p50_ms": 10.0, "p99_ms": 30.0}


def uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return f"load average {os.getloadavg()}"


def measure(quick: bool, log: Any = print, plot: Path | None = PLOT) -> dict[str, Any]:
    """``plot``: where the bar chart goes (full mode only; None = none)."""
    before = uptime()
    with tempfile.TemporaryDirectory(prefix="lnrnn-bench-completion-") as tmp:
        model, which = model_dir(Path(tmp))
        text = VALIDATION_SPLITS[0].read().decode("ascii")
        res: dict[str, Any] = {
            "model": which,
            "uptime_start": before,
            "ksr": ksr.measure(quick, model, which, log),
            "latency": latency.measure(text, model, quick, log),
            "uptime_end": uptime(),
        }
    if plot is not None and not quick:
        draw(res["ksr"], plot)
        res["plot"] = str(plot.relative_to(REPO)) if plot.is_relative_to(REPO) else str(plot)
    return res


def draw(k: dict[str, Any], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = k["rows"]
    fig, ax = plt.subplots(figsize=(9, 3.8), dpi=110)
    width = 0.27
    for i, (key, label) in enumerate(SYSTEMS.items()):
        xs = [j + (i - 1) * width for j in range(len(rows))]
        ax.bar(xs, [r[key]["ksr"] for r in rows], width, label=label)
    ax.set_xticks(range(len(rows)), [r["split"] for r in rows], rotation=20, fontsize=8)
    ax.set_ylabel("keystroke savings (1 - keys / chars)")
    ax.set_title(
        f"Word completions, 3 shown: first {k['prefix_chars']:,} characters of each validation split",
        fontsize=10,
    )
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)


def _ratio(value: float | None) -> str:
    return "∞ (baseline saved nothing)" if value is None else f"{value:.2f}x"


def render(res: dict[str, Any]) -> list[str]:
    c = res["completion"]
    k, lat = c["ksr"], c["latency"]
    rows = [
        [
            r["split"],
            f"{r['chars']:,}",
            *[f"{r[key]['ksr']:.3f}" for key in SYSTEMS],
            _ratio(r["vs_word_frequency"]),
            _ratio(r["vs_ppm"]),
        ]
        for r in k["rows"]
    ]
    widths = ", ".join(f"{w} {v['ksr']:.3f} ({v['seconds']:.0f} s)" for w, v in k["widths"].items())
    lat_rows = [
        [name, r["requests"], f"{r['p50_ms']:.2f}", f"{r['p99_ms']:.2f}", f"{r['mean_ms']:.2f}", r["errors"]]
        for name, r in (
            ("session complete (n 3, until word)", lat["complete"]),
            ("session append (1 character)", lat["append"]),
        )
    ]
    run_p50 = ", ".join(f"{x:.2f}" for x in lat["complete"]["run_p50_ms"])
    header = ["split", "chars", *SYSTEMS.values(), "lnrnn / word freq.", "lnrnn / PPM"]
    return [
        "## Completions: keystroke savings (`bench/completion/`)",
        "",
        f"A simulated typist (`bench/completion/typist.py`) types the first {k['prefix_chars']:,} characters "
        "of each validation split. At every position the keyboard shows "
        f'{k["suggestions"]} completions (`until="word"`, max_chars {k["max_chars"]}); if one is the rest '
        "of the intended word with the character that ends it, one key accepts it, otherwise one character "
        "is typed. KSR = 1 - keystrokes / characters. lnrnn: the beam search of `/v1/complete` (width "
        f"{k['beam_width']}) on {k['model']}, its state carried from the prefix's start. Word frequency: "
        "units (a word and the character that ends it) counted on the training text, prefix match, adapting "
        "to the text typed. PPM: orders 0-5, escape method D, full exclusion, the same beam search, adapting "
        f"as it reads. All three learned from the same {k['train_bytes']:,} bytes (every corpus's bytes "
        f"before its validation split). PTB-char spells every word out one character per token (`k e e p "
        '_`), so its "words" are single characters.',
        "",
        *_table(header, rows),
        "",
        *(
            [
                f"![keystroke savings]({c['plot']})",
                "",
                f"Beam width on {k['widths_on']} (KSR, time to type the prefix): {widths}.",
                "",
            ]
            if "plot" in c
            else []
        ),
        f"Latency: {lat['runs']} runs, each a new session with a {lat['context_bytes']}-byte context of the "
        f"Tiny Shakespeare validation split, then {lat['typed_per_run']} characters typed, each an append "
        f"and a completion; {lat['client']}. Per-run complete p50 (ms): {run_p50}. The search alone in "
        f"process: p50 {lat['in_process']['p50_ms']:.2f} ms, p99 {lat['in_process']['p99_ms']:.2f} ms. "
        f"Load (1 min) {lat['load_1min'][0]:.2f} -> {lat['load_1min'][1]:.2f}; `uptime` before the section: "
        f"`{c['uptime_start']}`, after: `{c['uptime_end']}`.",
        "",
        *_table(["request", "n", "p50 ms", "p99 ms", "mean ms", "errors"], lat_rows),
        "",
    ]


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    from bench.report import table  # here, not at the top: bench.report imports this module

    return table(header, rows)


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    from bench.targets import _target  # here, not at the top: bench.targets imports this module

    c = results.get("completion", {})
    if "ksr" not in c:
        return []
    out = []
    rows = c["ksr"]["rows"]
    for key, goal in GOALS.items():
        met = [r for r in rows if r[key] is None or r[key] >= goal]
        worst = min(rows, key=lambda r: float("inf") if r[key] is None else r[key])
        out.append(
            _target(
                f"completion KSR, lnrnn / {SYSTEMS[key.removeprefix('vs_')]}, every split",
                f">= {goal}x on {len(rows)}/{len(rows)}",
                f"{len(met)}/{len(rows)} (lowest {_ratio(worst[key])} on {worst['split']})",
                len(met) == len(rows),
                f"not on {', '.join(r['split'] for r in rows if r not in met)}",
            )
        )
    session = c["latency"]["complete"]
    for key, goal in LATENCY_GOALS_MS.items():
        out.append(
            _target(
                f"session completion {key.removesuffix('_ms')} (n 3, until word, 1 client)",
                f"<= {goal:g} ms",
                f"{session[key]:.2f} ms",
                session[key] <= goal and session["errors"] == 0,
                f"the search alone takes p50 {c['latency']['in_process']['p50_ms']:.2f} ms / p99 "
                f"{c['latency']['in_process']['p99_ms']:.2f} ms in process; the rest is HTTP and the "
                "session's lock",
            )
        )
    return out
