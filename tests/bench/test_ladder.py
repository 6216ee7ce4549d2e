"""bench/ladder.py on two tiny random models: every present precision gets a row, its numbers are what the
scorer, the codec and the compressors give, and the table and plot are drawn from them."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import pytest
import torch

from bench import classic_compressors, ladder
from lnrnn.bpc import bits_per_byte
from lnrnn.codec import StepGraph, information
from lnrnn.export.api import export_model
from lnrnn.serve.engine.runtime import Runtime
from lnrnn.train.model import ByteLM, ModelConfig
from lnrnn.train.recipes.corpora import VALIDATION_SPLITS
from tests.helpers.models import VERIFY_DATA, tiny_model

pytestmark = pytest.mark.data  # the quick run reads the first shared validation split


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``default`` (2x64 GRU with int8, int8w and int4) and ``ladder-256k`` (1x32 GRU, fp32 only)."""
    root = tmp_path_factory.mktemp("models")
    report = export_model(
        tiny_model("gru", "layer", 2, hidden=64),
        root / "default",
        quantize="int8,int8w,int4",
        verify_data=VERIFY_DATA,
    )
    assert report.int8 is not None and report.int8["kept"] and report.int4 is not None
    assert report.int8w is not None and report.int8w["kept"]
    torch.manual_seed(3)
    export_model(
        ByteLM(ModelConfig(cell="gru", hidden=32, layers=1)), root / "ladder-256k", verify_data=VERIFY_DATA
    )
    return root


def test_rows_are_the_scorer_codec_and_compressors_numbers(models_dir: Path, tmp_path: Path) -> None:
    if not VALIDATION_SPLITS[0].path.is_file():
        pytest.skip(f"{VALIDATION_SPLITS[0].path} is absent")
    res = ladder.measure(quick=True, log=lambda _: None, models_dir=models_dir)
    assert [(r["model"], r["precision"]) for r in res["rows"]] == [
        ("default", "fp32"),
        ("default", "int8"),
        ("default", "int4"),
        ("ladder-256k", "fp32"),
    ]
    name = VALIDATION_SPLITS[0].name
    data = VALIDATION_SPLITS[0].read(ladder.QUICK_BYTES)
    assert res["splits"] == {name: len(data)}
    classic = classic_compressors.measure(data)
    assert res["baselines"][name] == {b: classic[b]["bits_per_byte"] for b in ladder.BASELINES}
    for row in res["rows"]:
        directory, precision = models_dir / row["model"], row["precision"]
        runtime = Runtime.load(directory, device="cpu", precision=precision)
        assert row["alone"][name] == pytest.approx(
            bits_per_byte(runtime.score(data).nats, len(data)), abs=1e-9
        )
        graph = StepGraph.load(directory, precision)
        assert row["adaptive"][name] == pytest.approx(
            bits_per_byte(information(data, graph), len(data)), abs=1e-9
        )
        files = [directory / f for f in ladder.PRECISION_FILES[precision]]
        assert row["bytes"] == sum(f.stat().st_size for f in files)
        gz = sum(len(gzip.compress(f.read_bytes(), compresslevel=9, mtime=0)) for f in files)
        assert row["gzip_bytes"] == gz < row["bytes"]
        assert row["parameters"] == runtime.meta.config.parameters
        assert row["step_us_per_char"] > 0 and row["sequence_us_per_char"] > 0
    default = {r["precision"]: r for r in res["rows"] if r["model"] == "default"}
    assert default["int4"]["bytes"] < default["int8"]["bytes"] < default["fp32"]["bytes"]

    # the int4 goals compare int4 with fp32 on every split; the tiny model's step graph is far below 1.5 MB
    delta = default["int4"]["alone"][name] - default["fp32"]["alone"][name]
    int4_goals = {g["goal"]: g for g in ladder.goals(res) if g["model"] == "default"}
    assert len(int4_goals) == 2
    within = next(g for k, g in int4_goals.items() if "over fp32" in k)
    assert within["measured"] == f"worst split {delta:+.4f} bits/byte"
    assert within["met"] == (delta <= ladder.INT4_MAX_DELTA)
    small = next(g for k, g in int4_goals.items() if "step graph" in k)
    step_int4 = models_dir / "default" / "step.int4.onnx"
    assert small["met"] and default["int4"]["step_bytes"] == step_int4.stat().st_size
    assert not [g for g in ladder.goals(res) if g["model"] == "ladder-256k"]  # it ships no int8 pair here

    lines = ladder.render({"ladder": res})
    text = "\n".join(lines)
    assert f"| default (gru 2x64) | int4 | {default['int4']['parameters']:,} |" in text
    assert f"| PPMd o6 | {res['baselines'][name]['PPMd o6']:.3f} |" in text
    # the browser: only models with the page's int8w pair, through the page's own measures
    assert list(res["browser"]) == ["default"]
    seen = res["browser"]["default"]
    assert seen["precision"] == "int8w" and seen["score_us_per_char"] > 0 and seen["keystroke_ms_p50"] > 0
    assert seen["scored_chars"] == 512 and seen["typed_chars"] == 10
    assert f"| default | int8w | {seen['score_us_per_char']:.1f} |" in text
    ladder.plot({"ladder": res}, tmp_path / "ladder.png")
    assert (tmp_path / "ladder.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_only_complete_pairs_are_shipped(models_dir: Path, tmp_path: Path) -> None:
    shutil.copytree(models_dir / "default", tmp_path / "default")
    (tmp_path / "default" / "sequence.int4.onnx").unlink()  # a step graph alone is no int4 model
    assert [(n, p) for n, _, p in ladder.shipped(tmp_path)] == [("default", "fp32"), ("default", "int8")]
