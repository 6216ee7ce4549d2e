"""Device mode: the page runs the model in the browser (serve/page/lnrnn.js on ONNX Runtime Web).

In-process: the weight-only int8 precision the device runs, the manifest and how its files are served. Then
real servers: lnrnn.js under ``node --test`` against the Python scorer's numbers, and the page in Debian's
chromium (one server and one browser for the module): device mode by default, no request while typing, the
server's numbers, offline after one visit, and switching to the server and back.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from playwright.sync_api import Browser, Page, Request, expect, sync_playwright

from lnrnn.contract import SEQUENCE_GRAPH, SEQUENCE_INT8W_FILE
from lnrnn.export.quantize.directory import quantize_dir
from lnrnn.serve.app import create_app
from lnrnn.serve.engine.runtime import ModelLoadError, Runtime
from lnrnn.serve.page import route
from tests.helpers import REPO, VERIFY_DATA, TestClient, TinyModel, error, free_port, server, settings_for

NODE = shutil.which("node")
KEY = "device-test-key"
DEFAULT_MODEL = REPO / "models" / "default"
# multi-byte characters (2, 3 and 4 bytes) so that the search for whole characters expands prefixes
LINE = "Shall I compare thee to a summer’s day? Ünïcödé 日本 🙂"
TEXTS = ["", "T", "héllo wörld, 日本語 ok 🙂 ", LINE, ("Longer than one chunk: é" * 30) + " end"]
PROB_TOL, BITS_TOL = 1e-4, 1e-3  # the device's numbers vs the server's: top-k probabilities, bits per char
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]


@pytest.fixture(scope="module")
def int8w_dir(tiny: TinyModel, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model with its weight-only int8 pair, written as `lnrnn quantize --precision int8w` does."""
    out = tmp_path_factory.mktemp("tiny-int8w")
    shutil.copytree(tiny.dir, out, dirs_exist_ok=True)
    section, check = quantize_dir(out, VERIFY_DATA, precision="int8w")
    assert section["kept"] and not check.failures
    return out


@pytest.fixture(scope="module")
def device_client(int8w_dir: Path) -> Iterator[TestClient]:
    with TestClient(create_app(settings_for(int8w_dir, precision="int8w"))) as c:
        yield c


# --- the precision the device runs, in the server --------------------------------------------------------


def test_int8w_is_a_serving_precision_with_fp32_arithmetic(int8w_dir: Path, tmp_path: Path) -> None:
    int8w = Runtime.load(int8w_dir, device="cpu", precision="int8w")
    fp32 = Runtime.load(int8w_dir, device="cpu", precision="fp32")
    assert int8w.precision == "int8w" and not int8w.int8 and "int8w" in int8w.describe()
    assert int8w.meta.int8_bpc_delta is not None and fp32.meta.int8_bpc_delta is None
    data = "precision: héllo wörld, 日本語 ".encode() * 4
    a, b = int8w.score(data).nats, fp32.score(data).nats
    assert a != b and abs(a - b) / len(data) < 0.01  # other weights, nearly the same numbers
    assert Runtime.load(int8w_dir, device="cpu").precision == "fp32"  # auto never picks int8w
    plain = tmp_path / "plain"
    shutil.copytree(int8w_dir, plain, ignore=shutil.ignore_patterns("*.int8w.onnx"))
    with pytest.raises(ModelLoadError, match="no step.int8w.onnx and sequence.int8w.onnx .*--quantize int8w"):
        Runtime.load(plain, device="cpu", precision="int8w")


def test_models_route_names_the_precision(device_client: TestClient) -> None:
    info = device_client.get("/v1/models").json()["models"][0]
    assert info["precision"] == "int8w" and info["int8"] is False
    assert info["files"][SEQUENCE_INT8W_FILE] < info["files"]["sequence.onnx"] / 2


# --- the manifest and the files ---------------------------------------------------------------------------


