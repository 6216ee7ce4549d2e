"""`python -m bench.run --quick` end to end (a subprocess): the JSON has every section, typed and positive.

No timing assertions: only the schema (keys, types, positive numbers) is checked.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.data  # the compression section reads the validation splits

REPO = Path(__file__).resolve().parents[2]
SECTIONS = ("roofline", "scoring", "profile", "serving", "batching", "footprint", "compression", "training")


def positive(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value > 0


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_quick_run_writes_the_schema(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench.run", "--quick", "--out", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=380,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    res = json.loads(out.read_text())
    assert out.with_suffix(".md").read_text().startswith("# lnrnn benchmarks")
    assert res["mode"] == "quick"
    for name in SECTIONS:
        assert name in res and "error" not in res[name], name
    assert isinstance(res["machine"]["commit"], str)
    assert positive(res["roofline"]["memory_bandwidth"]["gb_per_s"])
    assert positive(res["roofline"]["gemm"]["gflop_per_s"])

    rows = res["scoring"]["rows"]
    assert {r["method"] for r in rows} == {
        "pytorch-eager",
        "ort-step-loop",
        "ort-generic-scan",
        "ort-fast-scan",
        "ort-fast-scan-int8",
    }
    assert {r["batch"] for r in rows} == {1, 32}
    for r in rows:
        for key in (
            "bytes_per_s",
            "bytes_per_s_min",
            "bytes_per_s_max",
            "vs_eager",
            "us_per_step",
            "weight_bytes_per_byte",
            "flops_per_byte",
            "bound_bytes_per_s",
            "achieved_over_bound",
        ):
            assert positive(r[key]), (key, r)
        assert r["runs"] >= 3 and isinstance(r["prefix"], bool)

    s = res["serving"]
    for lat in s["latency_1_client"].values():
        assert lat["errors"] == 0 and positive(lat["p50_ms"]) and lat["p99_ms"] >= lat["p50_ms"]
    assert set(s["predict_throughput"]) == {"1", "8", "32"}
    assert all(positive(t["req_per_s"]) for t in s["predict_throughput"].values())
    assert positive(s["cold_start_s"]["median_s"]) and positive(s["rss_before"]["rss_mib"])
    assert s["load"]["errors"] == 0 and isinstance(s["load"]["rss_growth_pct"], float)

    f = res["footprint"]
    assert f["serve_venv"] == "skipped (quick mode)"
    assert all(positive(t["median_s"]) and t["imports_torch"] is False for t in f["import_time"].values())
    for row in res["compression"]["rows"]:
        assert positive(row["bytes"]) and all(positive(row[k]) for k in ("gzip -9", "bzip2 -9", "xz -9e"))
    assert positive(res["training"]["modes"]["naive"]["chars_per_s"])
    assert positive(res["training"]["modes"]["hoisted"]["chars_per_s"])
    for t in res["targets"]:
        assert set(t) == {"name", "target", "measured", "met", "explanation"}
        assert t["met"] in (True, False, None)
