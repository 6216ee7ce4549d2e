"""The page's device mode in headless Chromium against a real `lnrnn serve` (models/default, precision int8w,
so the device and the server compute the same numbers).

* First load: a fresh browser profile per run (nothing cached, the service worker registers): bytes on the
  wire for every request, the page's own and its service worker's (body and headers, as Chromium counts
  them), the runtime's and the model's files among them, and the time from navigation to "ready" and to the
  first suggestion (one character typed).
* Per keystroke: one character typed at a time (Playwright's keyboard), the page's own measure
  (``data-ms`` on the suggestions: from the input event to the suggestions in the DOM) on this device and
  through the server's session (the switch set to "the server"); the same text and context in both.
* Heat map of 4 KiB: ``m.score(text)`` of lnrnn.js in the page, and ``POST /v1/surprisal`` (what server mode
  asks for) from a client on the same machine.

python -m bench.device [--quick]    # prints the JSON; `make bench` records it as the "device" section
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

from bench.serving import model_dir, running_server
from lnrnn.train.recipes.corpora import VALIDATION_SPLITS

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]
CONTEXT_CHARS = 200
HEAT_BYTES = 4096
TOP_K = 5
IN_STEP = """(n) => {
    const s = document.querySelector('[data-testid=suggestions]');
    return s.dataset.state === 'ready' && s.dataset.length === String(n)
        && document.querySelector('[data-testid=input]').value.length === n;
}"""


def stats(values: list[float]) -> dict[str, float]:
    a = np.asarray(values, dtype=np.float64)
    return {
        "n": len(values),
        "p50": float(np.percentile(a, 50)),
        "p99": float(np.percentile(a, 99)),
        "mean": float(a.mean()),
        "max": float(a.max()),
    }


def ready(page: Page, mode: str) -> None:
    page.wait_for_function(
        "(mode) => { const r = document.querySelector('[data-testid=runs-on]');"
        " return r.dataset.mode === mode && r.dataset.state === 'ready'; }",
        arg=mode,
        timeout=120_000,
    )


def first_load(browser: Browser, url: str) -> dict[str, Any]:
    """One visit with a fresh profile: bytes per request (page and service worker) and the times."""
    context = browser.new_context()
    requests: list[dict[str, Any]] = []

    def finished(request: Any) -> None:
        sizes = request.sizes()
        if sizes["responseBodySize"] >= 0:  # < 0: answered by the service worker, no bytes on the wire
            response = request.response()
            requests.append(
                {
                    "path": request.url.removeprefix(url),
                    "bytes": sizes["responseBodySize"] + sizes["responseHeadersSize"],
                    "encoding": response.headers.get("content-encoding", "") if response else "",
                    "service_worker": request.service_worker is not None,
                }
            )

    context.on("requestfinished", finished)
    page = context.new_page()
    start = time.perf_counter()
    page.goto(url + "/")
    ready(page, "device")
    loaded = time.perf_counter() - start
    page.get_by_test_id("input").press_sequentially("T")
    page.wait_for_function(IN_STEP, arg=1)
    first = time.perf_counter() - start
    page.wait_for_function("() => navigator.serviceWorker.controller !== null")
    time.sleep(0.3)  # late requestfinished events
    context.close()
    return {"ready_s": loaded, "first_suggestion_s": first, "requests": requests}


def keystrokes(page: Page, context_text: str, typed: str) -> list[float]:
    """Type ``typed`` after ``context_text`` one key at a time; the page's input -> suggestions times."""
    box = page.get_by_test_id("input")
    box.fill(context_text)
    page.wait_for_function(IN_STEP, arg=len(context_text))
    out = []
    for i, char in enumerate(typed):
        page.keyboard.type(char)
        page.wait_for_function(IN_STEP, arg=len(context_text) + i + 1)
        out.append(float(page.get_by_test_id("suggestions").get_attribute("data-ms") or "nan"))
    return out


def heat_on_device(page: Page, text: str, runs: int) -> list[float]:
    """Milliseconds of lnrnn.js ``score(text)`` in the page (the model loaded once, as the page has it)."""
    seconds = page.evaluate(
        """async ([text, runs]) => {
            const { LnRnn } = await import('./page/lnrnn.js');
            const m = await LnRnn.load(new URL('.', document.baseURI).href);
            const out = [];
            for (let i = 0; i < runs; i += 1) {
                const t0 = performance.now();
                const r = await m.score(text);
                out.push(performance.now() - t0);
                if (r.per_char_bits.length !== text.length) throw new Error('wrong length');
            }
            return out;
        }""",
        [text, runs],
    )
    return [float(s) for s in seconds]


