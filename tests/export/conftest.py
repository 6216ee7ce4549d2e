"""Shared fixtures for the export tests."""

from __future__ import annotations

import pytest

from tests.helpers import verify_text_for


@pytest.fixture(scope="session")
def verify_text() -> bytes:
    return verify_text_for("gru")
