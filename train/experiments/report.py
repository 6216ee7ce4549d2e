"""What the `seeds` experiment writes: ``results.json`` (schema below), ``report.md`` and one PNG per claim.

``results.json`` (``"schema": "lnrnn-experiment-seeds/1"``)::

    schema, experiment ("seeds"), quick (bool), command (str), created (UTC ISO time), rule (str),
    setup: {data, data_description, split_bytes {train, valid, test}, valid_bytes_used, layers, hidden,
            batch_size, bptt, optimizer, lr, clip, steps, eval_interval, log_interval, seeds [int],
            budget_minutes,
            probe {config: {ms_per_step, eval_s}}, probe_s, estimated_minutes, wall_minutes,
            machine {platform, cpu, cores, torch, torch_threads, loadavg_start, loadavg_end}},
    configs: {name: {name, settings {cell, norm, hidden, init}, params,
                     seeds {"<seed>": {valid_bpc (exact, last step), best_valid_bpc,
                                       valid_curve [[step, bpc]], train_bpc_curve [[step, bpc]],
                                       params, chars_per_s, wall_s, steps, stopped}},
                     summary {final_valid|valid_auc|train_auc: {mean, std, n, min, max},
                              chars_per_s, wall_s}}},
    claims: [{key, title, quote, source, note, roles {role: config name}, table [row], verdict,
              parts [{part, verdict, checks [{what, outcome, detail}]}], plot}]

``valid_auc`` / ``train_auc`` are the means of the valid / train BPC curves (area per step: lower = faster).
A table row: {role, config, hidden, params, final_valid, valid_auc, train_auc ("mean ± std"), chars_per_s,
wall_s}.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from lnrnn.train.experiments.stats import METRICS, RULE, Stat, claim_result, curve_mean, summarize
from lnrnn.train.plot import read_metrics, series

SCHEMA = "lnrnn-experiment-seeds/1"
LOAD_START = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


def seed_record(run_dir: Path, wall_s: float, stopped: str) -> dict[str, Any]:
    """One run's numbers from its ``metrics.jsonl`` and ``best.json``."""
    records = read_metrics(run_dir / "metrics.jsonl")
    valid = [list(p) for p in zip(*series(records, "valid/bpc"), strict=True)]
    train = [list(p) for p in zip(*series(records, "train/bpc"), strict=True)]
    cps = [r["perf/chars_per_s"] for r in records if r.get("perf/chars_per_s") is not None]
    best = json.loads((run_dir / "best.json").read_text(encoding="utf-8"))
    return {
        "valid_bpc": valid[-1][1] if valid else float("nan"),  # the last check, at the last step
        "best_valid_bpc": best["valid_bpc"],
        "valid_curve": valid,
        "train_bpc_curve": train,
        "params": best["parameters"],
        "chars_per_s": statistics.median(cps) if cps else float("nan"),
        "wall_s": wall_s,
        "steps": max((int(r["step"]) for r in records), default=0),
        "stopped": stopped,
    }


def config_entry(name: str, settings: dict[str, Any], seeds: dict[int, dict[str, Any]]) -> dict[str, Any]:
    recs = list(seeds.values())
    metrics = {
        "final_valid": [r["valid_bpc"] for r in recs],
        "valid_auc": [curve_mean(r["valid_curve"]) for r in recs],
        "train_auc": [curve_mean(r["train_bpc_curve"]) for r in recs],
    }
    summary: dict[str, Any] = {m: asdict(summarize(v)) for m, v in metrics.items()}
    summary["chars_per_s"] = statistics.fmean(r["chars_per_s"] for r in recs)
    summary["wall_s"] = statistics.fmean(r["wall_s"] for r in recs)
    seed_map = {str(k): v for k, v in seeds.items()}
    return {
        "name": name,
        "settings": settings,
        "params": recs[0]["params"],
        "seeds": seed_map,
        "summary": summary,
    }


def claim_entry(claim: Any, configs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    roles = {role: spec.name for role, spec in claim.roles.items()}

    def get(role: str, metric: str) -> Stat:
        return Stat(**configs[roles[role]]["summary"][metric])

    def params(role: str) -> int:
        return int(configs[roles[role]]["params"])

    table = []
    for role, name in roles.items():
        c = configs[name]
        row = {"role": role, "config": name, "hidden": c["settings"]["hidden"], "params": c["params"]}
        row.update({m: Stat(**c["summary"][m]).text() for m in METRICS})
        row.update(chars_per_s=round(c["summary"]["chars_per_s"]), wall_s=round(c["summary"]["wall_s"], 1))
        table.append(row)
    base = {"key": claim.key, "title": claim.title, "quote": claim.quote, "source": claim.source}
    return {
        **base,
        "note": claim.note,
        "roles": roles,
        "table": table,
        **claim_result(claim.key, get, params),
    }


def machine(threads: int) -> dict[str, Any]:
    import torch

    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "platform": platform.platform(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": threads,
        "loadavg_start": LOAD_START,
        "loadavg_end": os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan"),
    }


def build_results(plan: Any, records: dict[str, dict[int, dict[str, Any]]], opts: Any, wall_s: float) -> dict:
    s = plan.scale
    configs = {spec.name: config_entry(spec.name, spec.settings(), records[spec.name]) for spec in plan.specs}
    setup = {
        "data": str(opts.data),
        "data_description": plan.data_description,
        "split_bytes": dict(zip(("train", "valid", "test"), plan.split_bytes, strict=True)),
        "valid_bytes_used": min(s.valid_bytes, plan.split_bytes[1]),
        "layers": 1,
        "hidden": s.hidden,
        "batch_size": s.batch_size,
        "bptt": s.bptt,
        "optimizer": "adam",
        "lr": s.lr,
        "clip": 1.0,
        "steps": plan.steps,
        "eval_interval": plan.eval_interval,
        "log_interval": plan.log_interval,
        "seeds": plan.seeds,
        "budget_minutes": s.budget_minutes,
        "probe": {k: {"ms_per_step": 1000 * t.step_s, "eval_s": t.eval_s} for k, t in plan.timings.items()},
        "probe_s": plan.probe_s,
        "estimated_minutes": plan.estimate_s / 60,
        "wall_minutes": wall_s / 60,
        "machine": machine(s.threads),
    }
    return {
        "schema": SCHEMA,
        "experiment": "seeds",
        "quick": opts.quick,
        "command": opts.command,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "rule": RULE,
        "setup": setup,
        "configs": configs,
        "claims": [claim_entry(c, configs) for c in plan.claims],
    }


def write_outputs(plan: Any, records: dict[str, dict[int, dict[str, Any]]], opts: Any, wall_s: float) -> dict:
    from lnrnn.train.experiments.markdown import render
    from lnrnn.train.experiments.plots import plot_claim

    out: Path = opts.out
    results = build_results(plan, records, opts, wall_s)
    paths: dict[str, Path] = {}
    for claim in results["claims"]:
        png = plot_claim(claim, results["configs"], out / f"claim{claim['key']}.png")
        claim["plot"] = png.name
        paths[f"claim {claim['key']} plot"] = png
    paths["results"] = out / "results.json"
    paths["results"].write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    paths["report"] = out / "report.md"
    paths["report"].write_text(render(results), encoding="utf-8")
    return paths
