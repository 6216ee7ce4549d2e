"""The page's word completions, beside the next-character chips, in Debian's chromium, in both modes.

One server (test_page_device.py's, at the device's precision int8w, so that the device and the server compute
the same numbers) and one browser for the module. The model is the session's tiny model with its output bias
leaning to a few letters and the space: the random tiny model spreads its mass so evenly that every word
completion it has is a single punctuation character, which would leave multi-character completions (their
probability a product over bytes, their visible space) untested. With the bias the space is both a next
character and the most likely completion, so the page's rule that leaves such a completion out is used.

In each mode: after a context, up to three completions are shown, with the texts and probabilities of
``POST /v1/complete`` on the same text (less the ones the page leaves out, recomputed here from /v1/predict);
Tab appends the first one, a click inserts one, Esc hides them with the chips. On the device typing asks the
server nothing, and complete.js's signal stops a search; on the server a keystroke is one append and one
completion request on the page's session, and Tab before the completions arrive takes the first character.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
import torch
from playwright.sync_api import Browser, Locator, Page, Request, Route, expect

from lnrnn.export.api import export_model
from tests.helpers import VERIFY_DATA, TinyModel
from tests.serve import test_page_device as device_tests
from tests.serve.test_page import server_mode_page
from tests.serve.test_page_device import PROB_TOL, in_step, ready

# test_page_device.py's fixtures, under the names the tests ask for: this module's own server (on the model
# below, which takes the place of its int8w_dir) and browser
device_server = device_tests.device_server
browser = device_tests.browser

# mid-word, with a 3-byte character before it: the completions start inside "lovely"
CONTEXT = "Shall I compare thee to a summer’s day? Thou art more lov"
N, UNTIL, MAX_CHARS = 3, "word", 24  # what the page asks for (the server-mode test checks its request)
TOP_K = 5  # the page's next-character chips


@pytest.fixture(scope="module")
def int8w_dir(tiny: TinyModel, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model, its output bias raised for "elovy" and more for the space (so that the space is a
    chip), exported with its int8w pair."""
    model = copy.deepcopy(tiny.model)
    with torch.no_grad():
        model.output_bias[list(b"elovy")] += 6.0
        model.output_bias[ord(" ")] += 6.5
    out = tmp_path_factory.mktemp("tiny-words")
    report = export_model(model, out, quantize="int8w", verify_data=VERIFY_DATA, train_data="tests: biased")
    assert report.ok and report.int8w is not None and report.int8w["kept"], report.failures
    return out


# complete.js on the page's model, its signal aborted as its first model call starts
ABORTED = """async (text) => {
    const { LnRnn } = await import("./page/lnrnn.js");
    const { complete } = await import("./page/complete.js");
    const model = await LnRnn.load(new URL(".", document.baseURI).href);
    const session = model.session();
    await session.append(text, 1);
    const at = await session.end();
    const stop = new AbortController();
    let calls = 0;
    const counted = { layers: model.layers, stateSize: model.stateSize, step: (tokens, state) => {
        calls += 1;
        stop.abort();
        return model.step(tokens, state);
    } };
    try {
        // five characters: four model calls unless stopped
        await complete(counted, at, { n: 3, maxChars: 5, until: "chars", signal: stop.signal });
        return { calls, error: null };
    } catch (err) {
        return { calls, error: err.name };
    }
}"""


def completions_of(page: Page) -> list[tuple[str, float]]:
    pairs = page.get_by_test_id("completion").evaluate_all(
        "(els) => els.map((e) => [e.dataset.text, Number(e.dataset.prob)])"
    )
    return [(str(t), float(p)) for t, p in pairs]


def chips(page: Page) -> Locator:
    return page.get_by_test_id("suggestions").locator("li")