def test_manifest_names_the_weight_only_model_and_the_runtime(
    device_client: TestClient, int8w_dir: Path
) -> None:
    response = device_client.get("/v1/device")
    assert response.status_code == 200 and response.headers["cache-control"] == "no-cache"
    body = response.json()
    model, runtime = body["model"], body["runtime"]
    assert (model["precision"], model["file"]) == ("int8w", SEQUENCE_INT8W_FILE)
    assert model["bytes"] == (int8w_dir / SEQUENCE_INT8W_FILE).stat().st_size
    assert 0 < model["gzip_bytes"] < model["bytes"]
    assert (model["inputs"], model["outputs"]) == (
        list(SEQUENCE_GRAPH.input_names),
        list(SEQUENCE_GRAPH.output_names),
    )
    assert (model["bos_id"], model["vocab_size"], model["state_size"]) == (256, 257, 32)
    assert np.asarray(model["initial_state"]).shape == (2, 32)
    assert body["server"] == {"precision": "int8w", "same_numbers": True}
    assert runtime is not None, body["runtime_missing"]
    assert runtime["package"] == "onnxruntime-web" and runtime["threads"] == 1
    assert (
        runtime["version"]
        == json.loads((REPO / "package.json").read_text())["dependencies"]["onnxruntime-web"]
    )
    assert runtime["module"]["url"].endswith("/ort.wasm.bundle.min.mjs")
    assert runtime["wasm"]["url"].endswith("/ort-wasm-simd-threaded.wasm")
    assert runtime["wasm"]["br_bytes"] < runtime["wasm"]["gzip_bytes"] < runtime["wasm"]["bytes"] / 3


def test_files_are_served_by_hash_compressed_and_cached_for_a_year(
    device_client: TestClient, int8w_dir: Path
) -> None:
    body = device_client.get("/v1/device").json()
    raw = (int8w_dir / SEQUENCE_INT8W_FILE).read_bytes()
    url = "/" + body["model"]["url"]
    plain = device_client.get(url, headers={"Accept-Encoding": "identity"})
    assert plain.status_code == 200 and plain.content == raw
    assert plain.headers["content-length"] == str(len(raw)) and "content-encoding" not in plain.headers
    assert plain.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert plain.headers["content-type"] == "application/octet-stream"
    etag = plain.headers["etag"]
    assert etag.strip('"') in url
    gz = device_client.get(
        url, headers={"Accept-Encoding": "gzip, deflate, br"}
    )  # no brotli copy of the model
    assert gz.headers["content-encoding"] == "gzip" and gz.headers["vary"] == "Accept-Encoding"
    assert gz.headers["content-length"] == str(body["model"]["gzip_bytes"]) and gz.content == raw  # decoded
    assert gz.headers["etag"] != etag  # one tag per representation
    again = device_client.get(url, headers={"If-None-Match": etag, "Accept-Encoding": "identity"})
    assert again.status_code == 304 and again.headers["cache-control"].endswith("immutable")
    wasm = device_client.get(
        "/" + body["runtime"]["wasm"]["url"], headers={"Accept-Encoding": "gzip;q=0.5, br"}
    )
    assert wasm.headers["content-encoding"] == "br" and wasm.headers["content-type"] == "application/wasm"
    assert wasm.headers["content-length"] == str(body["runtime"]["wasm"]["br_bytes"])
    assert wasm.content[:4] == b"\0asm"
    refused = device_client.get(
        "/" + body["runtime"]["module"]["url"], headers={"Accept-Encoding": "br;q=0, gzip"}
    )
    assert refused.headers["content-encoding"] == "gzip" and refused.headers["content-type"].startswith(
        "text/javascript"
    )
    digest = body["model"]["url"].split("/")[2]
    for bad in (
        f"/v1/device/{digest}/sequence.onnx",  # a file of the model directory, but not the one listed
        f"/v1/device/{'0' * 16}/{SEQUENCE_INT8W_FILE}",
        f"/v1/device/{digest}/..%2F{SEQUENCE_INT8W_FILE}",
        f"/page/ort/{digest}/runtime.json",
        "/page/ort/x/ort.wasm.bundle.min.mjs",
    ):
        error(device_client.get(bad), 404, "not_found")


