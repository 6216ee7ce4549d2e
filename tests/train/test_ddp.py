"""DistributedDataParallel with 2 CPU processes (gloo) under torchrun on the tiny preset."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import free_port, read_jsonl, write_corpus


def worker_pids(parent: int) -> list[int]:
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == parent:
            pids.append(int(stat.parent.name))
    return pids


@pytest.mark.slow
def test_torchrun_two_cpu_processes(tmp_path: Path) -> None:
    corpus = write_corpus(tmp_path / "c.txt", n=20_000)
    run = tmp_path / "run"
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
        "--master_port", str(free_port()), "-m", "lnrnn", "train", "--data", str(corpus), "--out", str(run),
        "--preset", "tiny", "--hidden", "16",
        "--max-steps", "4", "--eval-interval", "2", "--log-interval", "1", "--quiet", "--device", "cpu",
    ]  # fmt: skip
    # Own session: on a timeout the launcher and both workers are killed together, no stray rank remains.
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        _, err = proc.communicate(timeout=90)
    except subprocess.TimeoutExpired:
        workers = worker_pids(proc.pid)  # torchrun starts its workers in sessions of their own
        os.killpg(proc.pid, signal.SIGKILL)
        for pid in workers:
            os.kill(pid, signal.SIGKILL)
        _, err = proc.communicate()
        pytest.fail(f"torchrun did not finish in 90 s:\n{err[-3000:]}")
    assert proc.returncode == 0, err[-3000:]
    log = (run / "train.log").read_text()
    assert "processes 2" in log and log.count("| valid bpc ") >= 2  # rank 0 alone logs
    records = read_jsonl(run / "metrics.jsonl")
    assert [r["step"] for r in records if "train/loss" in r] == [1, 2, 3, 4]  # one writer
    best = json.loads((run / "best.json").read_text())
    assert best["step"] in (2, 4) and isinstance(best["valid_bpc"], float)
    assert "module." not in "".join(json.dumps(best["model"]))
