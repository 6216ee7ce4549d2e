"""The real trainer: known-entropy convergence, same-seed reproducibility, exact resume."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from safetensors.torch import load_file

from lnrnn.cli import main
from lnrnn.train.presets import resolve
from lnrnn.train.trainer import train
from tests.helpers import markov_bytes, markov_entropy_rate, markov_source, read_jsonl, write_corpus


@pytest.mark.slow
def test_markov_source_reaches_its_entropy_rate(tmp_path: Path) -> None:
    """Ground truth: an order-2 Markov source over 4 symbols; the tiny preset must get within 0.05 bits."""
    table = markov_source(k=4, seed=0, concentration=0.5)
    rate = markov_entropy_rate(table)  # 1.441 bits per byte
    corpus = tmp_path / "markov.txt"
    corpus.write_bytes(markov_bytes(table, 200_000, seed=1))
    model_cfg, cfg = resolve(
        "tiny", {"data": str(corpus), "max_steps": 350, "lr": 6e-3, "eval_interval": 175}
    )
    result = train(model_cfg, cfg, tmp_path / "run", quiet=True)
    print(f"entropy rate {rate:.4f} bits, test bpc {result.test_bpc:.4f}, valid {result.best_valid_bpc:.4f}")
    assert result.test_bpc is not None
    assert abs(result.test_bpc - rate) < 0.05


def run_cli(tmp_path: Path, name: str, *extra: str) -> int:
    return main(["train", "--out", str(tmp_path / name), "--quiet", *extra])


COMMON = ["--preset", "tiny", "--hidden", "16", "--log-interval", "1", "--eval-interval", "4", "--seed", "7",
          "--dropout-output", "0.2", "--random-bptt", "--bptt", "12"]  # fmt: skip


def train_records(run: Path) -> list[dict[str, Any]]:
    drop = ("time_s", "perf/chars_per_s", "perf/ms_per_step")
    return [
        {k: v for k, v in r.items() if k not in drop}
        for r in read_jsonl(run / "metrics.jsonl")
        if "train/loss" in r
    ]


@pytest.mark.slow
def test_same_seed_same_metrics_and_resume_reproduces(tmp_path: Path) -> None:
    corpus = write_corpus(tmp_path / "c.txt", n=20_000)
    data = ["--data", str(corpus)]
    assert run_cli(tmp_path, "a", *data, *COMMON, "--max-steps", "12") == 0
    assert run_cli(tmp_path, "c", *data, *COMMON, "--max-steps", "12") == 0
    a = train_records(tmp_path / "a")
    assert len(a) == 12
    assert a == train_records(tmp_path / "c"), "same seed must give identical metrics on CPU"
    # Interrupted after 6 steps (not an eval step: the final check must not perturb the schedules), resumed.
    assert run_cli(tmp_path, "b", *data, *COMMON, "--max-steps", "6") == 0
    assert run_cli(tmp_path, "b", "--resume", "--max-steps", "12") == 0
    b = train_records(tmp_path / "b")
    assert [r["step"] for r in b] == list(range(1, 13))
    for ra, rb in zip(a[6:], b[6:], strict=True):
        assert ra["step"] == rb["step"]
        assert abs(ra["train/loss"] - rb["train/loss"]) <= 1e-6, (ra, rb)
    wa, wb = (
        load_file(str(tmp_path / "a" / "last.safetensors")),
        load_file(str(tmp_path / "b" / "last.safetensors")),
    )
    for key in wa:
        assert (wa[key] - wb[key]).abs().max().item() <= 1e-6, key


def test_run_dir_layout_and_checkpoint_meta(tmp_path: Path) -> None:
    import json

    from lnrnn.train.checkpoint import load_model

    corpus = write_corpus(tmp_path / "c.txt", n=20_000)
    assert run_cli(tmp_path, "r", "--data", str(corpus), "--preset", "tiny", "--hidden", "16",
                   "--max-steps", "5", "--eval-interval", "3") == 0  # fmt: skip
    run = tmp_path / "r"
    names = {p.name for p in run.iterdir()}
    assert {"config.json", "best.json", "best.safetensors", "last.json", "last.safetensors", "resume.pt",
            "metrics.jsonl", "train.log"} <= names  # fmt: skip
    model, meta = load_model(run)
    assert isinstance(meta["valid_bpc"], float) and meta["step"] in (3, 5)
    assert str(corpus.resolve()) in meta["train_data"] and "valid [" in meta["train_data"]
    assert isinstance(meta["test_bpc"], float)
    config = json.loads((run / "config.json").read_text())
    assert config["model"]["hidden"] == 16 and config["train"]["max_steps"] == 5
    log = (run / "train.log").read_text().splitlines()
    assert log[0].startswith("device cpu")
    assert any(line.startswith("step 3 | train bpc ") and "| valid bpc " in line and "grad norm" in line
               for line in log)  # fmt: skip
    keys = set().union(*read_jsonl(run / "metrics.jsonl"))
    assert {"step", "time_s", "train/bpc", "valid/bpc", "train/grad_norm", "perf/chars_per_s"} <= keys
