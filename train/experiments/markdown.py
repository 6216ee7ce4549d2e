"""``report.md`` of the `seeds` experiment, rendered from the ``results.json`` dict alone."""

from __future__ import annotations

from typing import Any

COLUMNS = [
    ("role", "role"),
    ("config", "config"),
    ("hidden", "H"),
    ("params", "params"),
    ("final_valid", "final valid BPC"),
    ("valid_auc", "valid curve mean"),
    ("train_auc", "train curve mean"),
    ("chars_per_s", "train chars/s"),
    ("wall_s", "wall s/run"),
]


def table(rows: list[dict[str, Any]]) -> list[str]:
    def cell(key: str, value: Any) -> str:
        return f"{value:,}" if key in ("params", "chars_per_s") else str(value)

    lines = ["| " + " | ".join(h for _, h in COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(cell(k, row[k]) for k, _ in COLUMNS) + " |" for row in rows]
    return lines


def header(r: dict[str, Any]) -> list[str]:
    s, m = r["setup"], r["setup"]["machine"]
    split = s["split_bytes"]
    lines = ["# Normalisation, cell and initialiser claims at small scale (`lnrnn experiment seeds`)", ""]
    if r["quick"]:
        lines += ["**QUICK MODE: a smoke test of the code paths; the numbers mean nothing.**", ""]
    lines += [
        f"- **Command:** `{r['command']}`",
        f"- **Model:** byte-level LM, {s['layers']} recurrent layer, tied embedding (E = H), learned initial "
        f"state; H = {s['hidden']} (claim 3's equal-parameter models: see its table); no dropout.",
        f"- **Training:** {s['steps']} steps for every run (batch {s['batch_size']} x {s['bptt']} bytes, "
        f"truncated BPTT with carried state), {s['optimizer']} lr {s['lr']}, gradient clip {s['clip']}; "
        f"valid checks every {s['eval_interval']} steps, train BPC logged every {s['log_interval']} steps.",
        f"- **Data:** {s['data_description']}. The trainer's normal split (train {split['train']:,} / valid "
        f"{split['valid']:,} / test {split['test']:,} bytes); validation is exact BPC over the first "
        f"**{s['valid_bytes_used']:,} bytes of the valid split** (one document from the initial state, "
        "`lnrnn.bpc.bits_per_byte`); the test split is not used.",
        f"- **Seeds:** {', '.join(map(str, s['seeds']))} (mean ± sample std over seeds).",
        f"- **Machine:** {m['cpu']}, {m['cores']} cores, torch {m['torch']} with {m['torch_threads']} "
        f"threads, {m['platform']}; load average {m['loadavg_start']:.2f} at start, "
        f"{m['loadavg_end']:.2f} at end (well above 0 means other work shared the CPU: "
        "speeds and wall times are then pessimistic).",
        f"- **Time:** {s['wall_minutes']:.1f} min in all (timing probe {s['probe_s']:.0f} s, estimate "
        f"{s['estimated_minutes']:.1f} min, budget {s['budget_minutes']:g} min).",
        f"- **Verdict rule:** {r['rule']}",
        "- **Metrics:** *final valid BPC* is the check at the last step (not the best one); *valid / train "
        "curve mean* is the mean of the BPC learning curve over its checks, i.e. the area under it per step: "
        "lower means faster training at equal steps.",
        "",
        "| claim | verdict |",
        "|---|---|",
    ]
    lines += [f"| {c['key']}. {c['title']} | **{c['verdict']}** |" for c in r["claims"]]
    return lines + [""]


def claim_section(c: dict[str, Any]) -> list[str]:
    lines = [f"## Claim {c['key']}: {c['title']}", "", f"> {c['quote']}", "", f"Source: {c['source']}.", ""]
    if c["note"]:
        lines += [c["note"], ""]
    lines += table(c["table"]) + [""]
    for part in c["parts"]:
        lines += [f"**{part['part']}: {part['verdict']}**", ""]
        lines += [f"- {k['outcome']}: {k['what']} ({k['detail']})" for k in part["checks"]]
        lines.append("")
    lines += [f"**Verdict: {c['verdict']}.**", "", f"![claim {c['key']}]({c['plot']})", ""]
    return lines


def short_runs(results: dict[str, Any]) -> list[str]:
    """Runs that did not reach the planned steps (time cap or signal): their configs are not comparable."""
    return [
        f"- **{name} seed {seed} stopped early** ({rec['stopped']}, {rec['steps']} steps)"
        for name, config in results["configs"].items()
        for seed, rec in config["seeds"].items()
        if rec["stopped"] != "max_steps"
    ]


def render(results: dict[str, Any]) -> str:
    lines = header(results)
    flagged = short_runs(results)
    if flagged:
        lines += flagged + [""]
    for claim in results["claims"]:
        lines += claim_section(claim)
    lines += [
        "## Caveats",
        "",
        "- Small models trained for minutes on 1 MB of text: the claims were made for large models trained "
        "to convergence (Hafner: 2000 units on text8). A verdict here is about this scale only.",
        "- Every run has the same steps, batch and sequence length, and the same learning rate: no "
        "per-config tuning, which can favour one configuration.",
        "- Seeds vary the initialisation only; the data order is the same for every run.",
        "",
    ]
    return "\n".join(lines)
