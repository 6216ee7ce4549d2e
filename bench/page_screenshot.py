"""docs/page.png and docs/page-device.png: the page at ``GET /`` on a real server with models/default, typed
into by headless Chromium, with the switch on "the server" or on "this device".

python -m bench.page_screenshot [--mode server|device] [--model models/default] [--out PATH]

Needs Debian's chromium (`make install`) and playwright (the dev extra).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

from bench.common import REPO
from bench.serving import DEFAULT_MODEL, running_server

CHROMIUM = "/usr/bin/chromium"
TEXT = "Shall I compare thee to a summer’s day?\nThou art more lovely and more temperate:\nRough winds do sha"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--mode", choices=("server", "device"), default="server", help="where it runs")
    parser.add_argument("--out", type=Path, default=None, help="docs/page.png or docs/page-device.png")
    args = parser.parse_args()
    out = args.out or REPO / "docs" / ("page.png" if args.mode == "server" else "page-device.png")
    env = {"LNRNN_PRECISION": "int8w"} if args.mode == "device" else None  # the device's numbers
    with (
        tempfile.TemporaryDirectory(prefix="lnrnn-page-") as tmp,
        running_server(args.model, Path(tmp) / "server.log", env=env) as (url, _, _),
        sync_playwright() as p,
    ):
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1000, "height": 900}, device_scale_factor=1)
        page.add_init_script(f"localStorage.setItem('lnrnn.runsOn', '{args.mode}')")
        page.goto(url + "/")
        page.wait_for_function(
            "() => document.querySelector('[data-testid=runs-on]').dataset.state === 'ready'", timeout=120_000
        )
        box = page.get_by_test_id("input")
        box.click()
        box.press_sequentially(TEXT, delay=10)
        box.press("Tab")  # accept the first suggestion, as a user would
        page.wait_for_function(
            """() => {
                const s = document.querySelector('[data-testid=suggestions]');
                const h = document.querySelector('[data-testid=heatmap]');
                const v = document.querySelector('[data-testid=input]').value;
                return s.dataset.state === 'ready' && s.dataset.length === String(v.length)
                    && h.dataset.state === 'ready' && h.dataset.text === v;
            }"""
        )
        cells = page.get_by_test_id("heatmap").locator("span")
        bits = [float(b) for b in cells.evaluate_all("(els) => els.map((e) => e.dataset.bits)")]
        cells.nth(max(range(len(bits)), key=bits.__getitem__)).hover()  # the most surprising character
        out.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(out), full_page=True)
        browser.close()
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
