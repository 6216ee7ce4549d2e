"""The bundled models/default keeps the default model's promises, checked on the committed files themselves.

<= 5M parameters and <= 25 MB on disk (plus the weight-only int8 pair the page's device mode downloads,
<= 5.5 MB, and the 4-bit pair, its step graph <= 1.5 MB); int8 and int8w files only with a BPC delta <= 0.01,
int4 files within 0.03; trained on the corpus mix; and the model card's numbers are what the torch-free
runtime and the compressors give today.
"""

from __future__ import annotations

import json

import pytest

from bench.common import REPO
from lnrnn.bpc import bits_per_byte
from lnrnn.contract import INT4_MAX_BPC_DELTA, INT8_MAX_BPC_DELTA, PRECISION_FILES
from lnrnn.serve.engine.runtime import Runtime
from lnrnn.train.recipes.compression import compressed_bits_per_byte
from lnrnn.train.recipes.corpora import VALIDATION_SPLITS
from lnrnn.train.recipes.model_card import END, START, table

MODEL = REPO / "models" / "default"
MAX_PARAMETERS = 5_000_000
MAX_DISK_BYTES = 25_000_000
MAX_DEVICE_PAIR_BYTES = 5_500_000  # step.int8w.onnx + sequence.int8w.onnx, on top of the 25 MB
MAX_INT4_STEP_BYTES = 1_500_000  # step.int4.onnx, on top of the 25 MB too
MAX_INT4_PAIR_BYTES = 3_000_000  # step.int4.onnx + sequence.int4.onnx
CHEAP_SPLITS = ("alice29", "asyoulik", "lcet10")  # the smallest splits: rescored in seconds


@pytest.fixture(scope="module")
def runtime() -> Runtime:
    return Runtime.load(MODEL, device="cpu", threads=0, precision="fp32")


@pytest.fixture(scope="module")
def evaluation() -> dict:
    return json.loads((MODEL / "evaluation.json").read_text())


def test_size_and_parameter_budget(runtime: Runtime) -> None:
    assert 0 < runtime.meta.config.parameters <= MAX_PARAMETERS
    device, small = PRECISION_FILES["int8w"], PRECISION_FILES["int4"]
    apart = (*device, *small)  # each pair has its own budget
    on_disk = sum(p.stat().st_size for p in MODEL.iterdir() if p.is_file() and p.name not in apart)
    assert on_disk <= MAX_DISK_BYTES, f"models/default holds {on_disk:,} bytes besides {apart}"
    pair = sum((MODEL / name).stat().st_size for name in device if (MODEL / name).is_file())
    assert pair <= MAX_DEVICE_PAIR_BYTES, f"the int8w pair is {pair:,} bytes"
    sizes = {name: (MODEL / name).stat().st_size for name in small if (MODEL / name).is_file()}
    assert sizes.get(small[0], 0) <= MAX_INT4_STEP_BYTES, f"{small[0]} is {sizes[small[0]]:,} bytes"
    assert sum(sizes.values()) <= MAX_INT4_PAIR_BYTES, f"the int4 pair is {sum(sizes.values()):,} bytes"


@pytest.mark.parametrize(
    ("precision", "bound"),
    [("int8", INT8_MAX_BPC_DELTA), ("int8w", INT8_MAX_BPC_DELTA), ("int4", INT4_MAX_BPC_DELTA)],
)
def test_quantized_files_only_with_a_small_delta(precision: str, bound: float) -> None:
    present = [(MODEL / f).is_file() for f in PRECISION_FILES[precision]]
    assert present[0] == present[1]
    if present[0]:
        quantized = Runtime.load(MODEL, device="cpu", precision=precision)
        assert quantized.meta.int8_bpc_delta is not None and quantized.meta.int8_bpc_delta <= bound


def test_trained_on_the_mix_with_every_split_held_out(runtime: Runtime) -> None:
    assert "default-data" in runtime.meta.train_data and "valid=valid.txt" in runtime.meta.train_data
    assert runtime.meta.valid_bpc is not None and 0 < runtime.meta.valid_bpc < 8


@pytest.mark.data  # rescored on the validation splits
def test_card_rows_reproduce(runtime: Runtime, evaluation: dict) -> None:
    rows = {row["corpus"]: row for row in evaluation["rows"]}
    assert list(rows) == [s.name for s in VALIDATION_SPLITS]
    for split in VALIDATION_SPLITS:
        if split.name not in CHEAP_SPLITS:
            continue
        data = split.read()
        row = rows[split.name]
        assert row["bytes"] == len(data)
        assert bits_per_byte(runtime.score(data).nats, len(data)) == pytest.approx(row["model"], abs=1e-6)
        assert compressed_bits_per_byte(data)["bzip2 -9"] == pytest.approx(row["bzip2 -9"], abs=1e-12)


def test_card_shows_the_evaluation_table(evaluation: dict) -> None:
    card = (MODEL / "README.md").read_text()
    assert f"{START}\n{table(evaluation['rows'])}\n{END}" in card
