"""The serve tests' client (the session's tiny model with small limits, so the limits are cheap to hit) and
the browser the page tests drive."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from lnrnn.serve.app import create_app
from tests.helpers import TestClient, settings_for


@pytest.fixture(scope="module")
def client(model_dir: Path) -> Iterator[TestClient]:
    settings = settings_for(
        model_dir, chunk_tokens=16, max_text_bytes=4000, max_batch=4, max_generate_chars=300
    )
    with TestClient(create_app(settings)) as c:
        yield c


CHROMIUM = Path(os.environ.get("LNRNN_TEST_CHROMIUM", "/usr/bin/chromium"))


@pytest.fixture(scope="session")
def chromium() -> Path:
    """Debian's chromium; installed here when missing (as `make install` does) so the tests never skip."""
    if not CHROMIUM.exists():
        if shutil.which("apt-get") is None or os.geteuid() != 0:
            pytest.fail(f"{CHROMIUM} is missing: `apt-get install chromium` (or set LNRNN_TEST_CHROMIUM)")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-q"], check=True, env=env)
        subprocess.run(["apt-get", "install", "-y", "-q", "chromium"], check=True, env=env)
    return CHROMIUM
