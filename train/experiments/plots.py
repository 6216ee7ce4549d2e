"""One PNG per claim: BPC against the step, the mean over seeds as a line and the seed min-max as a band."""

from __future__ import annotations

from pathlib import Path
from typing import Any

# (panel title, curve key in a seed record, roles shown) per claim; default: one valid-BPC panel, all roles.
PANELS: dict[str, list[tuple[str, str, list[str] | None]]] = {
    "2": [
        ("train BPC (interval means)", "train_bpc_curve", None),
        ("valid BPC", "valid_curve", None),
    ],
    "3": [
        ("valid BPC, equal H", "valid_curve", ["gru/equal-H", "lstm/equal-H", "mgu/equal-H"]),
        (
            "valid BPC, equal parameters",
            "valid_curve",
            ["gru/equal-params", "lstm/equal-params", "mgu/equal-params"],
        ),
    ],
}


def band(
    seeds: dict[str, dict[str, Any]], key: str
) -> tuple[list[int], list[float], list[float], list[float]]:
    """Steps present in every seed's curve; mean, min and max over seeds at each."""
    curves = [{int(s): float(v) for s, v in rec[key]} for rec in seeds.values()]
    steps = sorted(set.intersection(*(set(c) for c in curves))) if curves else []
    values = [[c[s] for c in curves] for s in steps]
    return steps, [sum(v) / len(v) for v in values], [min(v) for v in values], [max(v) for v in values]


def plot_claim(claim: dict[str, Any], configs: dict[str, dict[str, Any]], out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = PANELS.get(claim["key"], [("valid BPC", "valid_curve", None)])
    fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 4.5), squeeze=False)
    for ax, (title, key, roles) in zip(axes[0], panels, strict=True):
        for role in roles or list(claim["roles"]):
            config = configs[claim["roles"][role]]
            steps, mean, lo, hi = band(config["seeds"], key)
            if not steps:
                continue
            (line,) = ax.plot(steps, mean, "o-", markersize=3, label=f"{role} ({config['params']:,} p)")
            ax.fill_between(steps, lo, hi, color=line.get_color(), alpha=0.2)
        ax.set_xlabel("step")
        ax.set_ylabel("bits per byte")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"Claim {claim['key']}: {claim['title']} (mean, band = seed min-max)", fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
