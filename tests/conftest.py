"""Fixtures for every test folder, and the `data` marker's check.

One tiny random model is exported once per session (``tiny``; its directory is ``model_dir``), and one with
its int8 pair (``int8_dir``); tests that need their own shapes build them with ``tests.helpers.tiny_model``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import SHARED_DATA, TinyModel, export_tiny, export_tiny_int8


@pytest.fixture(scope="session")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> TinyModel:
    return export_tiny(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(scope="session")
def model_dir(tiny: TinyModel) -> Path:
    return tiny.dir


@pytest.fixture(scope="session")
def int8_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny model with its int8 pair, exported once per session for the int8 serving tests."""
    return export_tiny_int8(tmp_path_factory.mktemp("tiny-int8"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked `data` read ../shared/data: without it they are skipped, saying so (CI has it)."""
    if SHARED_DATA.is_dir():
        return
    skip = pytest.mark.skip(reason=f"needs the shared corpora at {SHARED_DATA} (marker `data`)")
    for item in items:
        if "data" in item.keywords:
            item.add_marker(skip)
