"""The targets of BENCHMARKS.md's "Targets" table, checked against one run's results, explained when unmet."""

from __future__ import annotations

from typing import Any

from bench import device, kinds, ladder
from bench.common import MB_PER_MIB, mb_and_mib
from bench.completion import section as completion
from bench.cost import per_byte, sequence_bound


def _row(results: dict[str, Any], cell: str, hidden: int, batch: int, method: str) -> dict[str, Any] | None:
    for row in results.get("scoring", {}).get("rows", []):
        if (row["cell"], row["hidden"], row["batch"], row["method"]) == (cell, hidden, batch, method):
            return row
    return None


def _target(name: str, target: str, measured: str, met: bool | None, why: str = "") -> dict[str, Any]:
    return {
        "name": name,
        "target": target,
        "measured": measured,
        "met": met,
        "explanation": "" if met else why,
    }


def speed_targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    prof = results.get("profile", {})
    for cell in ("gru", "lstm"):
        fast = _row(results, cell, 256, 1, "ort-fast-scan")
        if fast is None:
            continue
        why = ""
        if cell == "gru" and "ort_fast_scan" in prof:
            o, e, floor = prof["ort_fast_scan"], prof["pytorch_eager"], prof["gemv_floor_us"]
            why = (
                f"Per step, PyTorch eager runs {e['top_level_ops_per_step']:.0f} ops in "
                f"{e['us_per_step']:.1f} µs "
                f"({e['us_per_top_level_op']:.1f} µs/op); the fast Scan runs {o['kernels_per_step']:.0f} "
                "ORT kernels "
                f"in {o['us_per_step']:.1f} µs ({o['us_per_kernel']:.2f} µs/kernel; the ORT profiler puts "
                f"{sum(v for k, v in o['op_share_pct'].items() if k != 'MatMul'):.0f}% of kernel time "
                "outside the "
                f"one MatMul: Slice/Mul/Add/Gather of the gates and layer norms). The recurrent GEMV alone "
                f"(numpy (1,256)@(256,768)) takes {floor:.1f} µs, so even a Scan that was nothing but "
                "that MatMul "
                f"would be at most {e['us_per_step'] / floor:.1f}x eager: 10x is above this machine's "
                "bound for H=256."
            )
        if cell != "gru":
            eager = _row(results, cell, 256, 1, "pytorch-eager")
            why = (
                f"eager {eager['us_per_step'] if eager else 0:.0f} µs/step vs fast Scan "
                f"{fast['us_per_step']:.0f} µs/step: the same per-kernel overhead as the GRU row (profile "
                "above), with one more LN and the cell-state kernels per step."
            )
        out.append(
            _target(
                f"fast Scan vs PyTorch eager, {cell.upper()} H=256 batch 1",
                ">= 10x",
                f"{fast['vs_eager']:.2f}x",
                fast["vs_eager"] >= 10,
                why,
            )
        )
    bw = results.get("roofline", {}).get("memory_bandwidth", {}).get("gb_per_s")
    gemv = results.get("roofline", {}).get("gemv", {}).get("gflop_per_s")
    for cell in ("gru", "lstm"):
        fast = _row(results, cell, 1024, 1, "ort-fast-scan")
        if fast is None or "achieved_over_bound" not in fast:
            continue
        ratio = 1 / fast["achieved_over_bound"]
        why = (
            f"{fast['weight_bytes_per_step'] / 1e6:.1f} MB of W_h per step at {fast['us_per_step']:.0f} "
            "µs/step = "
            f"{fast['weight_gb_per_s']:.1f} GB/s of weights vs {bw:.1f} GB/s measured copy bandwidth; "
            f"{fast['gflop_per_s']:.1f} GFLOP/s vs {gemv:.1f} GFLOP/s measured numpy GEMV at "
            "(1,1024)x(1024,3072): "
            "the step is one GEMV plus ~35 small kernels, and the GEMV runs at the machine's GEMV rate, "
            "not at "
            "copy bandwidth."
        )
        out.append(
            _target(
                f"fast Scan H=1024 batch 1 fp32 vs memory-bandwidth bound, {cell.upper()}",
                "time <= 1.3x bound",
                f"{ratio:.2f}x bound",
                ratio <= 1.3,
                why,
            )
        )
    for cell in ("gru", "lstm"):
        fp32, int8 = (
            _row(results, cell, 1024, 1, "ort-fast-scan"),
            _row(results, cell, 1024, 1, "ort-fast-scan-int8"),
        )
        if fp32 is None or int8 is None:
            continue
        speed = int8["bytes_per_s"] / fp32["bytes_per_s"]
        cost = per_byte(cell, 1024, "ort-fast-scan-int8", 1)
        why = (
            f"int8 reads {cost['weight_bytes_per_step'] / 1e6:.1f} MB/step instead of "
            f"{4 * cost['weight_bytes_per_step'] / 1e6:.1f} MB, but every step quantizes the state row by "
            "row (Abs, ReduceMax, Div, Round, Clip, Cast: export/quantize/rowwise.py) and rescales each "
            "MatMul's output, and the fp32 weights already sit in the 32 MiB L3 cache, so the 4x fewer bytes "
            "do not turn into 4x less time."
        )
        out.append(
            _target(
                f"int8 vs fp32 speed, fast Scan {cell.upper()} H=1024 batch 1",
                ">= 2x",
                f"{speed:.2f}x",
                speed >= 2,
                why,
            )
        )
    return out


