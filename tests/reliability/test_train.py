"""Training faults (tests only): kill -9 then --resume, a full disk, and pickles posing as checkpoints."""

from __future__ import annotations

import errno
import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from lnrnn.cli import main
from lnrnn.errors import UserError
from lnrnn.train import checkpoint
from lnrnn.train.checkpoint import load_model, load_tensors_weights_only

TINY = ["--preset", "tiny", "--hidden", "16", "--quiet", "--log-interval", "1"]


def corpus(path: Path, n: int = 20_000) -> Path:
    rng = np.random.default_rng(0)
    path.write_bytes(bytes(rng.choice(np.frombuffer(b"abcd efgh\n", np.uint8), n).tobytes()))
    return path


def train_cmd(data: Path, run: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "lnrnn", "train", "--data", str(data), "--out", str(run), *TINY, *extra]


def wait_for(path: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, f"training ended early: {proc.communicate()}"
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def assert_run_files_whole(run: Path) -> None:
    """Every JSON parses, every checkpoint loads, every metrics line is JSON."""
    for path in run.glob("*.json"):
        json.loads(path.read_text())
    for name in ("best", "last"):
        if (run / f"{name}.json").exists():
            load_file(str(run / f"{name}.safetensors"))
            load_model(run, name)
    for line in (run / "metrics.jsonl").read_text().splitlines():
        json.loads(line)


@pytest.mark.slow
def test_kill_9_then_resume(tmp_path: Path) -> None:
    data, run = corpus(tmp_path / "c.txt"), tmp_path / "run"
    proc = subprocess.Popen(
        train_cmd(data, run, "--max-steps", "100000", "--eval-interval", "5"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(run / "resume.pt", proc)
        time.sleep(0.7)  # kill somewhere in the middle of later steps or checkpoints
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    leftovers = sorted(p.name for p in run.glob(".*.tmp"))
    print(f"\nkill -9: leftover temporary files (ignored by readers): {leftovers}")
    assert_run_files_whole(run)
    saved = load_tensors_weights_only(run / "resume.pt")["progress"]["step"]
    assert saved >= 5 and saved % 5 == 0

    target = saved + 7
    assert main(["train", "--out", str(run), "--resume", "--quiet", "--max-steps", str(target)]) == 0
    assert_run_files_whole(run)
    assert f"resumed at step {saved}" in (run / "train.log").read_text()
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in records if "train/loss" in r]
    assert steps[-7:] == list(range(saved + 1, target + 1)), "training continues from the checkpoint"
    assert json.loads((run / "last.json").read_text())["step"] == target


def _can_mount_tmpfs(where: Path) -> bool:
    where.mkdir()
    try:
        argv = ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(where)]
        done = subprocess.run(argv, capture_output=True, check=False)
    except OSError:  # no mount binary
        return False
    return done.returncode == 0


def _fill(disk: Path) -> None:
    with open(disk / "filler", "wb") as fh:
        try:
            while True:
                fh.write(b"\0" * 65536)
                fh.flush()
        except OSError as err:
            assert err.errno == errno.ENOSPC


@pytest.mark.slow
def test_full_disk_keeps_the_previous_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A real tmpfs filled up while training runs (root in a container); else an in-process ENOSPC."""
    data, disk = corpus(tmp_path / "c.txt"), tmp_path / "disk"
    run = disk / "run"
    if _can_mount_tmpfs(disk):
        try:
            args = train_cmd(data, run, "--max-steps", "100000", "--eval-interval", "5")
            proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            try:
                wait_for(run / "resume.pt", proc)
                before = json.loads((run / "last.json").read_text())["step"]
                _fill(disk)
                _, err = proc.communicate(timeout=120)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
            (disk / "filler").unlink()  # room again, so the checks below can read and load
            code = proc.returncode
            print(f"\ntmpfs full: exit {code}, stderr:\n{err}")
            assert_checkpoint_from(run, before)
        finally:
            subprocess.run(["umount", "-l", str(disk)], check=False)
    else:
        calls = {"n": 0}
        real = checkpoint.save_file

        def save_file(tensors: dict, path: str) -> None:
            calls["n"] += 1
            if calls["n"] > 2:  # best + last of the first check succeed
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)
            real(tensors, path)

        monkeypatch.setattr(checkpoint, "save_file", save_file)
        try:
            code = main(["train", "--data", str(data), "--out", str(run), *TINY, "--eval-interval", "5"])
            err = capsys.readouterr().err
        except OSError as exc:  # reported by the assertions below, after the checkpoint check
            code, err = 1, f"Traceback (uncaught): {exc!r}"
        assert_checkpoint_from(run, 5)
    lines = err.strip().splitlines()
    assert code != 0
    assert "Traceback" not in err and len(lines) == 1, f"not a one-line error:\n{err}"
    assert "No space left on device" in lines[0]


def assert_checkpoint_from(run: Path, step: int) -> None:
    meta = json.loads((run / "last.json").read_text())
    assert meta["step"] >= step
    model, _ = load_model(run, "last")
    assert model.num_parameters() > 0


# --- checkpoints are never unpickled ------------------------------------------------------------


class Payload:
    """Unpickling this creates the marker file: the proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple:
        return (open, (self.marker, "w"))


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("pickle-run")
    args = ["train", "--data", str(corpus(tmp / "c.txt")), "--out", str(tmp / "run"), *TINY]
    assert main([*args, "--max-steps", "2", "--eval-interval", "2"]) == 0
    return tmp / "run"


@pytest.mark.parametrize("fmt", ["raw pickle", "torch.save zip"])
def test_weights_only_loader_refuses_pickles(tmp_path: Path, fmt: str) -> None:
    marker, evil = tmp_path / "pwned", tmp_path / "evil.pt"
    if fmt == "raw pickle":
        evil.write_bytes(pickle.dumps(Payload(marker)))
    else:
        torch.save({"model": Payload(marker)}, evil)
    with pytest.raises(UserError, match="not a safe weights-only file"):
        load_tensors_weights_only(evil)
    assert not marker.exists()


@pytest.mark.slow
@pytest.mark.parametrize("command", ["eval", "export", "train --resume"])
def test_cli_refuses_a_pickle_checkpoint(
    run_dir: Path, tmp_path: Path, command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    run, marker = tmp_path / "run", tmp_path / "pwned"
    run.mkdir()
    for name in ("config.json", "best.json", "last.json", "metrics.jsonl"):
        (run / name).write_bytes((run_dir / name).read_bytes())
    bomb = pickle.dumps(Payload(marker))
    for name in ("best.safetensors", "last.safetensors", "resume.pt"):
        (run / name).write_bytes(bomb)
    argv = {
        "eval": ["eval", str(run), "--data", str(run / "config.json")],
        "export": ["export", str(run), "--out", str(tmp_path / "model")],
        "train --resume": ["train", "--out", str(run), "--resume", "--quiet"],
    }[command]
    assert main(argv) == 2
    assert not marker.exists(), "the pickle ran"
    err = capsys.readouterr().err
    assert "error:" in err and len(err.strip().splitlines()) == 1, f"not a one-line error:\n{err}"
