"""Screenshots of the dashboard for the README: the test fixture run served on 127.0.0.1, Debian Chromium.

    python docs/make_dashboard_screenshots.py [--out docs/img]

Writes ``dashboard_1280x720.png`` (the whole page at 1280 x 720: map in view), ``dashboard_layers.png``
(hand label, weak labels, disagreement and noise layers on, with their legend and colour bars) and
``dashboard_side_by_side.png`` (prediction vs hand label) and ``dashboard_export.png`` (the offline
HTML of ``floodnb dashboard RUN --export``). No network is used: the basemap is off.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from _run_fixture import make_run_dir  # noqa: E402
from test_dashboard_browser import CHROMIUM, CHROMIUM_ARGS, _start, _stop, _wait_up  # noqa: E402

from floodnb.viz.maplayers import LAYER_KEYS  # noqa: E402
from floodnb.viz.static_export import export_html  # noqa: E402


def _settle(page, seconds: float = 1.5) -> None:
    page.wait_for_selector("table.chip-metrics", timeout=60000)
    time.sleep(seconds)


def main(argv: list[str] | None = None) -> int:
    from playwright.sync_api import sync_playwright

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "docs" / "img"))
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = make_run_dir(Path(tmp), n_chips=8, size=128, areas=True)
        proc, url = _start(run_dir, Path(tmp) / "server.log")
        try:
            _wait_up(proc, url, Path(tmp) / "server.log")
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": 1280, "height": 720})
                page.goto(url + "/")
                _settle(page)
                page.screenshot(path=str(out / "dashboard_1280x720.png"))
                page.get_by_text("Diagnostics", exact=True).first.click()  # expand the card
                time.sleep(0.5)
                for key in ("label", "disagreement", "noise"):  # layer toggles are in LAYER_KEYS order
                    page.locator("input[type=checkbox]").nth(LAYER_KEYS.index(key)).click()
                _settle(page)
                page.screenshot(path=str(out / "dashboard_layers.png"))
                page.get_by_text("Side by side", exact=True).first.click()
                _settle(page)
                page.screenshot(path=str(out / "dashboard_side_by_side.png"))
                html = export_html(run_dir, Path(tmp) / "share.html", progress=False)
                page = browser.new_page(viewport={"width": 1280, "height": 800})
                page.goto(html.as_uri())
                _settle(page)
                page.screenshot(path=str(out / "dashboard_export.png"))
                browser.close()
        finally:
            _stop(proc)
    print("\n".join(str(p) for p in sorted(out.glob("dashboard_*.png"))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
