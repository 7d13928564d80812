"""The dashboard served for real (``floodnb dashboard`` in a subprocess) and driven in headless Chromium.

Debian's ``/usr/bin/chromium`` (``$FLOODNB_CHROMIUM``; installed by ``.ci/install-test-deps``) through
Playwright (never ``playwright install``). Checks: the page loads without console errors and without
any request to another host (all JS/CSS served by the app); the map shows the S1 and prediction
layers (screenshot pixels); clicking a table row moves the map to another chip; tiles are drawn
under the layers when reachable; crafted URLs and ``?chip=`` values cannot read files; basic auth
refuses a wrong password and admits the right one.
"""

from __future__ import annotations

import http.client
import io
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pandas as pd
import pytest
from _run_fixture import make_run_dir

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("FLOODNB_CHROMIUM", "/usr/bin/chromium")  # .ci/install-test-deps installs it
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
PASSWORD = "s3cret-flood"
LOCAL_HOSTS = {"127.0.0.1", "localhost"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(run_dir: Path, log: Path, *extra: str) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    cmd = [sys.executable, "-m", "floodnb.cli", "dashboard", str(run_dir), "--port", str(port),
           "--basemap", "none", *extra]
    proc = subprocess.Popen(cmd, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)
    return proc, f"http://127.0.0.1:{port}"


def _wait_up(proc: subprocess.Popen, url: str, log: Path, timeout: float = 60.0) -> None:
    host, port = urlparse(url).hostname, urlparse(url).port
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"dashboard server exited ({proc.returncode}):\n{log.read_text()}")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"dashboard server not up after {timeout} s:\n{log.read_text()}")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return make_run_dir(tmp_path_factory.mktemp("dashb"), n_chips=4, size=64)


@pytest.fixture(scope="module")
def servers(run_dir, tmp_path_factory):
    """Two servers of the same run, started in parallel: open, and behind basic auth."""
    logs = tmp_path_factory.mktemp("logs")
    open_proc, open_url = _start(run_dir, logs / "open.log")
    auth_proc, auth_url = _start(run_dir, logs / "auth.log", "--basic-auth", PASSWORD)
    try:
        _wait_up(open_proc, open_url, logs / "open.log")
        _wait_up(auth_proc, auth_url, logs / "auth.log")
        yield {"open": open_url, "auth": auth_url}
    finally:
        _stop(open_proc)
        _stop(auth_proc)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    assert os.access(CHROMIUM, os.X_OK), (f"no Chromium at {CHROMIUM}: run .ci/install-test-deps (the first step of "
                                          "the README's test command) or set FLOODNB_CHROMIUM")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def chip_order(run_dir):
    """Student chips worst water IoU first, as the dashboard's table lists them."""
    pc = pd.read_csv(run_dir / "05_evaluate" / "per_chip.csv")
    return list(pc[pc["method"] == "student"].sort_values("water_iou")["chip_id"])


class Watch:
    """Console errors, page errors and requests to other hosts of one page."""

    def __init__(self, page):
        self.errors: list[str] = []
        self.external: list[str] = []
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        page.on("request", self._request)

    def _request(self, req):
        u = urlparse(req.url)
        if u.scheme in ("http", "https", "ws", "wss") and u.hostname not in LOCAL_HOSTS:
            self.external.append(f"{req.resource_type} {req.url}")


def _map_pixels(page) -> np.ndarray:
    """RGB screenshot ``(H, W, 3)`` of the map canvas."""
    from PIL import Image

    png = page.locator("canvas").first.screenshot()  # scrolled into view, whole canvas
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(np.int16)


def _shot(locator) -> np.ndarray:
    """RGB screenshot ``(H, W, 3)`` of one element."""
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(locator.screenshot())).convert("RGB")).astype(np.int16)


def _canvases(page, min_width: float, max_width: float) -> list:
    """One canvas per drawn Bokeh figure (a figure stacks several) of that width, left to right."""
    loc = page.locator("canvas")
    by_x = {}
    for i in range(loc.count()):
        box = loc.nth(i).bounding_box()
        if box and min_width <= box["width"] <= max_width:
            by_x.setdefault(round(box["x"]), loc.nth(i))
    return [by_x[x] for x in sorted(by_x)]


