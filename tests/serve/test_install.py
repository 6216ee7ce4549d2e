"""The wheel as a user installs it, without Docker: built from a clean copy, installed with exactly
`pip install 'lnrnn-*.whl[serve,cpu]'` (the Docker image's install set) into a fresh venv, no torch, and every
serving command works from a directory outside the checkout without --model: the default model is inside."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from lnrnn.bpc import nats_to_bits
from lnrnn.serve.engine.runtime import Runtime
from tests.helpers import free_port, server

REPO = Path(__file__).resolve().parents[2]
SOURCES = ("pyproject.toml", "README.md", "lnrnn", "train", "export", "serve", "models")
TEXT = b"To be, or not to be, that is the question:\nWhether 'tis nobler in the mind to suffer\n"
WHEEL_LIMIT = 40 * 2**20  # the default model's four graphs are ~25 MB; a wheel far above it carries junk


def build_wheel(tmp_path: Path) -> Path:
    src = tmp_path / "src"  # a clean copy, so the build leaves nothing in the working tree
    src.mkdir()
    for name in SOURCES:
        path = REPO / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.png"))
        else:
            shutil.copy(path, src / name)
    dist = tmp_path / "dist"
    done = subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(dist), str(src)],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    (wheel,) = dist.glob("lnrnn-*.whl")
    return wheel


@pytest.mark.slow
def test_the_wheel_serves_compresses_and_scores_with_its_own_model(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path)
    assert wheel.stat().st_size < WHEEL_LIMIT
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=60)
    pip = [str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", "--no-compile"]
    done = subprocess.run(
        [*pip, f"{wheel}[serve,cpu]"], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]

    python, lnrnn = str(venv / "bin" / "python"), str(venv / "bin" / "lnrnn")
    probe = subprocess.run(
        [python, "-c", "import torch"], capture_output=True, text=True, timeout=30, check=False
    )
    assert probe.returncode != 0 and "No module named 'torch'" in probe.stderr

    elsewhere = tmp_path / "elsewhere"  # not the checkout: nothing named models/ around
    elsewhere.mkdir()
    (elsewhere / "text.txt").write_bytes(TEXT)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LNRNN_")}

    def run(*argv: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [lnrnn, *argv], cwd=elsewhere, env=env, capture_output=True, text=True, timeout=120, check=False
        )
        assert done.returncode == 0, f"lnrnn {' '.join(argv)}: {done.stderr}"
        return done

    expected = Runtime.load(REPO / "models" / "default").score(TEXT).nats  # the repository's model, here
    scored = json.loads(run("score", "text.txt", "--json").stdout)
    assert scored["bits"] == pytest.approx(nats_to_bits(expected), abs=1e-3)
    assert "site-packages" in scored["model"]
    best = run("predict", "To be, or not to b").stdout.splitlines()[0].split()
    assert best[0] == "'e'" and float(best[1]) > 0.5
    run("compress", "text.txt")
    run("decompress", "-o", "restored.txt", "text.txt.lnrz")
    assert (elsewhere / "restored.txt").read_bytes() == TEXT

    port = free_port()
    argv = [lnrnn, "serve", "--port", str(port), "--log-level", "warning"]
    with server(argv, port, env=env, cwd=elsewhere) as (url, _):
        assert httpx.get(f"{url}/health/ready").status_code == 200
        assert httpx.get(f"{url}/v1/models").json()["models"][0]["name"] == "default"
        body = httpx.post(f"{url}/v1/score", json={"text": TEXT.decode()}).json()
        assert body["bits"] == pytest.approx(scored["bits"], abs=1e-3)