def test_page_files_service_worker_and_policy(device_client: TestClient) -> None:
    page = device_client.get("/")
    csp = page.headers["content-security-policy"]
    assert "script-src 'self' 'wasm-unsafe-eval'" in csp and "connect-src 'self'" in csp  # still same-origin
    assert 'data-testid="runs-on"' in page.text and 'type="module"' in page.text
    sw = device_client.get("/sw.js")
    assert sw.status_code == 200 and sw.headers["content-type"].startswith("text/javascript")
    assert sw.headers["service-worker-allowed"] == "/" and sw.headers["cache-control"] == "no-cache"
    js = device_client.get("/page/page.js", headers={"Accept-Encoding": "gzip"})
    assert js.headers["content-encoding"] == "gzip" and js.headers["etag"].endswith('-gzip"')
    assert int(js.headers["content-length"]) < len(js.content) / 2  # sent compressed, decoded here
    unchanged = device_client.get("/page/page.js", headers={"If-None-Match": js.headers["etag"]})
    assert unchanged.status_code == 304 and unchanged.headers["cache-control"] == "no-cache"
    module = device_client.get("/page/lnrnn.js")
    assert module.status_code == 200 and "export class LnRnn" in module.text
    for text in (module.text, sw.text):
        assert "http://" not in text and "https://" not in text  # nothing from another origin
    error(device_client.get("/page/runtime.mjs"), 404, "not_found")  # the install script is not a page file


def test_runtime_missing_and_api_key(int8w_dir: Path, tmp_path: Path) -> None:
    settings = settings_for(int8w_dir, web_dir=tmp_path, api_key=KEY)
    with TestClient(create_app(settings)) as c:
        error(c.get("/v1/device"), 401, "unauthorized")  # the model is the key's to give
        body = c.get("/v1/device", headers={"Authorization": f"Bearer {KEY}"}).json()
        assert body["runtime"] is None and "npm ci" in body["runtime_missing"]
        assert body["server"] == {"precision": "fp32", "same_numbers": False}  # auto: no int8 pair here
        model_url = "/" + body["model"]["url"]
        error(c.get(model_url), 401, "unauthorized")
        assert c.get(model_url, headers={"Authorization": f"Bearer {KEY}"}).status_code == 200
        assert c.get("/sw.js").status_code == 200 and c.get("/").status_code == 200  # the page stays open


def test_accept_encoding_parsing() -> None:
    assert route.accepted_encodings("gzip, deflate, br;q=0.9") == {"gzip", "deflate", "br"}
    assert route.accepted_encodings("br;q=0, GZIP;q=0.1, zstd;q=x") == {"gzip"}
    assert route.accepted_encodings("") == set()
    assert (
        gzip.decompress(route.served(REPO / "package.json").encodings["gzip"])
        == (  # type: ignore[arg-type]
            REPO / "package.json"
        ).read_bytes()
    )


# --- real servers -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def device_server(int8w_dir: Path) -> Iterator[str]:
    """`lnrnn serve` on the int8w tiny model at precision int8w: the server and the device agree."""
    port = free_port()
    argv = [
        sys.executable,
        "-m",
        "lnrnn",
        "serve",
        str(int8w_dir),
        "--port",
        str(port),
        "--precision",
        "int8w",
    ]
    with server([*argv, "--log-level", "warning"], port) as (url, _):
        yield url


