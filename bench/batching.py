"""Cross-request batching against the same server without it (``LNRNN_BATCH_STREAMS=1``), each measured in
the same run: 32 clients with distinct 200-byte predict contexts, 32 clients scoring distinct 10 kB texts,
and 1 client. The load generator is ``bench.load_client`` in its own process, on the same 2 cores.
"""

from __future__ import annotations

import os
import resource
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.serving import load, model_dir, running_server

MODES = {"batched": {}, "unbatched": {"LNRNN_BATCH_STREAMS": "1"}}  # batched = the server's defaults
CLIENTS = 32
SCORE_BYTES = 10_000


def payloads(text: bytes) -> dict[str, list[dict[str, Any]]]:
    chars = text.decode("ascii", errors="replace")
    predict = [
        {"path": "/v1/predict", "body": {"text": chars[i : i + 200], "top_k": 5}}
        for i in range(0, len(chars) - 200, 200)
    ]
    score = [
        {"path": "/v1/score", "body": {"text": chars[i : i + SCORE_BYTES]}}
        for i in range(0, len(chars) - SCORE_BYTES, SCORE_BYTES)
    ]
    return {"predict": predict, "score": score}


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (/proc/PID/stat, Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def one_mode(
    url: str, pid: int, bodies: dict[str, list[dict[str, Any]]], tmp: Path, quick: bool
) -> dict[str, Any]:
    seconds = 4 if quick else 15
    single = load(url, bodies["predict"], tmp, 1, requests=40 if quick else 300)
    # what batching is for: the server's CPU per request and how many of the cores it keeps busy
    cpu0, wall0, client0 = cpu_seconds(pid), time.monotonic(), resource.getrusage(resource.RUSAGE_CHILDREN)
    predict = load(url, bodies["predict"], tmp, CLIENTS, duration=seconds)
    cpu, wall = cpu_seconds(pid) - cpu0, time.monotonic() - wall0
    client = resource.getrusage(resource.RUSAGE_CHILDREN)
    client_cpu = client.ru_utime + client.ru_stime - client0.ru_utime - client0.ru_stime
    predict["server_cpu_ms_per_request"] = 1000 * cpu / max(1, predict["req_per_s"] * wall)
    predict["server_cores_busy"] = cpu / wall
    predict["client_cores_busy"] = client_cpu / wall  # the load client, on the same 2 cores
    score = load(url, bodies["score"], tmp, CLIENTS, duration=seconds * 2)
    score["bytes_per_s"] = score["req_per_s"] * SCORE_BYTES
    return {"predict_1_client": single, "predict_32_clients": predict, "score_10k_32_clients": score}


def measure(text: bytes, quick: bool, log: Any = print) -> dict[str, Any]:
    """Alternate the two servers ``rounds`` times; medians per mode, ratios from the medians."""
    rounds = 1 if quick else 3
    bodies = payloads(text)
    runs: dict[str, list[dict[str, Any]]] = {mode: [] for mode in MODES}
    loads: list[float] = []
    with tempfile.TemporaryDirectory(prefix="lnrnn-bench-batching-") as tmp_name:
        tmp = Path(tmp_name)
        model, which = model_dir(tmp)
        for _ in range(rounds):
            for mode, env in MODES.items():
                loads.append(os.getloadavg()[0])
                with running_server(model, tmp / "server.log", env=env) as (url, pid, _):
                    runs[mode].append(one_mode(url, pid, bodies, tmp, quick))
                r = runs[mode][-1]
                log(
                    f"  {mode}: 1 client p50 {r['predict_1_client']['p50_ms']:.1f} ms; 32 clients "
                    f"{r['predict_32_clients']['req_per_s']:.0f} predict/s "
                    f"({r['predict_32_clients']['server_cpu_ms_per_request']:.1f} ms server CPU each, "
                    f"{r['predict_32_clients']['server_cores_busy']:.2f} cores busy), "
                    f"{r['score_10k_32_clients']['bytes_per_s'] / 1e3:.1f} kB/s scored"
                )

    def median(mode: str, section: str, key: str) -> float:
        return statistics.median(r[section][key] for r in runs[mode])

    summary = {
        mode: {
            "predict_1_client_p50_ms": median(mode, "predict_1_client", "p50_ms"),
            "predict_32_req_per_s": median(mode, "predict_32_clients", "req_per_s"),
            "predict_32_p50_ms": median(mode, "predict_32_clients", "p50_ms"),
            "predict_32_p99_ms": median(mode, "predict_32_clients", "p99_ms"),
            "predict_32_server_cpu_ms": median(mode, "predict_32_clients", "server_cpu_ms_per_request"),
            "predict_32_server_cores_busy": median(mode, "predict_32_clients", "server_cores_busy"),
            "predict_32_client_cores_busy": median(mode, "predict_32_clients", "client_cores_busy"),
            "score_32_bytes_per_s": median(mode, "score_10k_32_clients", "bytes_per_s"),
            "errors": sum(
                r[s]["errors"] for r in runs[mode] for s in ("predict_1_client", "predict_32_clients")
            )
            + sum(r["score_10k_32_clients"]["errors"] for r in runs[mode]),
        }
        for mode in MODES
    }
    b, u = summary["batched"], summary["unbatched"]
    return {
        "model": which,
        "rounds": rounds,
        "load_1min": loads,
        "summary": summary,
        "ratios": {
            "predict_32_req_per_s": b["predict_32_req_per_s"] / u["predict_32_req_per_s"],
            "score_32_bytes_per_s": b["score_32_bytes_per_s"] / u["score_32_bytes_per_s"],
            "predict_1_client_p50": b["predict_1_client_p50_ms"] / u["predict_1_client_p50_ms"],
            "batched_p99_over_p50": b["predict_32_p99_ms"] / b["predict_32_p50_ms"],
            # unbatched / batched: how many times less server CPU a request costs with batching
            "predict_32_cpu_per_request_saving": (
                u["predict_32_server_cpu_ms"] / b["predict_32_server_cpu_ms"]
            ),
        },
        "runs": runs,
    }
