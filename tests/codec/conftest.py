"""Fixtures for the codec tests: the session's tiny model as a step graph, and a second, different model."""

from __future__ import annotations

from pathlib import Path

import pytest

from lnrnn.codec import StepGraph
from lnrnn.export.api import export_model
from tests.helpers import VERIFY_DATA, tiny_model


@pytest.fixture(scope="session")
def graph(model_dir: Path) -> StepGraph:
    return StepGraph.load(model_dir, "fp32")


@pytest.fixture(scope="session")
def other_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Another random model: a container made with ``model_dir`` must not decode with it."""
    out = tmp_path_factory.mktemp("other-model")
    export_model(tiny_model(hidden=16), out, verify_data=VERIFY_DATA, train_data="another random init")
    return out