def heat_on_server(url: str, text: str, runs: int) -> list[float]:
    out = []
    with httpx.Client(base_url=url, timeout=120) as client:
        for _ in range(runs):
            start = time.perf_counter()
            response = client.post("/v1/surprisal", json={"text": text, "top_k": 3})
            out.append(1000 * (time.perf_counter() - start))
            response.raise_for_status()
    return out


def measure(quick: bool = False) -> dict[str, Any]:
    runs = 5
    typed_chars = 60 if quick else 200
    text = VALIDATION_SPLITS[0].read().decode("ascii")  # Tiny Shakespeare validation split: ASCII
    context_text, typed = text[:CONTEXT_CHARS], text[CONTEXT_CHARS : CONTEXT_CHARS + typed_chars]
    heat_text = text[1000 : 1000 + HEAT_BYTES]
    load_start = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="lnrnn-device-") as tmp:
        model, described = model_dir(Path(tmp))
        log = Path(tmp) / "server.log"
        env = {"LNRNN_PRECISION": "int8w"}
        with running_server(model, log, env=env) as (url, _, _), sync_playwright() as p:
            manifest = httpx.get(f"{url}/v1/device", timeout=30).json()
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            loads = [first_load(browser, url) for _ in range(runs)]
            context: BrowserContext = browser.new_context()
            page = context.new_page()
            page.goto(url + "/")
            ready(page, "device")
            device_ms = keystrokes(page, context_text, typed)
            device_heat = heat_on_device(page, heat_text, runs)
            page.get_by_label("the server").check()
            ready(page, "server")
            server_ms = keystrokes(page, context_text, typed)
            context.close()
            browser.close()
            server_heat = heat_on_server(url, heat_text, runs)
    model_url, runtime = manifest["model"]["url"], manifest["runtime"]
    by_file: dict[str, list[int]] = {"model": [], "runtime": [], "all": []}
    for visit in loads:
        network = visit["requests"]
        by_file["all"].append(sum(r["bytes"] for r in network))
        by_file["model"].append(sum(r["bytes"] for r in network if r["path"].endswith(model_url)))
        ort = (runtime["module"]["url"], runtime["wasm"]["url"])
        by_file["runtime"].append(sum(r["bytes"] for r in network if r["path"].endswith(ort)))
    return {
        "model": described,
        "precision": manifest["model"]["precision"],
        "model_file": manifest["model"]["file"],
        "runtime_version": runtime["version"],
        "sizes": {
            "model": {k: v for k, v in manifest["model"].items() if k.endswith("bytes")},
            "runtime_module": {k: v for k, v in runtime["module"].items() if k.endswith("bytes")},
            "runtime_wasm": {k: v for k, v in runtime["wasm"].items() if k.endswith("bytes")},
        },
        "first_load": {
            "runs": runs,
            "bytes_median": {k: float(np.median(v)) for k, v in by_file.items()},
            "requests": loads[0]["requests"],
            "ready_s": stats([v["ready_s"] for v in loads]),
            "first_suggestion_s": stats([v["first_suggestion_s"] for v in loads]),
        },
        "keystroke_ms": {"device": stats(device_ms), "server": stats(server_ms)},
        "typed_chars": typed_chars,
        "context_chars": CONTEXT_CHARS,
        "heat_map_ms": {"bytes": HEAT_BYTES, "device": stats(device_heat), "server": stats(server_heat)},
        "load_1min": [load_start[0], os.getloadavg()[0]],
    }


# --- BENCHMARKS.md ---------------------------------------------------------------------------------------

