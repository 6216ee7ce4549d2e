"""Real `lnrnn serve` processes: sustained concurrent load, and a graceful SIGTERM mid-request."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.helpers import free_port, rss_kib, server, wait_live

pytestmark = pytest.mark.slow

CLIENTS = 16
SECONDS = 10.0


def test_sixteen_clients_for_ten_seconds(model_dir: Path) -> None:
    port = free_port()
    argv = [sys.executable, "-m", "lnrnn", "serve", str(model_dir), "--port", str(port)]
    argv += ["--log-level", "warning"]
    with server(argv, port) as (url, proc):
        jobs = [
            ("/v1/score", {"text": "load test, ünïcödé 日本語 " * 8}),
            ("/v1/score", {"texts": ["one", "two", "three"], "per_char": True}),
            ("/v1/predict", {"text": "The quick brown f", "top_k": 5}),
            ("/v1/generate", {"prompt": "Once", "max_chars": 20, "seed": 3}),
            ("/v1/score", {"text": ""}),  # a 422 is a correct answer, not an error
        ]
        with httpx.Client(base_url=url, timeout=30) as warm:
            for path, body in jobs:
                warm.post(path, json=body)
        rss_before = rss_kib(proc.pid)
        stop = time.monotonic() + SECONDS
        statuses: dict[int, int] = {}
        failures: list[str] = []
        lock = threading.Lock()

        def client(i: int) -> None:
            with httpx.Client(base_url=url, timeout=30) as http:
                n = i
                while time.monotonic() < stop:
                    path, body = jobs[n % len(jobs)]
                    n += 1
                    try:
                        status = http.post(path, json=body).status_code
                    except httpx.HTTPError as err:
                        with lock:
                            failures.append(f"{path}: {type(err).__name__}: {err}")
                        continue
                    with lock:
                        statuses[status] = statuses.get(status, 0) + 1

        with ThreadPoolExecutor(CLIENTS) as pool:
            list(pool.map(client, range(CLIENTS)))
        rss_after = rss_kib(proc.pid)
        growth = (rss_after - rss_before) / rss_before
        total = sum(statuses.values())
        print(
            f"\nload: {CLIENTS} clients x {SECONDS:.0f} s: {total} requests ({total / SECONDS:.0f}/s), "
            f"statuses {statuses}, RSS {rss_before / 1024:.1f} -> {rss_after / 1024:.1f} MiB ({growth:+.1%})"
        )
        assert not failures, failures[:5]
        assert set(statuses) == {200, 422}, statuses  # nothing else: no 5xx, no 503 overloaded
        assert statuses[200] > 0
        assert growth <= 0.5, f"RSS grew {growth:.0%}"


SLOW_SERVER = """
import sys, time
from pathlib import Path
from lnrnn.serve.engine.runtime import Runtime
marker = Path(sys.argv[1])
score = Runtime.score
def slow_score(self, data, **kw):
    marker.write_text("started")
    time.sleep(3.0)
    return score(self, data, **kw)
Runtime.score = slow_score
from lnrnn.cli import main
sys.exit(main(sys.argv[2:]))
"""


def test_sigterm_finishes_the_request_then_exits_0(model_dir: Path, tmp_path: Path) -> None:
    port, marker = free_port(), tmp_path / "started"
    argv = [sys.executable, "-c", SLOW_SERVER, str(marker), "serve", str(model_dir), "--port", str(port)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_live(url, proc)
        with ThreadPoolExecutor(1) as pool:
            pending = pool.submit(httpx.post, f"{url}/v1/score", json={"text": "in flight"}, timeout=30)
            deadline = time.monotonic() + 10
            while not marker.exists():
                assert time.monotonic() < deadline, "the slow request never started"
                time.sleep(0.02)
            proc.send_signal(signal.SIGTERM)
            time.sleep(0.5)
            with pytest.raises(httpx.TransportError):  # no new connections while draining
                httpx.get(f"{url}/health/live", timeout=2)
            response = pending.result(timeout=30)
        assert response.status_code == 200 and response.json()["bytes"] == len("in flight")
        out, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0, out
        assert "Traceback" not in out
        startup = (
            f"lnrnn: serving {model_dir} (gru 2x32, fp32, CPUExecutionProvider) on http://127.0.0.1:{port}"
            "; batching up to 32 streams per call"
        )
        assert startup in out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