def quality_targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    rows = [r for r in results.get("compression", {}).get("rows", []) if "int8 delta" in r]
    if rows:
        worst = max(rows, key=lambda r: r["int8 delta"])
        why = "; ".join(
            f"{r['corpus']} {r['model']:.3f} -> {r['model int8']:.3f} ({r['int8 delta']:+.4f})" for r in rows
        )
        return [
            _target(
                "int8 BPC loss (models/default, every validation split)",
                "<= 0.01 bits/byte",
                f"{worst['int8 delta']:+.4f} (worst: {worst['corpus']})",
                worst["int8 delta"] <= 0.01,
                f"fp32 -> int8 BPC per split: {why}.",
            )
        ]
    models = results.get("scoring", {}).get("models", [])
    shown = ", ".join(
        f"{m['cell']} H={m['hidden']} {m['int8_bpc_delta_random_weights']:+.4f}"
        for m in models
        if m.get("int8_bpc_delta_random_weights") is not None
    )
    return [
        _target(
            "int8 BPC loss",
            "<= 0.01 bits/byte",
            f"no trained model; random weights: {shown}",
            None,
            "models/default is missing: the loss on a trained model is not measurable in this run "
            "(random-weight deltas on 2 kB are shown, they say little about a trained model)",
        )
    ]


UNCACHED_SLACK = 1.25  # the Python/ORT work between and around the matrix products, on top of the bound


def _uncached_predict_targets(
    results: dict[str, Any], p: dict[str, float], c: dict[str, float]
) -> list[dict[str, Any]]:
    """/v1/predict on an uncached 200-byte context at 1 client, against what the arithmetic allows.

    A 200-byte context is 201 tokens (BOS first) through the sequence graph at batch 1. Its compute bound
    (``bench.cost.sequence_bound``: the recurrent GEMVs at this machine's measured GEMV rate, the rest at its
    GEMM rate) plus the same request with the context already cached (the HTTP/JSON path, no recurrent
    step) is the fastest this request can be; the target allows 25% over that, p99 50% over.
    """
    s, roof = results["serving"], results.get("roofline", {})
    cfg = s.get("model_config")
    if not cfg or "gemv" not in roof or "gemm" not in roof:
        return []
    b = sequence_bound(
        cfg["cell"],
        cfg["layers"],
        cfg["hidden"],
        cfg["embedding"],
        201,
        roof["gemv"]["gflop_per_s"],
        roof["gemm"]["gflop_per_s"],
    )
    floor = b["bound_ms"] + c["p50_ms"]
    why = (
        f"{cfg['cell']} {cfg['layers']}x{cfg['hidden']} (E {cfg['embedding']}): per token "
        f"{b['recurrent_flops_per_token'] / 1e6:.2f} MFLOP of recurrent GEMV at "
        f"{b['gemv_gflop_per_s']:.1f} GFLOP/s + {b['hoisted_flops_per_token'] / 1e6:.2f} MFLOP of GEMM "
        f"(higher layers' inputs, output layer) at {b['gemm_gflop_per_s']:.1f} GFLOP/s = "
        f"{b['us_per_token']:.1f} µs; x 201 tokens = {b['bound_ms']:.1f} ms; + the cached request's p50 "
        f"{c['p50_ms']:.2f} ms (HTTP/JSON, no recurrent step) = {floor:.1f} ms, the fastest this request "
        f"can be on this machine. Measured model share: {p['p50_ms'] - c['p50_ms']:.1f} ms "
        f"({1000 * (p['p50_ms'] - c['p50_ms']) / 201:.0f} µs/token)"
    )
    return [
        _target(
            "/v1/predict p50, 1 client, 200-byte context (uncached)",
            f"<= {UNCACHED_SLACK:.2f} x {floor:.1f} ms (compute bound + HTTP)",
            f"{p['p50_ms']:.2f} ms ({p['p50_ms'] / floor:.2f} x)",
            p["p50_ms"] <= UNCACHED_SLACK * floor,
            why,
        ),
        _target(
            "/v1/predict p99, 1 client, 200-byte context (uncached)",
            f"<= 1.5 x {floor:.1f} ms",
            f"{p['p99_ms']:.2f} ms ({p['p99_ms'] / floor:.2f} x)",
            p["p99_ms"] <= 1.5 * floor,
            why,
        ),
    ]


