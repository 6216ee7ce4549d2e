"""Broken model directories: `lnrnn serve` exits 2 with one line naming the problem; an app started anyway
(create_app / uvicorn --factory) stays live, and /health/ready answers 503 with the same message."""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import onnx
import pytest

from lnrnn.cli import main
from lnrnn.contract import META_CONFIG, META_INITIAL_STATE
from lnrnn.serve.app import create_app
from lnrnn.serve.engine.runtime import ModelLoadError, Runtime
from tests.helpers import TestClient, error, free_port, server, settings_for


def _edit_metadata(path: Path, edit: Callable[[dict[str, str]], None]) -> None:
    model = onnx.load(str(path))
    props = {p.key: p.value for p in model.metadata_props}
    edit(props)
    del model.metadata_props[:]
    onnx.helper.set_model_props(model, props)
    onnx.save(model, str(path))


def missing(d: Path) -> None:
    shutil.rmtree(d)


def truncated(d: Path) -> None:
    data = (d / "step.onnx").read_bytes()
    (d / "step.onnx").write_bytes(data[: len(data) // 2])


def no_metadata(d: Path) -> None:
    _edit_metadata(d / "step.onnx", lambda props: props.clear())


def wrong_hidden(d: Path) -> None:
    """Metadata says hidden 64 (and a matching initial state) while the graph's state is 32 wide."""

    def edit(props: dict[str, str]) -> None:
        cfg = json.loads(props[META_CONFIG])
        cfg["hidden"] = cfg["embedding"] = 64
        props[META_CONFIG] = json.dumps(cfg)
        props[META_INITIAL_STATE] = json.dumps([[0.0] * 64] * cfg["layers"])

    _edit_metadata(d / "step.onnx", edit)


def wrong_layers(d: Path) -> None:
    def edit(props: dict[str, str]) -> None:
        cfg = json.loads(props[META_CONFIG])
        state = json.loads(props[META_INITIAL_STATE])
        cfg["layers"] = 3
        props[META_CONFIG] = json.dumps(cfg)
        props[META_INITIAL_STATE] = json.dumps([state[0]] * 3)

    _edit_metadata(d / "step.onnx", edit)


def no_sequence(d: Path) -> None:
    (d / "sequence.onnx").unlink()


BROKEN = {
    "missing dir": (missing, "does not exist"),
    "truncated onnx": (truncated, "cannot load"),
    "no metadata": (no_metadata, "metadata is missing lnrnn.config"),
    "hidden 64 vs graph 32": (wrong_hidden, "does not match the graph"),
    "layers 3 vs graph 2": (wrong_layers, "does not match the graph"),
    "no sequence.onnx": (no_sequence, "sequence.onnx does not exist"),
}


@pytest.fixture(params=list(BROKEN))
def broken(request: pytest.FixtureRequest, model_dir: Path, tmp_path: Path) -> tuple[Path, str]:
    breaker, fragment = BROKEN[request.param]
    target = tmp_path / "model"
    shutil.copytree(model_dir, target)
    breaker(target)
    return target, fragment


def test_runtime_names_the_problem(broken: tuple[Path, str]) -> None:
    path, fragment = broken
    with pytest.raises(ModelLoadError, match=fragment):
        Runtime.load(path)


def test_serve_exits_2_with_one_line(broken: tuple[Path, str], capsys: pytest.CaptureFixture[str]) -> None:
    path, fragment = broken
    assert main(["serve", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.strip().splitlines()) == 1
    assert err.startswith("lnrnn serve: error: ") and fragment in err


def test_app_started_anyway_is_live_not_ready(broken: tuple[Path, str]) -> None:
    path, fragment = broken
    with TestClient(create_app(settings_for(path))) as c:
        assert c.get("/health/live").status_code == 200
        assert fragment in error(c.get("/health/ready"), 503, "model_not_ready")
        assert fragment in error(c.post("/v1/score", json={"text": "a"}), 503, "model_not_ready")


def test_device_cuda_without_cuda(model_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", str(model_dir), "--device", "cuda"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "--device cuda" in err
    with TestClient(create_app(settings_for(model_dir, device="cuda"))) as c:
        assert "--device cuda" in error(c.get("/health/ready"), 503, "model_not_ready")


@pytest.mark.slow
def test_uvicorn_factory_with_a_truncated_model(model_dir: Path, tmp_path: Path) -> None:
    shutil.copytree(model_dir, tmp_path / "m")
    truncated(tmp_path / "m")
    port = free_port()
    env = {**os.environ, "LNRNN_MODEL_DIR": str(tmp_path / "m")}
    argv = [sys.executable, "-m", "uvicorn", "--factory", "lnrnn.serve.app:create_app", "--port", str(port)]
    with server([*argv, "--log-level", "critical"], port, env=env) as (url, _):
        message = error(httpx.get(f"{url}/health/ready"), 503, "model_not_ready")
        assert "cannot load" in message and "step.onnx" in message