def _water_px(img: np.ndarray) -> int:
    """Pixels tinted by the blue water colour (#1f5fbf) of the prediction/label layers."""
    r, g, b = img[..., 0], img[..., 1], img[..., 2]
    return int(((b - r > 50) & (b - g > 25)).sum())


def _grey_px(img: np.ndarray) -> int:
    """Non-white grey pixels (the S1 dB layer)."""
    r, g, b = img[..., 0], img[..., 1], img[..., 2]
    grey = (abs(r - g) < 8) & (abs(g - b) < 8) & (r < 200) & (r > 20)
    return int(grey.sum())


def _wait_for(fn, *, timeout: float = 20.0, what: str):
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if isinstance(value, np.ndarray) or value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.25)


def _chip_info(page) -> str:
    loc = page.locator("table.chip-metrics")
    return loc.first.inner_text() if loc.count() else ""


def _open(browser, url):
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = ctx.new_page()
    watch = Watch(page)
    page.goto(url)
    return ctx, page, watch


def test_map_renders_and_row_click_switches_chip(servers, browser, chip_order):
    ctx, page, watch = _open(browser, servers["open"] + "/")
    try:
        page.wait_for_selector("canvas", state="attached", timeout=30000)
        _wait_for(lambda: chip_order[0] in _chip_info(page), what="the worst chip's metrics")
        assert "water IoU (this chip" in _chip_info(page)
        before = _wait_for(lambda: (lambda im: im if _water_px(im) > 300 and _grey_px(im) > 3000 else None)(
            _map_pixels(page)), what="S1 and prediction pixels on the map")
        assert before.std() > 20  # not a blank canvas

        page.locator(".tabulator-row").nth(2).click()
        _wait_for(lambda: chip_order[2] in _chip_info(page), what="metrics of the clicked chip")
        after = _wait_for(lambda: (lambda im: im if np.abs(im - before).mean() > 3 and _water_px(im) > 300 else None)(
            _map_pixels(page)), what="the map to show the clicked chip")
        assert np.abs(after - before).mean() > 3

        page.locator("input[type=checkbox]").first.click()  # first layer toggle: Sentinel-1 VV off
        _wait_for(lambda: _grey_px(_map_pixels(page)) < _grey_px(after) // 4, what="the S1 layer to disappear")
        assert _water_px(_map_pixels(page)) > 300  # prediction still drawn

        assert watch.external == [], f"requests to other hosts: {watch.external}"
        assert watch.errors == [], f"console errors: {watch.errors}"
    finally:
        ctx.close()


def test_chip_parameter_is_looked_up_and_tiles_drawn_under_layers(servers, browser, chip_order):
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (256, 256), (0, 170, 0)).save(buf, format="PNG")
    tile = buf.getvalue()
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = ctx.new_page()
    watch = Watch(page)
    # stand-in for a reachable tile server: every OSM tile is plain green
    page.route("https://tile.openstreetmap.org/**", lambda route: route.fulfill(status=200, body=tile,
                                                                            content_type="image/png"))
    try:
        page.goto(servers["open"] + "/?chip=../../../../etc/passwd")
        page.wait_for_selector("canvas", state="attached", timeout=30000)
        _wait_for(lambda: chip_order[0] in _chip_info(page), what="the worst chip instead")
        assert "root:x:0:0" not in page.content()
        page.get_by_text("is not in this run's table").first.wait_for(timeout=10000)

        def green(im):
            return int(((im[..., 1] > 150) & (im[..., 0] < 40) & (im[..., 2] < 40)).sum())

        assert green(_map_pixels(page)) == 0  # basemap "none": no tiles
        page.locator("select").nth(1).select_option("OpenStreetMap")
        img = _wait_for(lambda: (lambda im: im if green(im) > 2000 else None)(_map_pixels(page)),
                        what="basemap tiles around the chip")
        assert _water_px(img) > 300  # layers stay on top of the tiles
        assert all("tile.openstreetmap.org" in r for r in watch.external)
        assert watch.errors == [], f"console errors: {watch.errors}"
    finally:
        ctx.close()


