"""`lnrnn train|eval|plot` through the real CLI: outputs, flags reaching the config, one-line errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from lnrnn.cli import main
from lnrnn.train.checkpoint import load_model
from tests.helpers import read_jsonl, write_corpus

ROOT = Path(__file__).resolve().parents[2]
TINY = ["--preset", "tiny", "--hidden", "16", "--quiet"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("cli")
    corpus = write_corpus(tmp / "c.txt", n=20_000)
    assert main(["train", "--data", str(corpus), "--out", str(tmp / "run"), *TINY, "--max-steps", "4"]) == 0
    return tmp / "run"


def test_eval_json_schema(run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = tmp_path / "t.txt"
    text.write_bytes(b"acgtacgtaacc" * 10)
    capsys.readouterr()
    assert main(["eval", str(run_dir), "--data", str(text), "--json"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1
    record = json.loads(out[0])
    assert record["bytes"] == 120
    assert record["bits"] == pytest.approx(record["bpc"] * 120)
    assert isinstance(record["bpc"], float) and record["bpc"] > 0
    from lnrnn.train.evaluate import evaluate_bytes

    nats, _ = evaluate_bytes(load_model(run_dir)[0], text.read_bytes())
    assert record["nats"] == pytest.approx(nats)
    assert main(["eval", str(run_dir), "--data", str(text), "--checkpoint", "last"]) == 0
    assert "bpc" in capsys.readouterr().out


def test_plot_writes_png(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "curves.png"
    assert main(["plot", str(run_dir), "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_flags_reach_the_config(tmp_path: Path) -> None:
    corpus = write_corpus(tmp_path / "c.txt", n=20_000)
    flags = {
        "--cell": "lstm", "--norm": "none", "--layers": "2", "--embedding": "8", "--init": "orthogonal",
        "--dropout-embedding": "0.1", "--dropout-input": "0.2", "--dropout-hidden": "0.3",
        "--dropout-output": "0.4", "--weight-drop": "0.25", "--ar": "1.5", "--tar": "0.5",
        "--optimizer": "ntasgd", "--lr": "0.5", "--clip": "0.3", "--lr-decay": "0.5", "--patience": "2",
        "--early-stop": "4", "--nonmono": "3", "--weight-decay": "1e-6", "--split": "0.8,0.1,0.1",
        "--batch-size": "8", "--bptt": "16", "--device": "cpu", "--seed": "3",
    }  # fmt: skip
    switches = ["--sum-layers", "--no-learned-init", "--random-bptt"]
    args = [x for kv in flags.items() for x in kv] + switches
    run = tmp_path / "run"
    assert main(["train", "--data", str(corpus), "--out", str(run), *TINY, *args, "--max-steps", "2"]) == 0
    config = json.loads((run / "config.json").read_text())
    model, tr = config["model"], config["train"]
    assert (model["cell"], model["norm"], model["layers"], model["embedding"], model["init"]) == (
        "lstm", "none", 2, 8, "orthogonal",
    )  # fmt: skip
    assert (model["dropout_embedding"], model["dropout_input"], model["dropout_hidden"]) == (0.1, 0.2, 0.3)
    assert (model["dropout_output"], model["weight_drop"], model["hidden"]) == (0.4, 0.25, 16)
    assert model["sum_layers"] is True and model["learned_init"] is False
    assert (tr["ar"], tr["tar"], tr["optimizer"], tr["lr"], tr["clip"], tr["lr_decay"]) == (
        1.5, 0.5, "ntasgd", 0.5, 0.3, 0.5,
    )  # fmt: skip
    assert (tr["patience"], tr["early_stop"], tr["nonmono"], tr["batch_size"], tr["bptt"]) == (2, 4, 3, 8, 16)
    assert tr["random_bptt"] is True and tr["split"] == "0.8,0.1,0.1" and tr["seed"] == 3
    loaded, meta = load_model(run, "last")
    assert loaded.config.weight_drop == 0.25 and loaded.recurrent_cells[0].weight_drop == 0.25
    assert loaded.projection is not None and meta["optimizer"] == "sgd"


def test_preset_values_and_flag_precedence() -> None:
    from lnrnn.train.presets import resolve

    m, t = resolve("awd-enwik8", {"lr": 5e-4})
    assert (m.cell, m.layers, m.embedding, m.hidden, m.weight_drop, m.dropout_output) == (
        "lstm",
        3,
        400,
        1840,
        0.2,
        0.4,
    )
    assert (t.batch_size, t.bptt, t.lr, t.random_bptt) == (128, 200, 5e-4, True)
    m, t = resolve("hafner-text8", {})
    assert (m.cell, m.norm, m.layers, m.hidden, t.batch_size, t.bptt, t.lr_decay) == (
        "gru", "layer", 1, 2000, 100, 200, 1.0,
    )  # fmt: skip
    m, t = resolve("small", {})
    assert m.norm == "layer" and 256 <= m.hidden <= 384 and m.layers in (1, 2)


def bad(tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], match: str) -> None:
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert err.startswith(f"lnrnn {argv[0]}: error: ") and match in err, err


def test_bad_inputs(tmp_path: Path, capsys: pytest.CaptureFixture[str], run_dir: Path) -> None:
    corpus = write_corpus(tmp_path / "c.txt", n=20_000)
    (tmp_path / "empty.txt").write_bytes(b"")
    (tmp_path / "short.txt").write_bytes(b"abc" * 100)
    out = str(tmp_path / "out")
    train = ["train", "--out", out, *TINY, "--max-steps", "2"]
    cases = [
        (["--data", str(tmp_path / "missing.txt")], "does not exist"),
        (["--data", str(tmp_path / "empty.txt")], "is empty"),
        (["--data", str(tmp_path / "short.txt")], "fewer than one batch"),
        (["--data", str(corpus), "--preset", "nope"], "valid presets: tiny, small"),
        (["--data", str(corpus), "--max-steps", "-1"], "max_steps"),
        (["--data", str(corpus), "--norm", "batch", "--no-hoist"], "--norm batch"),
        (["--data", str(corpus), "--dropout-input", "1.5"], "dropout_input"),
        (["--data", str(corpus), "--split", "0.5,0.6"], "--split"),
        ([], "--data is required"),
        (["--resume"], "--resume: no config.json"),
    ]
    if not torch.cuda.is_available():
        cases.append((["--data", str(corpus), "--device", "cuda"], "CUDA is not available"))
    for extra, match in cases:
        bad(tmp_path, capsys, [*train, *extra], match)
    bad(tmp_path, capsys, ["train", "--out", out, "--resume"], "no config.json")
    # An existing run is never overwritten silently.
    bad(
        tmp_path,
        capsys,
        ["train", "--out", str(run_dir), "--data", str(corpus), *TINY],
        "already holds a run",
    )
    bad(
        tmp_path,
        capsys,
        ["train", "--out", str(run_dir), "--resume", "--hidden", "32"],
        "cannot change the model",
    )
    bad(tmp_path, capsys, ["eval", str(tmp_path / "nothing"), "--data", str(corpus)], "does not exist")
    bad(tmp_path, capsys, ["eval", str(run_dir), "--data", str(tmp_path / "empty.txt")], "is empty")
    bad(tmp_path, capsys, ["plot", str(tmp_path)], "no metrics file")


@pytest.mark.slow
def test_bad_input_in_a_real_process(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "lnrnn",
            "train",
            "--data",
            str(tmp_path / "nope"),
            "--out",
            str(tmp_path / "o"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"lnrnn train: error: data file {tmp_path / 'nope'} does not exist"
    ]


@pytest.mark.slow
@pytest.mark.parametrize("sig,code", [(signal.SIGTERM, 0), (signal.SIGINT, 130)])
def test_signal_saves_last_and_resume_works(tmp_path: Path, sig: signal.Signals, code: int) -> None:
    corpus = write_corpus(tmp_path / "c.txt", n=20_000)
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "lnrnn", "train", "--data", str(corpus), "--out", str(run), *TINY,
           "--max-steps", "100000", "--eval-interval", "100000", "--log-interval", "1"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    metrics = run / "metrics.jsonl"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (not metrics.exists() or len(metrics.read_text().splitlines()) < 3):
        time.sleep(0.2)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert "Traceback" not in err
    last = json.loads((run / "last.json").read_text())
    assert last["step"] >= 3 and (run / "resume.pt").is_file()
    target = last["step"] + 3
    assert main(["train", "--out", str(run), "--resume", "--quiet", "--max-steps", str(target)]) == 0
    steps = [r["step"] for r in read_jsonl(run / "metrics.jsonl") if "train/loss" in r]
    assert steps[-1] == target and json.loads((run / "best.json").read_text())["step"] == target
    assert os.path.getsize(run / "best.safetensors") > 0


def resumable(tmp_path: Path, steps: int) -> list[str]:
    """A tiny-preset command whose run can be continued."""
    corpus = tmp_path / "c.txt"
    if not corpus.exists():
        write_corpus(corpus, n=20_000)
    return ["train", "--data", str(corpus), "--out", str(tmp_path / "run"), *TINY,
            "--max-steps", str(steps), "--eval-interval", "2", "--log-interval", "1"]  # fmt: skip


def test_the_runs_own_command_plus_resume_continues_it(tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert main(resumable(tmp_path, 4)) == 0
    assert main([*resumable(tmp_path, 4), "--resume"]) == 0  # the same command: nothing left to train
    assert json.loads((run / "last.json").read_text())["step"] == 4
    assert main([*resumable(tmp_path, 8), "--resume"]) == 0  # the run length may change: it continues
    steps = [r["step"] for r in read_jsonl(run / "metrics.jsonl") if "train/loss" in r]
    assert steps == list(range(1, 9))
    assert json.loads((run / "last.json").read_text())["step"] == 8
    log = (run / "train.log").read_text()
    assert "resumed at step 4" in log and "| stopped: max_steps |" in log


def test_resume_names_each_flag_that_differs_from_the_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    assert main(resumable(tmp_path, 2)) == 0
    before = (run / "last.json").read_text()
    flag = [*resumable(tmp_path, 2), "--lr", "0.01", "--resume"]
    bad(tmp_path, capsys, flag, "--lr 0.01 here, 0.003 in the run")
    preset = [*resumable(tmp_path, 2), "--preset", "small", "--resume"]
    bad(tmp_path, capsys, preset, "--layers 2 (from --preset small) here, 1 in the run")
    assert main([*resumable(tmp_path, 2), "--bptt", "8", "--random-bptt", "--resume"]) == 2
    err = capsys.readouterr().err
    assert "--bptt 8 here, 32 in the run" in err and "--random-bptt true here, false in the run" in err
    assert err.count("\n") == 1 and "only --max-steps and --max-minutes may change" in err
    assert (run / "last.json").read_text() == before  # nothing was trained
