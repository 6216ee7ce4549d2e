"""The page at ``GET /``: its routes in-process, then a real server driven by a real headless Chromium.

The browser tests use Debian's ``chromium`` (Playwright cannot download its own browsers here): `make install`
installs it; the ``chromium`` fixture (conftest.py) installs it too when it is missing and we are root. They
drive the page on the server (the switch set to "the server"); test_page_device.py drives it on the device.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from lnrnn.serve.app import create_app
from lnrnn.serve.v1.surprisal import SURPRISAL_MAX_BYTES
from tests.helpers import TestClient, TinyModel, free_port, server, settings_for

# A Shakespeare line with a curly apostrophe: a 3-byte character, whose bits are the sum of its bytes'.
LINE = "Shall I compare thee to a summer’s day? Thou art more lovely"
KEY = "page-test-key"


# --- the routes, in-process -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def app_client(model_dir: Path) -> Iterator[TestClient]:
    with TestClient(create_app(settings_for(model_dir, chunk_tokens=16, max_text_bytes=3000))) as c:
        yield c


def test_page_and_assets_are_served_with_a_strict_policy(app_client: TestClient) -> None:
    page = app_client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    for hook in ('data-testid="input"', 'data-testid="suggestions"', 'data-testid="heatmap"', "summary"):
        assert hook in page.text
    js = app_client.get("/page/page.js")
    assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")
    assert app_client.get("/page/page.css").headers["content-type"].startswith("text/css")
    for name in ("index.html", "..%2Fpage.py", "../page.py", "missing.js"):
        response = app_client.get(f"/page/{name}")
        assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
    for text in (page.text, js.text, app_client.get("/page/page.css").text):
        assert "http://" not in text and "https://" not in text  # offline: nothing from another origin
    assert app_client.get("/docs").status_code == 200


def test_surprisal_matches_score_per_char(app_client: TestClient) -> None:
    text = "héllo wörld, 日本語 ok 🙂 " * 3
    got = app_client.post("/v1/surprisal", json={"text": text, "top_k": 3}).json()
    want = app_client.post("/v1/score", json={"text": text, "per_char": True}).json()
    assert [c["char"] for c in got["characters"]] == list(text)
    assert [c["bits"] for c in got["characters"]] == pytest.approx(want["per_char_bits"], abs=1e-4)
    assert got["bits"] == pytest.approx(want["bits"], abs=1e-3)
    assert got["bits_per_byte"] == pytest.approx(want["bits_per_byte"], abs=1e-5)
    assert got["bytes"] == len(text.encode()) and got["chars"] == len(text)
    assert set(got["compressors"]) == {"gzip -9", "bzip2 -9", "xz -9e"}
    # the alternatives at position i are /v1/predict's candidates after the text before it
    for i in (0, 2, 13):
        expected = app_client.post("/v1/predict", json={"text": text[:i], "top_k": 3}).json()["candidates"]
        alternatives = got["characters"][i]["alternatives"]
        assert [a["char"] for a in alternatives] == [c["char"] for c in expected]
        assert [a["prob"] for a in alternatives] == pytest.approx([c["prob"] for c in expected], abs=1e-6)


def test_surprisal_limits(app_client: TestClient) -> None:
    too_long = app_client.post("/v1/surprisal", json={"text": "x" * 3001})  # max_text_bytes < 4096 here
    assert too_long.status_code == 413 and "at most 3000" in too_long.json()["error"]["message"]
    assert app_client.post("/v1/surprisal", json={"text": ""}).status_code == 422
    assert app_client.post("/v1/surprisal", json={"text": "a", "top_k": 11}).status_code == 422
    assert app_client.post("/v1/surprisal", content=b'{"text": "a"}').status_code == 415
    assert SURPRISAL_MAX_BYTES == 4096


# --- a real browser on a real server ----------------------------------------------------------------


@pytest.fixture(scope="module")
def browser(chromium: Path) -> Iterator[Browser]:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium), args=["--no-sandbox"])
        yield browser
        browser.close()


def server_mode_page(browser: Browser, **kw: Any) -> Page:
    """A page whose switch is already on "the server" (the choice the page keeps in localStorage)."""
    page = browser.new_page(**kw)
    page.add_init_script("localStorage.setItem('lnrnn.runsOn', 'server')")
    return page


def serve_argv(tiny: TinyModel, port: int) -> list[str]:
    return [sys.executable, "-m", "lnrnn", "serve", str(tiny.dir), "--port", str(port), "--log-level=error"]


def wait_in_step(page: Page, text: str) -> None:
    """Until the suggestions, the completions and the heat map all follow ``text``, the textarea's content."""
    page.wait_for_function(
        """(text) => {
            const s = document.querySelector('[data-testid=suggestions]');
            const c = document.querySelector('[data-testid=completions]');
            const h = document.querySelector('[data-testid=heatmap]');
            const input = document.querySelector('[data-testid=input]');
            return input.value === text
                && s.dataset.state === 'ready' && s.dataset.length === String(text.length)
                && c.dataset.state === 'ready' && c.dataset.length === String(text.length)
                && h.dataset.state === 'ready' && h.dataset.text === text;
        }""",
        arg=text,
    )


def suggestions_of(page: Page) -> list[tuple[str, float]]:
    items = page.get_by_test_id("suggestions").locator("li")
    pairs = items.evaluate_all("(els) => els.map((e) => [e.dataset.char, Number(e.dataset.prob)])")
    return [(str(c), float(p)) for c, p in pairs]