TRAVERSALS = (
    "/../../etc/passwd",
    "/static/..%2f..%2f..%2f..%2fetc/passwd",
    "/static/../../../../../../etc/passwd",
    "/static/extensions/panel/..%2f..%2f..%2f..%2f..%2fetc%2fpasswd",
    "/static/js/..%2f..%2f..%2f..%2f..%2f..%2fetc/passwd",
    "/run.json",
    "/05_evaluate/per_chip.csv",
    "/02_weak_labels_and_noise/noise_chips.csv",
    "/%2e%2e/%2e%2e/etc/passwd",
)


def test_path_traversal_urls_are_refused(servers, run_dir):
    secret = (run_dir / "run.json").read_text()
    u = urlparse(servers["open"])
    for path in TRAVERSALS:
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
        conn.request("GET", path)  # sent verbatim, no client-side normalisation
        resp = conn.getresponse()
        body = resp.read().decode("utf-8", errors="replace")
        conn.close()
        assert resp.status in (400, 403, 404), f"{path} answered {resp.status}"
        assert "root:x:0:0" not in body and secret not in body, path


def test_basic_auth_rejects_wrong_password_and_admits_right_one(servers, browser, chip_order):
    u = urlparse(servers["auth"])
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    conn.request("GET", "/")
    resp = conn.getresponse()
    resp.read()
    conn.close()
    assert resp.status in (302, 303) and "/login" in resp.getheader("Location", "")

    ctx, page, watch = _open(browser, servers["auth"] + "/")
    try:
        page.wait_for_selector("input[name=password]", timeout=20000)
        page.fill("input[name=username]", "hydrologist")
        page.fill("input[name=password]", "wrong-password")
        page.click("button[type=submit]")
        page.wait_for_url("**/login?*error=*", timeout=20000)
        assert "Invalid username or password" in page.inner_text("#error-message")
        assert page.locator("canvas").count() == 0

        page.fill("input[name=username]", "hydrologist")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_selector("canvas", state="attached", timeout=30000)
        _wait_for(lambda: chip_order[0] in _chip_info(page), what="the dashboard after login")
        _wait_for(lambda: _water_px(_map_pixels(page)) > 300, what="map layers after login")
        assert watch.external == [], f"requests to other hosts: {watch.external}"
    finally:
        ctx.close()


def test_layout_fits_1280x720_and_model_selector_switches_the_map(servers, browser, chip_order):
    ctx = browser.new_context(viewport={"width": 1280, "height": 720})
    page = ctx.new_page()
    watch = Watch(page)
    try:
        page.goto(servers["open"] + "/")
        page.wait_for_selector("canvas", state="attached", timeout=30000)
        _wait_for(lambda: chip_order[0] in _chip_info(page), what="the worst chip's metrics")
        student = _wait_for(lambda: (lambda im: im if _water_px(im) > 300 else None)(_map_pixels(page)),
                            what="the student's prediction on the map")
        box = page.locator("canvas").first.bounding_box()
        assert box is not None and box["y"] >= 0 and box["x"] >= 0
        assert box["y"] + box["height"] <= 720 and box["x"] + box["width"] <= 1280, box  # the whole map in view
        assert page.evaluate("window.scrollY") == 0
        assert page.evaluate("document.documentElement.scrollWidth") <= 1280  # nothing overflows sideways

        page.locator("select").first.select_option("teacher")
        _wait_for(lambda: "teacher" in _chip_info(page), what="the teacher's metrics")
        teacher = _wait_for(lambda: (lambda im: im if np.abs(im - student).mean() > 1 else None)(_map_pixels(page)),
                            what="the teacher's prediction on the map")
        assert _water_px(teacher) > 300

        page.get_by_text("Side by side").first.click()  # its two maps are built on this first opening
        maps = _wait_for(lambda: (lambda m: m if len(m) == 2 else None)(_canvases(page, 150, 400)),
                         what="the two side-by-side maps")
        left, right = (_wait_for(lambda loc=loc: (lambda im: im if _grey_px(im) > 1000 else None)(
            _shot(loc)), what="S1 on a side-by-side map") for loc in maps)
        assert _water_px(left) > 50  # left: the prediction (blue water) over S1
        assert _water_px(right) < _water_px(left) // 4  # right: the hand label (cyan) over S1
        assert watch.external == [], f"requests to other hosts: {watch.external}"
        assert watch.errors == [], f"console errors: {watch.errors}"
    finally:
        ctx.close()


