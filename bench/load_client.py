"""HTTP load generator, run as its own process (never inside the server's): async httpx, N concurrent clients.

    python -m bench.load_client --url http://127.0.0.1:8000 --payloads P.json --concurrency 8 --duration 10

``P.json`` is a list of ``{"path": "/v1/predict", "body": {...}}``; clients take them round-robin. Stops
after ``--duration`` seconds or ``--requests`` requests (whichever is given); prints one JSON object:
requests, errors, req/s and latency percentiles (ms).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np


async def _run(
    url: str, payloads: list[dict[str, Any]], concurrency: int, duration: float | None, requests: int | None
) -> dict[str, Any]:
    counter = itertools.count()
    latencies: list[float] = []
    errors: list[str] = []
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=300.0) as client:
        for p in payloads[: min(len(payloads), concurrency)]:  # warm-up: connections, first-call paths
            await client.post(p["path"], json=p["body"])
        start = time.perf_counter()
        deadline = start + duration if duration else float("inf")

        async def worker() -> None:
            while time.perf_counter() < deadline:
                i = next(counter)
                if requests is not None and i >= requests:
                    return
                p = payloads[i % len(payloads)]
                t0 = time.perf_counter()
                try:
                    r = await client.post(p["path"], json=p["body"])
                    if r.status_code != 200:
                        errors.append(f"{r.status_code}: {r.text[:200]}")
                except httpx.HTTPError as err:
                    errors.append(f"{type(err).__name__}: {err}")
                latencies.append(time.perf_counter() - t0)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
    ms = np.array(latencies) * 1000 if latencies else np.zeros(1)
    return {
        "concurrency": concurrency,
        "requests": len(latencies),
        "errors": len(errors),
        "error_samples": sorted(set(errors))[:5],
        "seconds": elapsed,
        "req_per_s": len(latencies) / elapsed,
        "p50_ms": float(np.percentile(ms, 50)),
        "p95_ms": float(np.percentile(ms, 95)),
        "p99_ms": float(np.percentile(ms, 99)),
        "max_ms": float(ms.max()),
        "mean_ms": float(ms.mean()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--payloads", type=Path, required=True)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--duration", type=float, default=None, help="seconds")
    parser.add_argument("--requests", type=int, default=None, help="total requests")
    args = parser.parse_args()
    if args.duration is None and args.requests is None:
        parser.error("give --duration or --requests")
    payloads = json.loads(args.payloads.read_text(encoding="utf-8"))
    result = asyncio.run(_run(args.url, payloads, args.concurrency, args.duration, args.requests))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
