"""Helpers for the reliability tests (a uniquely named module: every test folder has its own conftest)."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from starlette.exceptions import StarletteDeprecationWarning

with warnings.catch_warnings():  # starlette 1.10 prefers httpx2; this is the only warning silenced
    warnings.filterwarnings(
        "ignore", "Using `httpx` with `starlette.testclient`", StarletteDeprecationWarning
    )
    from fastapi.testclient import TestClient  # noqa: F401  (re-exported for the tests)

from lnrnn.serve.config import Settings

REPO = Path(__file__).resolve().parents[2]
VERIFY_DATA = "verify: héllo wörld, 日本語 ok ".encode() * 3


def settings_for(model_dir: Path | str, **kw: Any) -> Settings:
    return Settings(model_dir=Path(model_dir), **kw)


def error(response: httpx.Response, status: int, code: str | None = None) -> str:
    """Assert the error envelope ``{"error": {"code", "message"}}`` and return the message."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    if code is not None:
        assert body["error"]["code"] == code, body
    return body["error"]["message"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_live(url: str, proc: subprocess.Popen, timeout: float = 40.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            out = proc.stdout.read() if proc.stdout else ""
            raise AssertionError(f"server exited with {proc.returncode}: {out}")
        try:
            if httpx.get(f"{url}/health/live", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError("server did not start in time")
        time.sleep(0.1)


@contextlib.contextmanager
def server(argv: list[str], port: int, env: dict[str, str] | None = None) -> Iterator[tuple[str, Any]]:
    """A real server process; yields (base URL, Popen) and stops it (SIGTERM, then SIGKILL) at the end."""
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_live(url, proc)
        yield url, proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def rss_kib(pid: int) -> int:
    """Resident set size of a process, from /proc (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for pid {pid}")
