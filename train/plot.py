"""Learning curves from ``metrics.jsonl``: train and valid BPC against the step (matplotlib, Agg backend)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lnrnn.errors import UserError


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """Every parseable line (a run killed mid-write may leave a torn last line, which is skipped)."""
    if not path.is_file():
        raise UserError(f"no metrics file at {path}")
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and "step" in record:
            records.append(record)
    return records


def series(records: list[dict[str, Any]], key: str) -> tuple[list[int], list[float]]:
    """(steps, values) of ``key``; a resumed run's repeated steps keep their latest value."""
    by_step = {int(r["step"]): float(r[key]) for r in records if r.get(key) is not None}
    steps = sorted(by_step)
    return steps, [by_step[s] for s in steps]


def plot_run(run_dir: Path, out: Path | None = None) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run_dir = Path(run_dir)
    records = read_metrics(run_dir / "metrics.jsonl")
    if not any("train/bpc" in r or "valid/bpc" in r for r in records):
        raise UserError(f"{run_dir / 'metrics.jsonl'} has no train/bpc or valid/bpc records yet")
    out = Path(out) if out else run_dir / "curves.png"
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for key, style in (("train/bpc", "-"), ("valid/bpc", "o-")):
        steps, values = series(records, key)
        if steps:
            ax.plot(steps, values, style, label=key, markersize=3)
    ax.set_xlabel("step")
    ax.set_ylabel("bits per byte")
    ax.set_title(run_dir.name)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
