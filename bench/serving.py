"""`lnrnn serve` as a real process: cold start, latency at 1 client, req/s at N clients, RSS, a load run.

The load generator is ``bench.load_client`` in a separate process; it shares the machine's cores with the
server (2 cores here), so req/s at high concurrency is a lower bound for a dedicated client machine.
Predict contexts are distinct 200-byte windows of the text (more of them than the server's prefix cache
holds), so every request really runs the model.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import onnxruntime as ort

from bench.common import REPO
from lnrnn.contract import STEP_FILE, ArtifactMetadata

DEFAULT_MODEL = REPO / "models" / "default"


def model_dir(tmp: Path) -> tuple[Path, str]:
    """models/default if it holds a model, else a random 1-layer H=256 LN-GRU exported into ``tmp``."""
    if (DEFAULT_MODEL / STEP_FILE).is_file():
        return DEFAULT_MODEL, "models/default"
    import torch

    from lnrnn.export.api import export_model
    from lnrnn.train.model import ByteLM, ModelConfig

    torch.manual_seed(0)
    model = ByteLM(ModelConfig(cell="gru", norm="layer", layers=1, hidden=256))
    out = tmp / "serve-model"
    export_model(model, out, train_data="random weights (bench)")
    return out, "random 1-layer LN-GRU H=256 (models/default is missing)"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_argv(model: Path, port: int) -> list[str]:
    script = Path(sys.executable).parent / "lnrnn"
    base = [str(script)] if script.exists() else [sys.executable, "-m", "lnrnn"]
    return [*base, "serve", str(model), "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]


def rss_mib(pid: int) -> dict[str, float]:
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) / 1024
    return {"rss_mib": values.get("VmRSS", 0.0), "peak_rss_mib": values.get("VmHWM", 0.0)}


def model_config(model: Path) -> dict[str, Any]:
    """The served model's shape, from its step graph's lnrnn metadata (for the compute bound)."""
    session = ort.InferenceSession(str(model / STEP_FILE), providers=["CPUExecutionProvider"])
    config = ArtifactMetadata.from_props(session.get_modelmeta().custom_metadata_map).config
    return {k: getattr(config, k) for k in ("cell", "layers", "hidden", "embedding", "parameters")}


@contextlib.contextmanager
def running_server(
    model: Path, log_path: Path, timeout: float = 60.0, env: dict[str, str] | None = None
) -> Iterator[tuple[str, int, float]]:
    """Start the server (``env``: extra LNRNN_* settings); yield (base URL, pid, seconds from spawn to
    /health/ready == 200); stop it."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with open(log_path, "ab") as log:
        start = time.perf_counter()
        proc = subprocess.Popen(
            server_argv(model, port),
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            env={**os.environ, **(env or {})},
        )
    try:
        with httpx.Client(timeout=1.0) as client:
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(
                        f"server exited with {proc.returncode}: {log_path.read_text()[-2000:]}"
                    )
                try:
                    if client.get(f"{url}/health/ready").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.perf_counter() - start > timeout:
                    raise RuntimeError("server not ready in time")
                time.sleep(0.005)
        yield url, proc.pid, time.perf_counter() - start
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def load(
    url: str, payloads: list[dict[str, Any]], tmp: Path, concurrency: int, **stop: float
) -> dict[str, Any]:
    """Run ``bench.load_client`` as a separate process; ``stop`` is duration=... or requests=..."""
    path = tmp / f"payloads-{os.getpid()}-{time.monotonic_ns()}.json"
    path.write_text(json.dumps(payloads), encoding="utf-8")
    argv = [sys.executable, "-m", "bench.load_client", "--url", url, "--payloads", str(path)]
    argv += ["--concurrency", str(concurrency)] + [f"--{k}={v}" for k, v in stop.items()]
    out = subprocess.run(argv, capture_output=True, text=True, check=True, cwd=REPO)
    path.unlink()
    return json.loads(out.stdout.strip().splitlines()[-1])