def serving_targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    s, out = results.get("serving", {}), []
    if "latency_1_client" in s:
        p, c = s["latency_1_client"]["predict_200"], s["latency_1_client"]["predict_200_cached"]
        out.extend(_uncached_predict_targets(results, p, c))
        rss = max(s["rss_after"]["peak_rss_mib"], s["load"]["rss_after"]["peak_rss_mib"])
        out.append(
            _target(
                "server RSS (peak, incl. load run)",
                "<= 200 MB",
                mb_and_mib(rss),
                rss <= 200 / MB_PER_MIB,
                f"peak VmHWM of the server process ({s['model']}); "
                f"{s['rss_before']['rss_mib']:.0f} MiB after ready, {s['rss_after']['rss_mib']:.0f} MiB "
                "after the latency/throughput runs, "
                f"{s['load']['rss_after']['peak_rss_mib']:.0f} MiB after the 64-client load run. "
                "Scoring memory is bounded by LNRNN_CHUNK_TOKENS; the growth under 64 clients was the "
                "same with ORT's CPU arena off and with MALLOC_ARENA_MAX=2 (measured while choosing the "
                "defaults), so it is neither of those",
            )
        )
        cold = s["cold_start_s"]["median_s"]
        out.append(
            _target(
                "cold start (spawn to /health/ready 200)",
                "<= 1.5 s",
                f"{cold:.2f} s",
                cold <= 1.5,
                "import of fastapi/pydantic/onnxruntime plus session creation",
            )
        )
        ld = s["load"]
        out.append(
            _target(
                f"load: {ld['clients']} clients for {ld['duration_s']} s",
                "0 errors",
                f"{ld['errors']} errors, p99 {ld['p99_ms']:.0f} ms, RSS {ld['rss_growth_pct']:+.1f}%",
                ld["errors"] == 0,
                "; ".join(ld["error_samples"]),
            )
        )
    venv = results.get("footprint", {}).get("serve_venv")
    if isinstance(venv, dict):
        mb = venv["size_mib"] * MB_PER_MIB
        out.append(
            _target(
                "serve-only venv size",
                "<= 250 MB",
                f"{mb:.0f} MB (torch import fails: {venv['torch_import_fails']})",
                mb <= 250 and venv["torch_import_fails"],
                "du of the fresh venv",
            )
        )
    return out


def _typing_why(results: dict[str, Any], p50_ms: float) -> str:
    """Where a typed character's p50 goes, from this run's numbers."""
    t = results["typing"]
    own, http, load = t["in_process"], t["http_floor"]["p50_ms"], t["load_1min"]
    model = own["feed_p50_ms"] + own["decode_p50_ms"]
    return (
        f"per character the model runs one T=1 call of the served graph ({own['served']}): "
        f"{own['feed_p50_ms']:.2f} ms, plus {own['decode_p50_ms']:.2f} ms of top-{t['top_k']} decoding, "
        f"measured in process. A bare HTTP round trip (GET /health/live, same client) takes p50 "
        f"{http:.2f} ms. The remaining {p50_ms - model - http:.2f} ms of the p50 is the server's request "
        "path outside the model (routing, validation, the hand-offs to the inference gate and the batch "
        "scheduler thread, JSON). Client and server share "
        f"the 2 cores; load average {load[0]:.1f} -> {load[1]:.1f} during the run."
    )