def server_completions(http: httpx.Client, text: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """/v1/complete on ``text``, and the same without what the page leaves out: a one-character completion
    that is one of the chips (/v1/predict's top 5), which already offer it."""
    body = {"text": text, "n": N, "until": UNTIL, "max_chars": MAX_CHARS}
    found: list[dict[str, Any]] = http.post("/v1/complete", json=body).json()["completions"]
    candidates = http.post("/v1/predict", json={"text": text, "top_k": TOP_K}).json()["candidates"]
    offered = {c["char"] for c in candidates}
    return found, [c for c in found if c["text"] and not (len(c["text"]) == 1 and c["text"] in offered)]


def assert_server_completions(page: Page, http: httpx.Client, text: str) -> list[tuple[str, float]]:
    """The completions on screen are the server's for ``text``; the first one is labelled as Tab's."""
    in_step(page, text)  # the chips, the completions and the heat map
    shown = completions_of(page)
    found, want = server_completions(http, text)
    assert len(want) < len(found) == N  # the model makes the space a chip and a completion: one is left out
    assert 1 <= len(shown) <= N, shown
    assert [t for t, _ in shown] == [c["text"] for c in want]
    assert [p for _, p in shown] == pytest.approx([c["probability"] for c in want], abs=PROB_TOL)
    first_chip = chips(page).first
    assert shown[0][0] != first_chip.get_attribute("data-char")  # so Tab taking the chip would show
    buttons = page.get_by_test_id("completion").locator("button")
    labels = buttons.evaluate_all("(els) => els.map((e) => e.getAttribute('aria-label'))")
    assert labels[0].endswith(", Tab") and not any(label.endswith("Tab") for label in labels[1:])
    for label, (completion, _) in zip(labels, shown, strict=True):
        assert label.startswith("complete with ") and "%" in label
        assert all(f"“{word}”" in label for word in completion.split())  # its words, read out
    assert not (first_chip.locator("button").get_attribute("aria-label") or "").endswith("Tab")
    # visible whitespace, as on the chips
    assert buttons.locator(".glyph").all_inner_texts() == [t.replace(" ", "␣") for t, _ in shown]
    return shown


def assert_tab_click_and_esc(page: Page, http: httpx.Client, text: str) -> str:
    """Tab appends the first completion, a click on the last one inserts it, Esc hides completions and chips
    (then Tab moves on). The text the page ends with."""
    box = page.get_by_test_id("input")
    shown = assert_server_completions(page, http, text)
    box.press("Tab")
    text += shown[0][0]
    expect(box).to_have_value(text)
    shown = assert_server_completions(page, http, text)
    page.get_by_test_id("completion").last.locator("button").click()
    text += shown[-1][0]
    expect(box).to_have_value(text)
    assert_server_completions(page, http, text)
    box.press("Escape")
    expect(page.get_by_test_id("completion")).to_have_count(0)
    expect(chips(page)).to_have_count(0)
    box.press("Tab")  # nothing is shown: Tab is the browser's again
    expect(box).to_have_value(text)
    expect(box).not_to_be_focused()
    return text


def watch(page: Page) -> tuple[list[str], list[Request]]:
    problems: list[str] = []
    page.on("pageerror", lambda err: problems.append(f"page error: {err}"))
    page.on("console", lambda m: problems.append(f"console: {m.text}") if m.type == "error" else None)
    requests: list[Request] = []
    page.on("request", lambda r: requests.append(r))
    return problems, requests


@pytest.mark.slow
def test_device_completions_are_the_servers_without_a_request(device_server: str, browser: Browser) -> None:
    context = browser.new_context(viewport={"width": 1100, "height": 1000})
    page = context.new_page()
    problems, requests = watch(page)
    page.goto(device_server + "/")
    ready(page, "device")
    box = page.get_by_test_id("input")
    box.click()
    before = len(requests)
    box.press_sequentially(CONTEXT, delay=5)
    with httpx.Client(base_url=device_server, timeout=30) as http:
        assert_tab_click_and_esc(page, http, CONTEXT)
    assert [r.url for r in requests[before:]] == []  # typing, Tab, clicks and Esc asked the server nothing

    # the page stops a search when a key comes: complete.js's signal ends it before its next model call
    outcome = page.evaluate(ABORTED, CONTEXT)
    assert outcome == {"calls": 1, "error": "AbortError"}
    expect(page.get_by_test_id("error")).to_be_hidden()
    assert problems == []
    context.close()


@pytest.mark.slow
def test_server_completions_use_the_page_session(device_server: str, browser: Browser) -> None:
    page = server_mode_page(browser, viewport={"width": 1100, "height": 1000})
    problems, requests = watch(page)
    page.goto(device_server + "/")
    ready(page, "server")
    box = page.get_by_test_id("input")
    box.click()
    box.press_sequentially(CONTEXT[:-1], delay=5)
    in_step(page, CONTEXT[:-1])

    # one keystroke: one append of that character, then the completions of the session's text, nothing more
    before = len(requests)
    box.press(CONTEXT[-1])
    with httpx.Client(base_url=device_server, timeout=30) as http:
        assert_server_completions(page, http, CONTEXT)
        calls = [r for r in requests[before:] if "/v1/sessions" in r.url]
        assert [(r.method, r.url.rsplit("/", 1)[1]) for r in calls] == [
            ("POST", "append"),
            ("POST", "complete"),
        ]
        assert len({r.url.rsplit("/", 1)[0] for r in calls}) == 1  # the same session
        assert json.loads(calls[0].post_data or "") == {"text": CONTEXT[-1], "top_k": TOP_K}
        assert json.loads(calls[1].post_data or "") == {"n": N, "until": UNTIL, "max_chars": MAX_CHARS}
        text = assert_tab_click_and_esc(page, http, CONTEXT)

        # Tab while the completions are on their way takes the first next character, the one marked for Tab
        # then; the late answer, for the text before it, does not stay
        held: list[Route] = []
        page.route("**/complete", lambda route: held.append(route))
        box.focus()
        box.press("o")
        text += "o"
        suggestions = page.get_by_test_id("suggestions")
        expect(suggestions).to_have_attribute("data-length", str(len(text)))
        while not held:
            page.wait_for_timeout(10)
        expect(page.get_by_test_id("completions")).to_have_attribute("data-state", "loading")
        chip = chips(page).first
        expect(chip.locator("button")).to_have_attribute("aria-label", re.compile(", Tab$"))
        box.press("Tab")
        text += chip.get_attribute("data-char") or ""
        expect(box).to_have_value(text)
        held[0].continue_()
        page.unroute("**/complete")
        assert_server_completions(page, http, text)
    expect(page.get_by_test_id("error")).to_be_hidden()
    assert problems == []
    page.close()
