"""bench/kinds.py on tiny models and a small stand-in for the broad mix: every text of every group is scored,
its numbers are what the scorer, the codec and the compressors give, the goals read them with the right
reference, and the card's table is replaced in place."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from bench import classic_compressors, kinds
from lnrnn.bpc import bits_per_byte
from lnrnn.codec import StepGraph, information
from lnrnn.export.api import export_model
from lnrnn.serve.engine.runtime import Runtime
from lnrnn.train.model import ByteLM, ModelConfig
from tests.helpers.models import VERIFY_DATA

pytestmark = pytest.mark.data  # the English group is the shared validation splits

CODE = b"def f(x):\n    return [i * 2 for i in range(x) if i % 3]\n" * 40
JSON = b'{"alpha_2": "fr", "name": "France", "numeric": "250"},\n' * 40
PERL = b'sub greet { my ($name) = @_; print "hello $name\\n"; }\n' * 40


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    root = tmp_path_factory.mktemp("kinds")
    data = root / "broad-data"
    (data / "valid").mkdir(parents=True)
    (data / "ood").mkdir()
    (data / "valid" / "english.txt").write_bytes(b"skipped: the shared splits stand for it")
    (data / "valid" / "code-python.txt").write_bytes(CODE)
    (data / "valid" / "json.txt").write_bytes(JSON)
    (data / "ood" / "perl.txt").write_bytes(PERL)
    models = []
    for seed, name in ((5, "candidate"), (6, "reference")):
        torch.manual_seed(seed)
        export_model(
            ByteLM(ModelConfig(cell="gru", hidden=32, layers=1)),
            root / name,
            quantize="int8",
            verify_data=VERIFY_DATA,
        )
        models.append(root / name)
    return data, models[0], models[1]


@pytest.fixture(scope="module")
def result(setup: tuple[Path, Path, Path]) -> dict:
    data, candidate, reference = setup
    return kinds.measure([candidate, reference], data, quick=True, log=lambda s: None)


def test_one_text_per_group_in_quick_mode_and_english_txt_skipped(result: dict) -> None:
    assert [t["group"] for t in result["texts"]] == ["english", "kind", "ood"]
    names = [t["name"] for t in result["texts"]]
    assert names == ["tinyshakespeare", "code-python", "perl"]
    assert "english" not in names


def test_numbers_are_the_scorer_codec_and_compressors(result: dict, setup: tuple[Path, Path, Path]) -> None:
    data, candidate, _ = setup
    text = CODE[: kinds.QUICK_BYTES]
    row = result["models"][0]
    int8 = Runtime.load(candidate, device="cpu", precision="int8").score(text).nats
    fp32 = Runtime.load(candidate, device="cpu", precision="fp32").score(text).nats
    assert row["int8"]["code-python"] == pytest.approx(bits_per_byte(int8, len(text)), abs=1e-12)
    assert row["fp32"]["code-python"] == pytest.approx(bits_per_byte(fp32, len(text)), abs=1e-12)
    adaptive = information(text, StepGraph.load(candidate, "int8"))
    assert row["adaptive"]["code-python"] == pytest.approx(bits_per_byte(adaptive, len(text)), abs=1e-12)
    classic = classic_compressors.measure(text)
    for name in kinds.BASELINES:
        assert result["baselines"]["code-python"][name] == classic[name]["bits_per_byte"]
    # a random model is near-uniform; the adaptive codec learns the repeated line
    assert 7.0 < row["int8"]["code-python"] < 9.0
    assert row["adaptive"]["code-python"] < row["int8"]["code-python"] - 1.0


def test_goals_use_the_last_model_as_the_reference(result: dict) -> None:
    assert len(kinds.goals(result)) == 5  # two per held-out kind, two out of domain, one English
    new, ref = result["models"][0], result["models"][-1]
    english = next(g for g in kinds.goals(result) if "English" in g["goal"])
    assert english["worst"] == "tinyshakespeare"
    margin = new["fp32"]["tinyshakespeare"] - ref["fp32"]["tinyshakespeare"] - kinds.ENGLISH_SLACK
    assert english["margin"] == pytest.approx(margin)
    assert english["met"] == (margin <= 0)
    ppmd = next(g for g in kinds.goals(result) if "below PPMd" in g["goal"])
    # a random network is far above PPMd on a repeated line: the goal is reported as not met
    assert ppmd["worst"] == "code-python" and ppmd["margin"] > 0 and not ppmd["met"]


def test_card_table_is_replaced_in_place(result: dict, tmp_path: Path) -> None:
    card = tmp_path / "README.md"
    card.write_text("# a card\n\nprose before\n")
    kinds.write_card(tmp_path, result)
    kinds.write_card(tmp_path, result)
    text = card.read_text()
    assert text.startswith("# a card\n\nprose before\n")
    assert text.count(kinds.START) == 1 and text.count(kinds.END) == 1
    assert "| kind | code-python | 2,048 |" in text and "not met" in text


def test_cli_renders_saved_results_and_refuses_a_missing_model(
    result: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    saved = tmp_path / "kinds.json"
    saved.write_text(json.dumps(result))
    assert kinds.main(["--results", str(saved)]) == 0
    assert "| ood | perl |" in capsys.readouterr().out
    assert kinds.main(["--model", str(tmp_path / "nothing")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "nothing" in err


def test_bench_section_and_target_rows(result: dict) -> None:
    lines = kinds.render_section({"kinds": result})
    assert lines[0] == "## Kinds of text" and "candidate against reference" in lines[2]
    assert any(line.startswith("| ood | perl |") for line in lines)
    rows = kinds.targets({"kinds": result})
    assert [r["name"] for r in rows] == ["kinds: candidate"] * 5
    ppmd = next(r for r in rows if "below PPMd" in r["target"])
    assert ppmd["met"] is False and "code-python" in ppmd["explanation"]
    assert kinds.targets({}) == []  # not measured: no rows
