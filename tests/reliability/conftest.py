"""The reliability tests' clients on the session's tiny model: small limits, and the default ones."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from lnrnn.serve.app import create_app
from tests.helpers import TestClient, settings_for


@pytest.fixture(scope="module")
def client(model_dir: Path) -> Iterator[TestClient]:
    """Small limits, so they are cheap to hit."""
    settings = settings_for(model_dir, max_text_bytes=4000, max_generate_chars=300)
    with TestClient(create_app(settings)) as c:
        yield c


@pytest.fixture(scope="module")
def default_client(model_dir: Path) -> Iterator[TestClient]:
    """The default limits (1 MB text, ~6 MB body)."""
    with TestClient(create_app(settings_for(model_dir))) as c:
        yield c