def sessions_open(http: httpx.Client) -> float:
    for line in http.get("/metrics").text.splitlines():
        if line.startswith("lnrnn_sessions_open "):
            return float(line.split()[1])
    raise AssertionError("no lnrnn_sessions_open in /metrics")


@pytest.mark.slow
def test_page_suggests_accepts_tab_and_maps_bits(tiny: TinyModel, browser: Browser, tmp_path: Path) -> None:
    port = free_port()
    with server(serve_argv(tiny, port), port) as (url, _), httpx.Client(base_url=url, timeout=30) as http:
        page = server_mode_page(browser, viewport={"width": 1100, "height": 1000})
        problems: list[str] = []
        page.on("pageerror", lambda err: problems.append(f"page error: {err}"))
        page.on("console", lambda m: problems.append(f"console: {m.text}") if m.type == "error" else None)
        page.on("request", lambda r: None if r.url.startswith(url) else problems.append(f"request: {r.url}"))
        page.goto(url + "/")
        expect(page.get_by_test_id("model")).to_contain_text("GRU 2×32")

        box = page.get_by_test_id("input")
        box.click()
        box.press_sequentially(LINE, delay=5)
        wait_in_step(page, LINE)

        # suggestions: the session's top 5, the same as /v1/predict on the whole text
        shown = suggestions_of(page)
        assert len(shown) == 5 and all(0 < p <= 1 for _, p in shown)
        assert sum(p for _, p in shown) <= 1 + 1e-9
        predicted = http.post("/v1/predict", json={"text": LINE, "top_k": 5}).json()["candidates"]
        assert [c for c, _ in shown] == [c["char"] for c in predicted]
        assert [p for _, p in shown] == pytest.approx([c["prob"] for c in predicted], abs=1e-6)

        # heat map: one element per character, in order, with /v1/score's per-character bits
        score = http.post("/v1/score", json={"text": LINE, "per_char": True}).json()
        cells = page.get_by_test_id("heatmap").locator("span")
        bits = [float(b) for b in cells.evaluate_all("(els) => els.map((e) => e.dataset.bits)")]
        assert len(bits) == len(LINE) == score["chars"]
        assert bits == pytest.approx(score["per_char_bits"], abs=1e-3)
        summary = page.get_by_test_id("summary")
        assert float(summary.get_attribute("data-bits-per-byte") or "nan") == pytest.approx(
            score["bits_per_byte"], abs=1e-3
        )
        expect(summary).to_contain_text("gzip -9")
        expect(summary).to_contain_text("xz -9e")

        # hover and keyboard focus both give the numbers
        apostrophe = LINE.index("’")
        cells.nth(apostrophe).hover()
        detail = page.get_by_test_id("detail")
        expect(detail).to_contain_text(f"{score['per_char_bits'][apostrophe]:.2f} bits")
        expect(detail).to_contain_text("expected")
        page.get_by_test_id("heatmap").focus()
        page.keyboard.press("End")
        expect(detail).to_contain_text(f"Character {len(LINE)}:")

        # Tab accepts the first word completion when one is shown (test_page_complete.py), else the first
        # suggestion; everything follows the longer text
        completions = page.get_by_test_id("completion").evaluate_all(
            "(els) => els.map((e) => e.dataset.text)"
        )
        box.focus()
        box.press("Tab")
        grown = LINE + (completions[0] if completions else shown[0][0])
        expect(box).to_have_value(grown)
        wait_in_step(page, grown)
        assert page.get_by_test_id("heatmap").locator("span").count() == len(grown)
        assert sessions_open(http) == 1

        # an edit in the middle: a new session with the whole text, the old one deleted
        box.press("Home")
        box.press_sequentially("So ", delay=5)
        edited = "So " + grown
        wait_in_step(page, edited)
        predicted = http.post("/v1/predict", json={"text": edited, "top_k": 5}).json()["candidates"]
        assert [c for c, _ in suggestions_of(page)] == [c["char"] for c in predicted]
        assert sessions_open(http) == 1
        expect(page.get_by_test_id("error")).to_be_hidden()
        page.screenshot(path=str(tmp_path / "page.png"), full_page=True)
        assert problems == []


@pytest.mark.slow
def test_page_shows_server_errors(tiny: TinyModel, browser: Browser) -> None:
    port = free_port()
    env = {**os.environ, "LNRNN_API_KEY": KEY, "LNRNN_MAX_TEXT_BYTES": "100"}
    with server(serve_argv(tiny, port), port, env=env) as (url, _):
        page = server_mode_page(browser)
        page.goto(url + "/")
        error = page.get_by_test_id("error")
        expect(error).to_be_visible()
        expect(error).to_contain_text("401")
        expect(error).to_contain_text("API key")

        page.get_by_label("API key").fill("not-" + KEY)
        page.get_by_role("button", name="Use key").click()
        expect(error).to_contain_text("wrong API key")

        page.get_by_label("API key").fill(KEY)
        page.get_by_label("API key").press("Enter")
        expect(error).to_be_hidden()
        box = page.get_by_test_id("input")
        box.fill("To be, or not to be")
        wait_in_step(page, "To be, or not to be")
        assert len(suggestions_of(page)) == 5
        assert page.evaluate("() => sessionStorage.getItem('lnrnn.apiKey')") == KEY

        box.fill("x" * 101)  # over LNRNN_MAX_TEXT_BYTES: 413, said in the page
        expect(error).to_be_visible()
        expect(error).to_contain_text("413")
        expect(page.get_by_test_id("heatmap").locator("span")).to_have_count(0)