def payloads(text: bytes) -> dict[str, list[dict[str, Any]]]:
    """Distinct 200-byte predict contexts, 1 kB and 100 kB score texts, and a predict/score mix."""
    chars = text.decode("ascii", errors="replace")
    predict = [
        {"path": "/v1/predict", "body": {"text": chars[i : i + 200], "top_k": 5, "temperature": 1.0}}
        for i in range(0, len(chars) - 200, 200)
    ]
    score_1k = [{"path": "/v1/score", "body": {"text": chars[i : i + 1000]}} for i in range(0, 100_000, 1000)]
    score_100k = [{"path": "/v1/score", "body": {"text": chars[:100_000]}}]
    mixed = [p for pair in zip(predict, score_1k * 6, strict=False) for p in pair]
    return {"predict": predict, "score_1k": score_1k, "score_100k": score_100k, "mixed": mixed}


def measure(text: bytes, quick: bool, log: Any = print) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="lnrnn-bench-serve-") as tmp_name:
        tmp = Path(tmp_name)
        model, which = model_dir(tmp)
        bodies = payloads(text)
        server_log = tmp / "server.log"
        colds = []
        for _ in range(3 if quick else 5):
            with running_server(model, server_log) as (_, _, seconds):
                colds.append(seconds)
        log(f"  cold start: median {statistics.median(colds):.2f} s of {len(colds)}")
        with running_server(model, server_log) as (url, pid, _):
            rss_before = rss_mib(pid)
            latency = {
                "predict_200": load(url, bodies["predict"], tmp, 1, requests=100 if quick else 500),
                "predict_200_cached": load(
                    url, bodies["predict"][:1], tmp, 1, requests=100 if quick else 500
                ),
                "score_1k": load(url, bodies["score_1k"], tmp, 1, requests=30 if quick else 200),
                "score_100k": load(url, bodies["score_100k"], tmp, 1, requests=2 if quick else 10),
            }
            for name, r in latency.items():
                log(
                    f"  latency {name}: p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms "
                    f"({r['requests']} req)"
                )
            throughput = {}
            for n in (1, 8, 32):
                throughput[str(n)] = load(url, bodies["predict"], tmp, n, duration=3 if quick else 10)
                log(f"  predict at {n} clients: {throughput[str(n)]['req_per_s']:.0f} req/s")
            rss_after = rss_mib(pid)
        with running_server(model, server_log) as (url, pid, _):
            clients, seconds = (8, 5) if quick else (64, 60)
            at_ready = rss_mib(pid)
            load(url, bodies["mixed"], tmp, clients, duration=1 if quick else 5)  # warm-up: pools, arenas
            before = rss_mib(pid)
            run = load(url, bodies["mixed"], tmp, clients, duration=seconds)
            after = rss_mib(pid)
            growth = 100 * (after["rss_mib"] - before["rss_mib"]) / before["rss_mib"]
            load_row = {
                **run,
                "clients": clients,
                "duration_s": seconds,
                "rss_at_ready": at_ready,
                "rss_before": before,
                "rss_after": after,
                "rss_growth_pct": growth,
                "payload": "alternating /v1/predict (200 B) and /v1/score (1 kB)",
            }
            log(
                f"  load {clients} clients {seconds} s: {run['req_per_s']:.0f} req/s, {run['errors']} "
                "errors, "
                f"p99 {run['p99_ms']:.0f} ms, RSS {growth:+.1f}%"
            )
    return {
        "model": which,
        "model_config": model_config(model),
        "server": " ".join(server_argv(Path("MODEL"), 0)[1:]).replace("--port 0", "--port FREE"),
        "server_threads": "lnrnn serve default (--threads 1)",
        "cold_start_s": {
            "median_s": statistics.median(colds),
            "min_s": min(colds),
            "max_s": max(colds),
            "runs": len(colds),
        },
        "latency_1_client": latency,
        "predict_throughput": throughput,
        "rss_before": rss_before,
        "rss_after": rss_after,
        "load": load_row,
    }