@pytest.mark.slow
def test_the_js_module_gives_the_python_numbers(tmp_path: Path) -> None:
    """tests/js/lnrnn.test.mjs (node --test) against /v1/predict and /v1/score of the same model: the bundled
    one at its device precision, which has contexts whose likely next characters take 2 bytes ("日本")."""
    assert NODE is not None, "node is missing: `make install` needs node 20 and npm"
    port = free_port()
    argv = [sys.executable, "-m", "lnrnn", "serve", str(DEFAULT_MODEL), "--port", str(port)]
    with (
        server([*argv, "--precision", "int8w", "--log-level", "warning"], port) as (url, _),
        httpx.Client(base_url=url, timeout=30) as http,
    ):
        precision = http.get("/v1/device").json()["model"]["precision"]
        predict = [
            {"text": t, "k": k, **http.post("/v1/predict", json={"text": t, "top_k": k}).json()}
            for t in [*TEXTS, "日本", "He said, “Yes"]
            for k in (1, 5)
        ]
        score = [
            {"text": t, **http.post("/v1/score", json={"text": t, "per_char": True}).json()}
            for t in TEXTS[1:]
        ]
        expected = tmp_path / "expected.json"
        numbers = {"precision": precision, "predict": predict, "score": score}
        expected.write_text(json.dumps(numbers), encoding="utf-8")
        env = {**os.environ, "LNRNN_TEST_URL": url, "LNRNN_TEST_EXPECTED": str(expected)}
        run = subprocess.run(
            [NODE, "--test", "--test-reporter=tap", "tests/js/"],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "# fail 0" in run.stdout and "# skipped 0" in run.stdout and "# pass 6" in run.stdout, run.stdout


# --- the page in a real browser ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser(chromium: Path) -> Iterator[Browser]:
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=str(chromium), args=ARGS)
        yield launched
        launched.close()


def in_step(page: Page, text: str) -> None:
    """Until the suggestions, the completions and the heat map all follow ``text``, the textarea's content."""
    page.wait_for_function(
        """(text) => {
            const s = document.querySelector('[data-testid=suggestions]');
            const c = document.querySelector('[data-testid=completions]');
            const h = document.querySelector('[data-testid=heatmap]');
            return document.querySelector('[data-testid=input]').value === text
                && s.dataset.state === 'ready' && s.dataset.length === String(text.length)
                && c.dataset.state === 'ready' && c.dataset.length === String(text.length)
                && h.dataset.state === 'ready' && h.dataset.text === text;
        }""",
        arg=text,
    )


def ready(page: Page, mode: str) -> None:
    runs_on = page.get_by_test_id("runs-on")
    expect(runs_on).to_have_attribute("data-mode", mode)
    expect(runs_on).to_have_attribute("data-state", "ready", timeout=30_000)


def shown(page: Page) -> tuple[list[tuple[str, float]], list[float]]:
    """The suggestions (char, prob) and the heat map's bits on screen."""
    pairs = (
        page.get_by_test_id("suggestions")
        .locator("li")
        .evaluate_all("(els) => els.map((e) => [e.dataset.char, Number(e.dataset.prob)])")
    )
    bits = (
        page.get_by_test_id("heatmap").locator("span").evaluate_all("(els) => els.map((e) => e.dataset.bits)")
    )
    return [(str(c), float(p)) for c, p in pairs], [float(b) for b in bits]


def assert_server_numbers(http: httpx.Client, text: str, page: Page) -> None:
    suggestions, bits = shown(page)
    predicted = http.post("/v1/predict", json={"text": text, "top_k": 5}).json()["candidates"]
    assert [p for _, p in suggestions] == pytest.approx([c["prob"] for c in predicted], abs=PROB_TOL)
    assert [c for c, _ in suggestions] == [c["char"] for c in predicted]
    per_char = http.post("/v1/score", json={"text": text, "per_char": True}).json()["per_char_bits"]
    assert bits == pytest.approx(per_char, abs=BITS_TOL)


