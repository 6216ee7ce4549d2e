"""`lnrnn experiment seeds`: bad input, planner, verdict rule, and a --quick run's files and JSON schema.

No verdict is asserted: the results are what they are.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lnrnn.cli import main
from lnrnn.errors import UserError
from lnrnn.train.experiments.plan import (
    QUICK,
    RunSpec,
    Timing,
    build_claims,
    param_count,
    steps_for_budget,
    unique_specs,
)
from lnrnn.train.experiments.stats import (
    FAIL,
    INCONCLUSIVE,
    NOT_REPRODUCED,
    PASS,
    REPRODUCED,
    UNDECIDED,
    better,
    summarize,
    verdict,
)
from tests.helpers import write_corpus

VERDICTS = {REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE}
SEED_KEYS = {"valid_bpc", "best_valid_bpc", "valid_curve", "train_bpc_curve", "params", "chars_per_s"}
SEED_KEYS |= {"wall_s", "steps", "stopped"}


def one_line_error(capsys: pytest.CaptureFixture[str], argv: list[str], needle: str) -> None:
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("lnrnn experiment: error:") and needle in err[0], err


def test_bad_input_is_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    corpus = write_corpus(tmp_path / "c.txt", n=20_000)
    out = ["--out", str(tmp_path / "out")]
    one_line_error(
        capsys, ["experiment", "seeds", "--quick", "--data", str(tmp_path / "no.txt"), *out], "no.txt"
    )
    one_line_error(
        capsys, ["experiment", "nope", "--quick", "--data", str(corpus), *out], "unknown experiment"
    )
    one_line_error(
        capsys, ["experiment", "seeds", "--quick", "--seeds", "0", "--data", str(corpus), *out], "--seeds"
    )
    one_line_error(
        capsys, ["experiment", "seeds", "--budget-minutes", "0", "--data", str(corpus), *out], "budget"
    )
    assert not (tmp_path / "out").exists()


def test_configs_are_deduplicated_and_parameters_matched() -> None:
    claims = build_claims(32)
    specs = unique_specs(claims)
    names = [s.name for s in specs]
    assert len(names) == len(set(names)) == 11  # 6 (norm x cell) + MGU + 2 equal-params + 2 inits
    ln_gru = RunSpec("gru", "layer", 32)
    assert sum(ln_gru in c.roles.values() for c in claims) == 3  # claims 1, 3 and 4 share it (2 has no LN)
    ref = param_count(ln_gru)
    for role in ("lstm/equal-params", "mgu/equal-params"):
        assert abs(param_count(claims[2].roles[role]) - ref) <= 0.05 * ref


def test_budget_rule_and_too_small_budget() -> None:
    specs = unique_specs(build_claims(QUICK.hidden))
    timings = {s.name: Timing(step_s=0.01, eval_s=0.1) for s in specs}
    steps = steps_for_budget(specs, timings, QUICK, 2, 600.0)
    assert steps == QUICK.max_steps and steps % QUICK.n_evals == 0
    with pytest.raises(UserError, match="budget"):
        steps_for_budget(specs, timings, QUICK, 2, 5.0)


def test_verdict_rule() -> None:
    a, b = summarize([1.0, 1.01, 0.99]), summarize([1.5, 1.51, 1.49])
    assert better("a", a, "b", b, "m").outcome == PASS
    assert better("b", b, "a", a, "m").outcome == FAIL
    assert better("a", a, "a2", summarize([1.0, 1.02, 0.98]), "m").outcome == UNDECIDED
    assert better("a", a, "b", b, "m", expect_better=False).outcome == FAIL
    assert better("a", summarize([1.0]), "b", summarize([2.0]), "m").outcome == UNDECIDED  # one seed
    checks = [better("a", a, "b", b, "m")]
    assert verdict(checks) == REPRODUCED
    assert verdict([*checks, better("a", a, "a2", a, "m")]) == INCONCLUSIVE
    assert verdict([*checks, better("b", b, "a", a, "m")]) == NOT_REPRODUCED


@pytest.mark.slow
def test_quick_run_writes_files_and_schema(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    corpus = write_corpus(tmp_path / "c.txt", n=60_000)
    out = tmp_path / "exp"
    assert main(["experiment", "seeds", "--quick", "--data", str(corpus), "--out", str(out)]) == 0
    stdout = capsys.readouterr().out
    assert "22 runs" in stdout and "estimated training time" in stdout  # the plan is printed first
    for name in ("results.json", "report.md", *(f"claim{k}.png" for k in "1234")):
        assert (out / name).is_file(), name
    for k in "1234":
        assert (out / f"claim{k}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    r = json.loads((out / "results.json").read_text())
    assert r["schema"] == "lnrnn-experiment-seeds/1" and r["quick"] is True
    assert r["command"].startswith("lnrnn experiment seeds --quick")
    setup = r["setup"]
    steps = setup["steps"]
    assert setup["seeds"] == [1, 2] and steps >= 1 and setup["valid_bytes_used"] == QUICK.valid_bytes
    assert set(setup["probe"]) == set(r["configs"]) and len(r["configs"]) == 11
    for name, config in r["configs"].items():
        assert config["name"] == name and set(config["settings"]) == {"cell", "norm", "hidden", "init"}
        assert config["params"] == param_count(RunSpec(**config["settings"]))
        assert set(config["seeds"]) == {"1", "2"}
        for rec in config["seeds"].values():
            assert set(rec) >= SEED_KEYS
            assert rec["steps"] == steps and rec["stopped"] == "max_steps"  # equal steps everywhere
            assert rec["valid_curve"][-1] == [steps, rec["valid_bpc"]] and len(rec["valid_curve"]) == 2
            assert rec["train_bpc_curve"] and rec["params"] == config["params"]
            assert rec["chars_per_s"] > 0 and rec["wall_s"] > 0
        for metric in ("final_valid", "valid_auc", "train_auc"):
            assert set(config["summary"][metric]) == {"mean", "std", "n", "min", "max"}
        run_dir = out / "runs" / name / "seed1"
        assert (run_dir / "metrics.jsonl").is_file() and not list(run_dir.glob("*.safetensors"))

    assert [c["key"] for c in r["claims"]] == ["1", "2", "3", "4"]
    for claim in r["claims"]:
        assert claim["verdict"] in VERDICTS and claim["quote"] and claim["plot"] == f"claim{claim['key']}.png"
        assert set(claim["roles"].values()) <= set(r["configs"])
        assert len(claim["table"]) == len(claim["roles"])
        for part in claim["parts"]:
            assert part["verdict"] in VERDICTS
            assert all(c["outcome"] in (PASS, FAIL, UNDECIDED) and c["detail"] for c in part["checks"])
    report = (out / "report.md").read_text()
    assert report.count("## Claim ") == 4 and "Verdict rule" in report and r["command"] in report