FIRST_LOAD_BYTES, KEY_P50_MS, KEY_P99_MS = 5_000_000, 5.0, 20.0  # the goals


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The device mode's goals: first-load bytes, and input -> suggestions on the device."""
    d = results.get("device", {})
    if "first_load" not in d:
        return []
    from bench.targets import _target

    sent = d["first_load"]["bytes_median"]["all"]
    keys = d["keystroke_ms"]["device"]
    why = (
        "the runtime's WebAssembly is 14.8 MB raw, 2.78 MB as brotli (quality 9); the model's int8 weights "
        "hardly compress (gzip 2.11 of 2.36 MB)"
    )
    return [
        _target(
            "device first load, bytes on the wire (default model)",
            "<= 5 MB",
            f"{sent / 1e6:.2f} MB",
            sent <= FIRST_LOAD_BYTES,
            why,
        ),
        _target(
            "device keystroke p50 (input event -> suggestions in the DOM)",
            f"<= {KEY_P50_MS:g} ms",
            f"{keys['p50']:.2f} ms",
            keys["p50"] <= KEY_P50_MS,
            "one T=1 call of the sequence graph in wasm",
        ),
        _target(
            "device keystroke p99",
            f"<= {KEY_P99_MS:g} ms",
            f"{keys['p99']:.2f} ms",
            keys["p99"] <= KEY_P99_MS,
            "the p99 is the rare keystroke whose top-5 search expands multi-byte prefixes, and GC pauses",
        ),
    ]


def render(res: dict[str, Any]) -> list[str]:
    from bench.report import table

    d = res["device"]
    f, sizes = d["first_load"], d["sizes"]
    keys, heat = d["keystroke_ms"], d["heat_map_ms"]
    mb = lambda n: f"{n / 1e6:.2f}"  # noqa: E731
    load = d["load_1min"]
    return [
        "### The page on the device (`bench/device.py`)",
        "",
        f"Model: {d['model']}, `{d['model_file']}` ({d['precision']}: the server runs the same precision), "
        f"ONNX Runtime Web {d['runtime_version']} (WebAssembly, 1 thread), headless Debian Chromium through "
        f"Playwright, server and browser on the same 2 cores. Load average (1 min) {load[0]:.2f} at start, "
        f"{load[1]:.2f} at end. Medians of {f['runs']} first visits, each with a fresh profile.",
        "",
        *table(
            ["file", "raw MB", "gzip MB", "brotli MB", "on the wire, first visit MB"],
            [
                [
                    d["model_file"],
                    mb(sizes["model"]["bytes"]),
                    mb(sizes["model"]["gzip_bytes"]),
                    "",
                    mb(f["bytes_median"]["model"]),
                ],
                [
                    "runtime (.mjs + .wasm)",
                    mb(sizes["runtime_module"]["bytes"] + sizes["runtime_wasm"]["bytes"]),
                    mb(sizes["runtime_module"]["gzip_bytes"] + sizes["runtime_wasm"]["gzip_bytes"]),
                    mb(sizes["runtime_module"]["br_bytes"] + sizes["runtime_wasm"]["br_bytes"]),
                    mb(f["bytes_median"]["runtime"]),
                ],
                [
                    "everything (page, manifest, service worker, headers)",
                    "",
                    "",
                    "",
                    mb(f["bytes_median"]["all"]),
                ],
            ],
        ),
        "",
        f"First visit: ready in {f['ready_s']['p50']:.2f} s (p50; max {f['ready_s']['max']:.2f}), first "
        f"suggestion {f['first_suggestion_s']['p50']:.2f} s after navigation (max "
        f"{f['first_suggestion_s']['max']:.2f}).",
        "",
        *table(
            ["per keystroke (input event -> suggestions in the DOM)", "n", "p50 ms", "p99 ms", "max ms"],
            [
                [
                    name,
                    keys[k]["n"],
                    f"{keys[k]['p50']:.2f}",
                    f"{keys[k]['p99']:.2f}",
                    f"{keys[k]['max']:.1f}",
                ]
                for name, k in (
                    ("this device (lnrnn.js)", "device"),
                    ("the server (session append)", "server"),
                )
            ],
        ),
        "",
        f"{d['typed_chars']} characters of the Tiny Shakespeare validation split typed after a "
        f"{d['context_chars']}-character context; the page's clock (performance.now, 0.1 ms steps in a page "
        "that is not cross-origin isolated).",
        "",
        *table(
            [f"heat map of {heat['bytes']:,} bytes", "n", "p50 ms", "max ms"],
            [
                [
                    "this device: lnrnn.js score() in the page",
                    heat["device"]["n"],
                    f"{heat['device']['p50']:.0f}",
                    f"{heat['device']['max']:.0f}",
                ],
                [
                    "the server: POST /v1/surprisal (bits and top-3 alternatives per character)",
                    heat["server"]["n"],
                    f"{heat['server']['p50']:.0f}",
                    f"{heat['server']['max']:.0f}",
                ],
            ],
        ),
        "",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer keystrokes")
    args = parser.parse_args()
    print(json.dumps(measure(args.quick), indent=2))


if __name__ == "__main__":
    main()
