"""Real server processes for tests: a free loopback port, start, wait until live, stop; RSS."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import httpx


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve_argv(
    model_dir: Path, port: int, lnrnn: Sequence[str] = (sys.executable, "-m", "lnrnn")
) -> list[str]:
    """The command line of `lnrnn serve MODEL_DIR` on ``port`` (quiet log); ``lnrnn`` = how to run it."""
    return [*lnrnn, "serve", str(model_dir), "--port", str(port), "--log-level", "warning"]


def wait_live(url: str, proc: subprocess.Popen, timeout: float = 40.0) -> None:  # type: ignore[type-arg]
    """Poll ``/health/live`` until 200; fail with the server's output if it exits or takes too long."""
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
def server(
    argv: list[str], port: int, env: dict[str, str] | None = None, cwd: Path | None = None
) -> Iterator[tuple[str, subprocess.Popen]]:  # type: ignore[type-arg]
    """A real server process; yields (base URL, Popen) and stops it (SIGTERM, then SIGKILL) at the end."""
    proc = subprocess.Popen(
        argv, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
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
        if proc.stdout is not None:
            proc.stdout.close()


def rss_kib(pid: int) -> int:
    """Resident set size of a process, from /proc (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for pid {pid}")
