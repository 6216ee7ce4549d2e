"""`bench.typing_latency.measure` in quick mode against a real `lnrnn serve` of a tiny random model.

No timing assertions: every request got its 2xx, the numbers exist and p50 <= p99.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from bench import typing_latency
from lnrnn.export.api import export_model
from lnrnn.train.model import ByteLM, ModelConfig
from lnrnn.train.recipes.corpora import VALIDATION_SPLITS

pytestmark = pytest.mark.data  # types the start of the Tiny Shakespeare validation split


def positive(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value > 0


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_quick_typing_run(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = tmp_path / "tiny"
    export_model(ByteLM(ModelConfig(cell="gru", hidden=32, layers=1)), model, train_data="random (test)")
    res = typing_latency.measure(
        VALIDATION_SPLITS[0].read(20_000), quick=True, model=model, log=lambda _: None
    )

    assert res["errors"] == 0
    assert res["session"]["total_bytes_ok"] is True
    runs = {
        "append": res["session"]["append"],
        "stateless": res["stateless"]["predict"],
        "uncached": res["uncached_predict"],
    }
    assert runs["append"]["requests"] == runs["stateless"]["requests"] == res["typed_chars"] == 200
    assert runs["uncached"]["requests"] >= 200
    for name, r in runs.items():
        assert r["errors"] == 0, (name, r["error_samples"])
        assert positive(r["p50_ms"]) and r["p50_ms"] <= r["p99_ms"], (name, r)
        assert positive(r["mean_ms"]), name
    assert positive(res["in_process"]["feed_p50_ms"]) and positive(res["in_process"]["decode_p50_ms"])
    # the session and /v1/predict see the same contexts: identical candidates (row-wise exact numerics)
    assert res["same_candidates"] == res["typed_chars"]
