"""`lnrnn score|predict|generate|serve` in-process, and the torch-free import rule in a subprocess."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from lnrnn.cli import main
from tests.helpers import TinyModel


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_score_file_json_and_table(
    tiny: TinyModel, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = ("score me, please: ünïcödé " * 20).encode()
    path = tmp_path / "t.txt"
    path.write_bytes(data)
    code, out, _ = run(capsys, "score", str(path), "--model", str(tiny.dir), "--json")
    result = json.loads(out)
    assert code == 0 and result["bytes"] == len(data)
    assert result["bits"] == pytest.approx(tiny.bits(data), abs=1e-3)
    assert result["bpc"] == pytest.approx(result["bits"] / len(data))
    assert set(result["compressors"]) == {"gzip -9", "bzip2 -9", "xz -9e"}
    assert all(c["bpc"] > 0 for c in result["compressors"].values())
    code, out, _ = run(capsys, "score", str(path), "--model", str(tiny.dir))
    assert code == 0 and "gzip -9" in out and "xz -9e" in out and f"{len(data)} bytes" in out


def test_score_stdin_and_env_model(
    tiny: TinyModel, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LNRNN_MODEL_DIR", str(tiny.dir))
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"from stdin")))
    code, out, _ = run(capsys, "score", "-", "--json")
    assert code == 0 and json.loads(out)["bits"] == pytest.approx(tiny.bits(b"from stdin"), abs=1e-3)


def test_predict_and_generate(tiny: TinyModel, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "predict", "caf", "--model", str(tiny.dir), "--top-k", "3")
    assert code == 0 and len(out.splitlines()) == 4 and "other" in out
    args = ("generate", "Hi", "--model", str(tiny.dir), "--max-chars", "12", "--seed", "5")
    code, first, _ = run(capsys, *args)
    assert code == 0 and first.startswith("Hi") and len(first.rstrip("\n")) == 14
    assert run(capsys, *args)[1] == first


@pytest.mark.parametrize(
    "argv",
    [
        ("score", "README-does-not-exist.txt"),
        ("predict", "x", "--model", "/nonexistent/model"),
        ("generate", "x", "--model", "/nonexistent/model"),
        ("serve", "/nonexistent/model"),
        ("predict", "x", "--top-k", "0"),
    ],
)
def test_user_errors_are_one_line_exit_2(argv: tuple[str, ...], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and "error:" in err


def test_empty_file(tmp_path: Path, tiny: TinyModel, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "empty").write_bytes(b"")
    code, _, err = run(capsys, "score", str(tmp_path / "empty"), "--model", str(tiny.dir))
    assert code == 2 and "empty" in err


def test_serve_device_cuda_without_cuda_is_a_clear_error(
    tiny: TinyModel, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "serve", str(tiny.dir), "--device", "cuda")
    assert code == 2 and "--device cuda" in err and len(err.strip().splitlines()) == 1


BLOCKER = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        top = name.split(".")[0]
        if top in ("torch", "onnx", "onnxscript") or name.startswith(("lnrnn.train", "lnrnn.export")):
            raise ImportError(f"blocked import of {name}")
        return None
sys.meta_path.insert(0, Block())
import lnrnn.serve.app, lnrnn.serve.engine.runtime, lnrnn.serve.cli.commands, lnrnn.serve.engine.decode
from lnrnn.serve.app import create_app
from lnrnn.serve.engine.runtime import Runtime
rt = Runtime.load(sys.argv[1])
create_app(runtime=rt)
assert rt.score(b"abc").nats > 0
stages = ("lnrnn.train", "lnrnn.export")
bad = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "onnx") or m.startswith(stages))
assert not bad, bad
print("torch-free")
"""


def test_serve_never_imports_torch_or_onnx(tiny: TinyModel) -> None:
    done = subprocess.run(
        [sys.executable, "-c", BLOCKER, str(tiny.dir)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "torch-free"