def typing_targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    t = results.get("typing", {})
    if "session" not in t:
        return []
    append, stateless = t["session"]["append"], t["stateless"]["predict"]
    errors = f" ({t['errors']} errors)" if t["errors"] else ""
    return [
        _target(
            "typing per append p50 (session, 1 client)",
            "<= 3 ms",
            f"{append['p50_ms']:.2f} ms{errors}",
            append["p50_ms"] <= 3 and not t["errors"],
            _typing_why(results, append["p50_ms"]),
        ),
        _target(
            "typing per append p99 (session, 1 client)",
            "<= 10 ms",
            f"{append['p99_ms']:.2f} ms{errors}",
            append["p99_ms"] <= 10 and not t["errors"],
            _typing_why(results, append["p50_ms"]) + f" p50 -> p99: {append['p99_ms']:.2f} ms.",
        ),
        _target(
            "stateless typing p50 (/v1/predict, prefix cache, 1 client)",
            "<= 4 ms",
            f"{stateless['p50_ms']:.2f} ms{errors}",
            stateless["p50_ms"] <= 4 and not t["errors"],
            _typing_why(results, stateless["p50_ms"]),
        ),
    ]


def batching_targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    b = results.get("batching", {})
    if "ratios" not in b:
        return []
    ra, su = b["ratios"], b["summary"]
    why = (
        "The unbatched server already keeps both cores busy (4 requests at once, one ORT thread each); "
        "batching can only add what a bigger call gains per core"
    )
    choices = results.get("int8_choices", {})
    served = [r for r in choices.get("rows", []) if r.get("variant") == choices.get("shipped")]
    if served:
        one, many = served[0]["us_per_byte_b1"], served[0]["us_per_byte_b32"]
        why += (
            f". Measured in this run (int8 choices, served graph, one thread): {many:.1f} us per stream-byte "
            f"at 32 rows against {one:.1f} at 1 row, {one / many:.1f}x per core"
        )
    why += "; the load generator shares the 2 cores."
    return [
        _target(
            "32 clients, distinct 200-byte /v1/predict: batched / unbatched req/s",
            ">= 3x",
            f"{ra['predict_32_req_per_s']:.2f}x ({su['batched']['predict_32_req_per_s']:.0f} vs "
            f"{su['unbatched']['predict_32_req_per_s']:.0f} req/s)",
            ra["predict_32_req_per_s"] >= 3,
            why,
        ),
        _target(
            "32 clients, distinct 200-byte /v1/predict: server CPU per request, unbatched / batched",
            ">= 3x",
            f"{ra['predict_32_cpu_per_request_saving']:.2f}x "
            f"({su['batched']['predict_32_server_cpu_ms']:.1f} vs "
            f"{su['unbatched']['predict_32_server_cpu_ms']:.1f} ms)",
            ra["predict_32_cpu_per_request_saving"] >= 3,
            why,
        ),
        _target(
            "32 clients, distinct 200-byte /v1/predict: batched server cores busy",
            ">= 1.6",
            f"{su['batched']['predict_32_server_cores_busy']:.2f} (load client "
            f"{su['batched']['predict_32_client_cores_busy']:.2f})",
            su["batched"]["predict_32_server_cores_busy"] >= 1.6,
            "Calls are dealt to the lanes by their work (rows x tokens); what the load client and the event "
            "loop's HTTP work leave of the 2 cores bounds the rest.",
        ),
        _target(
            "32 clients, distinct 200-byte /v1/predict: batched p99 / p50",
            "<= 3",
            f"{ra['batched_p99_over_p50']:.2f}",
            ra["batched_p99_over_p50"] <= 3,
        ),
        _target(
            "32 clients scoring distinct 10 kB texts: batched / unbatched bytes/s",
            ">= 3x",
            f"{ra['score_32_bytes_per_s']:.2f}x",
            ra["score_32_bytes_per_s"] >= 3,
            why,
        ),
        _target(
            "1 client /v1/predict p50: batched within 10% of unbatched",
            "<= 1.10x",
            f"{ra['predict_1_client_p50']:.2f}x",
            ra["predict_1_client_p50"] <= 1.10,
            "A request alone runs its calls in its own thread, as without batching; the rest is noise "
            "between the two server processes.",
        ),
    ]


# paq8px v216 -8L (CM + LSTM, -O2 build) on the same validation splits, measured on this machine when the
# compression targets were set; too slow (~3 kB/s) to re-run in `make bench`.
PAQ8PX_8L = {
    "tinyshakespeare": 2.106,
    "warandpeace": 1.760,
    "ptb-char-valid": 1.084,
    "wikitext2-test": 1.908,
    "lcet10": 1.980,
}