def test_exported_html_renders_offline_and_switches_chips(run_dir, browser, chip_order, tmp_path):
    out = tmp_path / "share.html"
    res = subprocess.run([sys.executable, "-m", "floodnb.cli", "dashboard", str(run_dir), "--export", str(out)],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert "works offline" in res.stdout and out.is_file()
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    page = ctx.new_page()
    watch = Watch(page)
    blocked: list[str] = []

    def only_local(route):  # the e-mailed file must not need any network
        if route.request.url.startswith(("file:", "data:")):
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    page.route("**/*", only_local)
    try:
        page.goto(out.as_uri())
        page.wait_for_selector("canvas", state="attached", timeout=30000)
        page.get_by_text("water IoU (this chip").first.wait_for(timeout=20000)
        _wait_for(lambda: chip_order[0] in _chip_info(page), what="the worst chip's metrics")
        first = _wait_for(lambda: (lambda im: im if _water_px(im) > 300 and _grey_px(im) > 3000 else None)(
            _map_pixels(page)), what="S1 and prediction pixels in the exported map")
        page.locator("select").first.select_option(chip_order[2])
        _wait_for(lambda: chip_order[2] in _chip_info(page), what="the chosen chip's metrics")
        moved = _wait_for(lambda: (lambda im: im if np.abs(im - first).mean() > 3 else None)(_map_pixels(page)),
                          what="the exported map to show another chip")
        assert _water_px(moved) > 300
        page.locator("input[type=checkbox]").first.click()  # S1 VV off
        _wait_for(lambda: _grey_px(_map_pixels(page)) < _grey_px(moved) // 4, what="the S1 layer to disappear")
        assert blocked == [] and watch.external == [], f"network requests: {blocked} {watch.external}"
        assert watch.errors == [], f"console errors: {watch.errors}"
    finally:
        ctx.close()


def test_served_under_a_path_prefix_as_behind_a_reverse_proxy(run_dir, browser, chip_order, tmp_path):
    from floodnb.viz.serve import serve_dashboard

    with pytest.raises(ValueError, match="prefix must look like"):
        serve_dashboard(run_dir, prefix="floods/", basemap="none", start=False)
    proc, url = _start(run_dir, tmp_path / "prefix.log", "--prefix", "/floods", "--use-xheaders")
    try:
        _wait_up(proc, url, tmp_path / "prefix.log")
        u = urlparse(url)
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
        conn.request("GET", "/")
        resp = conn.getresponse()
        resp.read()
        conn.close()
        assert resp.status == 404  # nothing outside the prefix
        ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
        page = ctx.new_page()
        watch = Watch(page)
        # the browser asks the site root for its icon, which lies outside the prefix (a proxy answers it)
        page.route("**/favicon.ico", lambda route: route.fulfill(status=204, body=b""))
        page.goto(url + "/floods/")
        try:
            page.wait_for_selector("canvas", state="attached", timeout=30000)
            _wait_for(lambda: chip_order[0] in _chip_info(page), what="the dashboard under /floods/")
            _wait_for(lambda: _water_px(_map_pixels(page)) > 300, what="map layers under the prefix")
            assert watch.external == [] and watch.errors == [], (watch.external, watch.errors)
        finally:
            ctx.close()
    finally:
        _stop(proc)
