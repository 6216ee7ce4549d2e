"""Fixtures for the reliability tests: one tiny random model directory per session (tests may use torch)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from reliability_testlib import VERIFY_DATA, TestClient, settings_for

from lnrnn.export.api import export_model
from lnrnn.serve.app import create_app
from lnrnn.train.model import ByteLM, ModelConfig


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    model = ByteLM(ModelConfig(cell="gru", hidden=32, layers=2))
    out = tmp_path_factory.mktemp("reliability-model")
    export_model(model, out, verify_data=VERIFY_DATA, train_data="random init (reliability tests)")
    return out


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
