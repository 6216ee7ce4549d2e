"""The shipped broad model keeps its card's promises, checked on the committed files themselves.

It ships every precision with its recorded deltas within their bounds, its weights start from the default
model's architecture, it loads by name where ``--model`` is taken, and its card's table (from
``bench/kinds.py``, saved in ``kinds.json``) holds the numbers the runtime and the codec give today on the
cheapest English split (the broad mix's own splits are not in CI: ``make default-data`` builds them).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import kinds
from bench.common import REPO
from lnrnn.bpc import bits_per_byte
from lnrnn.cli import main
from lnrnn.codec import StepGraph, information
from lnrnn.contract import INT4_MAX_BPC_DELTA, INT8_MAX_BPC_DELTA, PRECISION_FILES
from lnrnn.serve.engine.runtime import Runtime
from lnrnn.train.recipes.corpora import VALIDATION_SPLITS

MODEL = REPO / "models" / "broad"
CHEAP = "alice29"  # the smallest shared split: rescored, adaptive too, in seconds


def saved() -> dict:
    return json.loads((MODEL / "kinds.json").read_text())


def test_every_precision_shipped_within_its_bound() -> None:
    report = json.loads((MODEL / "export_report.json").read_text())
    for precision, files in PRECISION_FILES.items():
        assert all((MODEL / f).is_file() for f in files), precision
    for precision in ("int8", "int8w", "int4"):
        bound = INT4_MAX_BPC_DELTA if precision == "int4" else INT8_MAX_BPC_DELTA
        assert report[precision]["kept"] and report[precision]["bpc_delta"] <= bound
    assert report["bpc"]["abs_diff"] < 1e-4  # torch vs ONNX Runtime on the whole broad valid file


def test_same_architecture_as_the_default() -> None:
    mine = Runtime.load(MODEL, device="cpu", precision="int8").meta.config
    default = Runtime.load(REPO / "models" / "default", device="cpu", precision="int8").meta.config
    assert mine == default


def test_card_table_is_the_saved_results_and_names_both_models() -> None:
    res = saved()
    assert [m["model"] for m in res["models"]] == ["broad", "default"]
    card = (MODEL / "README.md").read_text()
    block = card[card.index(kinds.START) : card.index(kinds.END) + len(kinds.END)]
    assert block == f"{kinds.START}\n" + "\n".join(kinds.render(res)) + f"\n{kinds.END}"
    groups = {t["group"] for t in res["texts"]}
    assert groups == {"english", "kind", "ood"}


@pytest.mark.data
def test_card_numbers_reproduce_on_the_cheapest_split() -> None:
    split = next(s for s in VALIDATION_SPLITS if s.name == CHEAP)
    data = split.read()
    row = saved()["models"][0]
    int8 = Runtime.load(MODEL, device="cpu", precision="int8").score(data).nats
    assert bits_per_byte(int8, len(data)) == pytest.approx(row["int8"][CHEAP], abs=1e-6)
    adaptive = information(data, StepGraph.load(MODEL, "int8"))
    assert bits_per_byte(adaptive, len(data)) == pytest.approx(row["adaptive"][CHEAP], abs=1e-6)


def test_loads_by_name_in_the_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = tmp_path / "code.py"
    text.write_bytes(b"def main() -> int:\n    return 0\n")
    assert main(["score", str(text), "--model", "broad"]) == 0
    out = capsys.readouterr().out
    assert "models/broad" in out and "lnrnn" in out
