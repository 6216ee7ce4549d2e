"""`--bf16` (autocast; AMX on this CPU) and `--compile` (torch.compile of each cell's step).

Both change how fast a step runs, not what is learned: the run must land where the fp32 eager run lands,
keep fp32 weights in its checkpoints, and refuse clearly where the hardware or toolchain is missing.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lnrnn.cli import main
from lnrnn.train import devices
from lnrnn.train.checkpoint import load_model
from tests.helpers import write_corpus

TINY = ["--preset", "tiny", "--hidden", "32", "--quiet", "--max-steps", "60", "--eval-interval", "60"]


def one_line_error(capsys: pytest.CaptureFixture[str], argv: list[str], match: str) -> None:
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert err.startswith("lnrnn train: error: ") and match in err, err


def test_bf16_refused_on_a_cpu_without_native_bfloat16(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for probe in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
        monkeypatch.setattr(torch.cpu, probe, lambda: False, raising=False)
    corpus = write_corpus(tmp_path / "c.txt", n=20_000)
    argv = ["train", "--data", str(corpus), "--out", str(tmp_path / "o"), *TINY, "--bf16", "--device", "cpu"]
    one_line_error(capsys, argv, "--bf16 needs CUDA or a CPU with AVX512-BF16/AMX")
    assert not (tmp_path / "o").exists()


def test_compile_refused_without_a_compiler(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(devices.shutil, "which", lambda _name: None)
    corpus = write_corpus(tmp_path / "c.txt", n=20_000)
    argv = [
        "train",
        "--data",
        str(corpus),
        "--out",
        str(tmp_path / "o"),
        *TINY,
        "--compile",
        "--device",
        "cpu",
    ]
    one_line_error(capsys, argv, "--compile on CPU needs a C++ compiler")


@pytest.mark.slow
@pytest.mark.skipif(
    not devices.native_bf16(torch.device("cpu")), reason="this CPU has no AVX512-BF16/AMX (bf16 refused)"
)
def test_bf16_compiled_run_lands_where_the_fp32_eager_run_lands(tmp_path: Path) -> None:
    corpus = write_corpus(tmp_path / "c.txt", n=40_000)
    results = {}
    for name, extra in (("fp32", []), ("bf16-compiled", ["--bf16", "--compile"])):
        out = tmp_path / name
        assert main(["train", "--data", str(corpus), "--out", str(out), *TINY, *extra]) == 0
        model, meta = load_model(out, "best")
        assert all(p.dtype == torch.float32 for p in model.parameters())  # master weights stay fp32
        results[name] = meta["valid_bpc"]
    print(results)
    # Same seed, same batches: only rounding differs. 60 steps of a 4-symbol Markov source start at
    # 8 bits/byte (uniform over 257) and end near 2; the two runs must agree far more closely than that.
    assert results["fp32"] < 2.5
    assert abs(results["bf16-compiled"] - results["fp32"]) < 0.01, results