@pytest.mark.slow
def test_device_mode_types_without_requests_matches_the_server_and_works_offline(
    device_server: str, browser: Browser
) -> None:
    context = browser.new_context(viewport={"width": 1100, "height": 1000})
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda err: problems.append(f"page error: {err}"))
    page.on("console", lambda m: problems.append(f"console: {m.text}") if m.type == "error" else None)
    requests: list[Request] = []
    page.on("request", lambda r: requests.append(r))
    page.goto(device_server + "/")
    ready(page, "device")  # the default where the browser has WebAssembly
    where = page.get_by_test_id("where")
    expect(where).to_contain_text("Runs on this device")
    expect(where).to_contain_text(SEQUENCE_INT8W_FILE)
    expect(where).to_contain_text("MB")
    expect(page.get_by_test_id("model")).to_contain_text("GRU 2×32, int8w")
    assert any("/page/ort/" in r.url and r.url.endswith(".wasm") for r in requests)

    before = len(requests)
    box = page.get_by_test_id("input")
    box.click()
    box.press_sequentially(LINE, delay=5)
    in_step(page, LINE)
    cells = page.get_by_test_id("heatmap").locator("span")
    cells.nth(LINE.index("’")).hover()
    expect(page.get_by_test_id("detail")).to_contain_text("expected")  # alternatives, computed here too
    # Tab accepts the first word completion when one is shown (test_page_complete.py), else the first
    # suggestion
    completions = page.get_by_test_id("completion").evaluate_all("(els) => els.map((e) => e.dataset.text)")
    grown = LINE + (completions[0] if completions else shown(page)[0][0][0])
    box.focus()
    box.press("Tab")
    in_step(page, grown)
    assert [r.url for r in requests[before:]] == []  # typing, Tab and hovering asked the server nothing
    assert float(page.get_by_test_id("suggestions").get_attribute("data-ms") or "nan") < 1000

    with httpx.Client(base_url=device_server, timeout=30) as http:
        assert_server_numbers(http, grown, page)
        edited = "So " + grown  # an edit at the start: the session goes back and reads the rest again
        box.press("Home")
        box.press_sequentially("So ", delay=5)
        in_step(page, edited)
        assert_server_numbers(http, edited, page)
        offline_text = "Offline: 日本"
        want = http.post("/v1/predict", json={"text": offline_text, "top_k": 5}).json()["candidates"]

    # offline after one visit: the service worker gives the page, the runtime and the model
    page.wait_for_function("() => navigator.serviceWorker.controller !== null")
    context.set_offline(True)
    try:
        page.reload()
        ready(page, "device")
        box.fill(offline_text)
        in_step(page, offline_text)
        suggestions, bits = shown(page)
        assert [c for c, _ in suggestions] == [c["char"] for c in want] and len(bits) == len(offline_text)
        assert [p for _, p in suggestions] == pytest.approx([c["prob"] for c in want], abs=PROB_TOL)
        expect(page.get_by_test_id("error")).to_be_hidden()
    finally:
        context.set_offline(False)
    assert problems == []
    context.close()


@pytest.mark.slow
def test_switching_to_the_server_and_back(device_server: str, browser: Browser) -> None:
    context = browser.new_context()
    page = context.new_page()
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(device_server + "/")
    ready(page, "device")
    box = page.get_by_test_id("input")
    box.fill("To be, or not")
    in_step(page, "To be, or not")
    on_device = shown(page)

    page.get_by_label("the server").check()
    ready(page, "server")
    expect(page.get_by_test_id("where")).to_contain_text("Runs on the server")
    in_step(page, "To be, or not")
    on_server = shown(page)
    assert [c for c, _ in on_server[0]] == [c for c, _ in on_device[0]]
    assert [p for _, p in on_server[0]] == pytest.approx([p for _, p in on_device[0]], abs=PROB_TOL)
    assert on_server[1] == pytest.approx(on_device[1], abs=BITS_TOL)
    before = len(requests)
    box.press("End")
    box.press_sequentially(" to", delay=5)
    in_step(page, "To be, or not to")
    assert any("/v1/sessions/" in url for url in requests[before:])  # on the server: typing is requests
    expect(page.get_by_test_id("model")).to_contain_text("int8w")

    page.reload()  # the choice is remembered
    ready(page, "server")
    page.get_by_label("this device").check()
    ready(page, "device")
    box.fill("To be, or not to")
    in_step(page, "To be, or not to")
    with httpx.Client(base_url=device_server, timeout=30) as http:
        assert_server_numbers(http, "To be, or not to", page)
    context.close()