def compress_targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    c = results.get("compress", {})
    if "rows" not in c:
        return []
    rows = c["rows"]

    def bpb(row: dict[str, Any], name: str) -> float:
        return float(row["classic"][name]["bits_per_byte"])

    def lnrnn(row: dict[str, Any]) -> float:
        return float(row["lnrnn adaptive"]["bits_per_byte"])

    valid = [r for r in rows if r["kind"] == "validation"]
    ood = [r for r in rows if r["kind"] != "validation"]
    beats = [r["text"] for r in valid if lnrnn(r) < min(bpb(r, "PPMd o6"), bpb(r, "xz -9e"))]
    paq = [r for r in valid if r["text"] in PAQ8PX_8L]
    paq_beaten = [r["text"] for r in paq if lnrnn(r) < PAQ8PX_8L[r["text"]]]
    ood_ok = [r["text"] for r in ood if lnrnn(r) <= bpb(r, "PPMd o6")]
    ood_worst = max(ood, key=lambda r: lnrnn(r) - bpb(r, "PPMd o6")) if ood else None
    speed = c["speed"]
    fast = speed.get("format 2", speed)  # results before format 2 was measured have one speed only
    slower = min(fast["compress_kb_s"], fast["decompress_kb_s"])
    both = [r for r in valid if "format 1 adaptive" in r]
    gaps = [
        (r["text"], mode, r[f"lnrnn {mode}"]["bits_per_byte"] - r[f"format 1 {mode}"]["bits_per_byte"])
        for r in both
        for mode in ("neural-only", "adaptive")
    ]
    out = [
        _target(
            "lnrnn compress (adaptive) < PPMd o6 and < xz -9e, every validation split",
            f"{len(valid)}/{len(valid)}",
            f"{len(beats)}/{len(valid)}",
            len(beats) == len(valid),
            f"not on {', '.join(r['text'] for r in valid if r['text'] not in beats)}",
        ),
        _target(
            "goal: < paq8px -8L on every split it was measured on",
            f"{len(paq)}/{len(paq)}",
            f"{len(paq_beaten)}/{len(paq)}",
            len(paq_beaten) == len(paq),
            f"not on {', '.join(r['text'] for r in paq if r['text'] not in paq_beaten)}",
        ),
    ]
    if ood_worst is not None:
        gap = lnrnn(ood_worst) - bpb(ood_worst, "PPMd o6")
        out.append(
            _target(
                "out of domain: no worse than PPMd o6",
                f"{len(ood)}/{len(ood)}",
                f"{len(ood_ok)}/{len(ood)}",
                len(ood_ok) == len(ood),
                f"{ood_worst['text']}: {lnrnn(ood_worst):.3f} vs PPMd o6 {bpb(ood_worst, 'PPMd o6'):.3f} "
                f"bits/byte (+{gap:.3f}); the network alone costs "
                f"{ood_worst['lnrnn neural-only']['bits_per_byte']:.3f} there (it never saw such text), so "
                "the online context and match models carry it",
            )
        )
    if gaps:
        worst = max(gaps, key=lambda g: g[2])
        out.append(
            _target(
                "format 2 vs format 1, every validation split (neural-only and adaptive)",
                "<= +0.02 bits/byte",
                f"worst {worst[2]:+.4f} ({worst[0]}, {worst[1]})",
                worst[2] <= 0.02,
                "",
            )
        )
    out.append(
        _target(
            f"compress and decompress speed on {speed['bytes_in']:,} bytes (format 2, both cores)",
            ">= 20 kB/s",
            f"{fast['compress_kb_s']:.1f} / {fast['decompress_kb_s']:.1f} kB/s",
            slower >= 20,
            "Both directions make the same step calls one byte per block at a time (the decoder cannot do "
            "otherwise); per step: onnxruntime's integer products, ~80 numpy passes and the mixer, one lane "
            "per core.",
        )
    )
    return out


def evaluate(results: dict[str, Any]) -> list[dict[str, Any]]:
    return (
        speed_targets(results)
        + quality_targets(results)
        + serving_targets(results)
        + typing_targets(results)
        + batching_targets(results)
        + compress_targets(results)
        + completion.targets(results)
        + device.targets(results)
        + ladder.targets(results)
        + kinds.targets(results)
    )
