"""The Docker image's install set, without Docker: a fresh venv with exactly `pip install '.[serve,cpu]'`."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.helpers import TinyModel, free_port, serve_argv, server

REPO = Path(__file__).resolve().parents[2]
SOURCES = ("pyproject.toml", "README.md", "lnrnn", "train", "export", "serve")


@pytest.mark.slow
def test_serving_install_runs_without_torch(tiny: TinyModel, tmp_path: Path) -> None:
    src = tmp_path / "src"  # a clean copy, so the build leaves nothing in the working tree
    src.mkdir()
    for name in SOURCES:
        path = REPO / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        elif path.exists():
            shutil.copy(path, src / name)
    if not (src / "README.md").exists():  # pyproject names it; the real tree will have one
        (src / "README.md").write_text("lnrnn\n")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=60)
    pip = [str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", "--no-compile"]
    done = subprocess.run(
        [*pip, f"{src}[serve,cpu]"], capture_output=True, text=True, timeout=240, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]

    python = str(venv / "bin" / "python")
    probe = subprocess.run(
        [python, "-c", "import torch"], capture_output=True, text=True, timeout=30, check=False
    )
    assert probe.returncode != 0 and "No module named 'torch'" in probe.stderr

    port = free_port()
    argv = serve_argv(tiny.dir, port, [str(venv / "bin" / "lnrnn")])
    with server(argv, port) as (url, _):
        assert httpx.get(f"{url}/health/ready").status_code == 200
        body = httpx.post(f"{url}/v1/score", json={"text": "installed"}).json()
        assert body["bits"] == pytest.approx(tiny.bits(b"installed"), abs=1e-3)
