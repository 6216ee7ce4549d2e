"""The serve tests' client: the session's tiny model with small limits, so the limits are cheap to hit."""

from __future__ import annotations

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
