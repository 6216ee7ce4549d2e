"""Fixtures for every test folder, and the `data` marker's check.

One tiny random model is exported once per session (``tiny``; its directory is ``model_dir``); tests that
need their own shapes build them with ``tests.helpers.tiny_model``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import SHARED_DATA, TinyModel, export_tiny


@pytest.fixture(scope="session")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> TinyModel:
    return export_tiny(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(scope="session")
def model_dir(tiny: TinyModel) -> Path:
    return tiny.dir


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked `data` read ../shared/data: without it they are skipped, saying so (CI has it)."""
    if SHARED_DATA.is_dir():
        return
    skip = pytest.mark.skip(reason=f"needs the shared corpora at {SHARED_DATA} (marker `data`)")
    for item in items:
        if "data" in item.keywords:
            item.add_marker(skip)
