"""Precision: auto = the int8 files on CPU when the export kept them (recorded delta <= bound), else fp32."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import onnx
import pytest

from lnrnn.cli import main
from lnrnn.contract import INT8_MAX_BPC_DELTA, META_INT8_BPC_DELTA, STEP_INT8_FILE
from lnrnn.serve.app import create_app
from lnrnn.serve.engine.runtime import ModelLoadError, Runtime
from tests.helpers import TestClient, settings_for

TEXT = "precision: héllo wörld, 日本語 ".encode() * 4


def test_auto_takes_int8_on_cpu_and_fp32_scores_differ(int8_dir: Path) -> None:
    auto = Runtime.load(int8_dir, device="cpu", precision="auto")
    fp32 = Runtime.load(int8_dir, device="cpu", precision="fp32")
    int8 = Runtime.load(int8_dir, device="cpu", precision="int8")
    assert (auto.precision, fp32.precision, int8.precision) == ("int8", "fp32", "int8")
    delta = auto.meta.int8_bpc_delta
    assert delta is not None and delta <= INT8_MAX_BPC_DELTA  # kept: worse by at most the bound
    assert fp32.meta.int8_bpc_delta is None  # only the int8 files carry it
    nats = {name: rt.score(TEXT).nats for name, rt in (("auto", auto), ("fp32", fp32), ("int8", int8))}
    assert nats["auto"] == nats["int8"] != nats["fp32"]  # really different graphs
    assert abs(nats["auto"] - nats["fp32"]) / len(TEXT) < 0.05  # and close to each other


def test_auto_is_fp32_without_int8_files_and_int8_then_fails(tmp_path: Path, int8_dir: Path) -> None:
    plain = tmp_path / "plain"
    shutil.copytree(int8_dir, plain, ignore=shutil.ignore_patterns("*.int8.onnx"))
    assert Runtime.load(plain, device="cpu").precision == "fp32"
    with pytest.raises(ModelLoadError, match="no step.int8.onnx .*--quantize int8"):
        Runtime.load(plain, device="cpu", precision="int8")
    with pytest.raises(ModelLoadError, match="precision must be one of"):
        Runtime.load(plain, precision="fp16")


@pytest.mark.parametrize("recorded", ["0.5", None])
def test_auto_refuses_int8_files_without_an_acceptable_delta(
    tmp_path: Path, int8_dir: Path, recorded: str | None
) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(int8_dir, copy)
    step = onnx.load(str(copy / STEP_INT8_FILE))
    props = [p for p in step.metadata_props if p.key != META_INT8_BPC_DELTA]
    del step.metadata_props[:]
    step.metadata_props.extend(props)
    if recorded is not None:
        onnx.helper.set_model_props(step, {**{p.key: p.value for p in props}, META_INT8_BPC_DELTA: recorded})
    onnx.save(step, str(copy / STEP_INT8_FILE))
    assert Runtime.load(copy, device="cpu").precision == "fp32"
    assert Runtime.load(copy, device="cpu", precision="int8").precision == "int8"  # asked for: honoured


def test_api_reports_the_precision(int8_dir: Path) -> None:
    for precision, want in (("auto", "int8"), ("fp32", "fp32")):
        with TestClient(create_app(settings_for(int8_dir, precision=precision))) as client:
            info = client.get("/v1/models").json()["models"][0]
            assert info["precision"] == want and info["int8"] is (want == "int8")
            assert (info["int8_bpc_delta"] is None) is (want == "fp32")
            assert f'precision="{want}"' in client.get("/metrics").text
            scored = client.post("/v1/score", json={"text": TEXT.decode()}).json()
            expected = Runtime.load(int8_dir, device="cpu", precision=want).score(TEXT).nats
            assert scored["bits"] == pytest.approx(expected / 0.6931471805599453, abs=1e-6)


def test_cli_precision_flag_and_env(
    int8_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "t.txt"
    path.write_bytes(TEXT)
    assert main(["score", str(path), "--model", str(int8_dir), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["precision"] == "int8"
    assert main(["score", str(path), "--model", str(int8_dir), "--precision", "fp32"]) == 0
    assert "(gru 2x48, fp32, CPUExecutionProvider)" in capsys.readouterr().out
    monkeypatch.setenv("LNRNN_PRECISION", "fp16")
    assert main(["score", str(path), "--model", str(int8_dir)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "precision" in err and "LNRNN_PRECISION" in err


def test_retired_lnrnn_int8_is_refused_not_ignored(
    int8_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "t.txt"
    path.write_bytes(TEXT)
    monkeypatch.setenv("LNRNN_INT8", "0")
    assert main(["score", str(path), "--model", str(int8_dir)]) == 2
    err = capsys.readouterr().err.strip()
    retired = "LNRNN_INT8 was replaced by LNRNN_PRECISION=auto|fp32|int8: unset LNRNN_INT8"
    assert err == f"lnrnn score: error: bad setting: {retired}"


def test_predictions_do_not_depend_on_the_cache(int8_dir: Path) -> None:
    """A partial cache hit continues a cached prefix: in int8 too (row-wise activation scales) it gives the
    numbers of a fresh run, so an answer never depends on what was asked before."""
    text = TEXT[:60]
    for precision in ("int8", "fp32"):
        runtime = Runtime.load(int8_dir, device="cpu", precision=precision)
        lookups: list[str] = []
        runtime.cache.on_lookup = lookups.append
        for cut in (1, 5, 16):
            runtime.context(text[:-cut])  # cached prefix, `cut` bytes short of the request
            cached, _ = runtime.context(text)
            fresh, _ = runtime.context(text, cache=False)
            assert abs(cached.astype(float) - fresh).max() <= 1e-4, (precision, cut)
            runtime.cache.clear()
        assert lookups == ["miss", "partial"] * 3, precision  # the prefix really was continued
