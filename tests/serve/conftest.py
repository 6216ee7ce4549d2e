"""Fixtures for the serve tests: a tiny random model exported once per session (tests may use torch)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from serve_testlib import VERIFY_DATA, TestClient, TinyModel, settings_for

from lnrnn.export.api import export_model
from lnrnn.serve.app import create_app
from lnrnn.train.model import ByteLM, ModelConfig


@pytest.fixture(scope="session")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> TinyModel:
    torch.manual_seed(0)
    model = ByteLM(ModelConfig(cell="gru", hidden=32, layers=2))
    with torch.no_grad():
        model.initial_state.normal_(0.0, 0.3)  # a non-zero initial state, so using it is tested
    out = tmp_path_factory.mktemp("tiny-model")
    export_model(model, out, verify_data=VERIFY_DATA, train_data="random init (tests)")
    return TinyModel(out, model.eval())


@pytest.fixture(scope="session")
def model_dir(tiny: TinyModel) -> Path:
    return tiny.dir


@pytest.fixture(scope="module")
def client(model_dir: Path) -> Iterator[TestClient]:
    """A client on the tiny model with small limits, so the limits are cheap to hit."""
    settings = settings_for(
        model_dir, chunk_tokens=16, max_text_bytes=4000, max_batch=4, max_generate_chars=300
    )
    with TestClient(create_app(settings)) as c:
        yield c
