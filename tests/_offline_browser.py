"""Headless Chromium with the network cut off: every request to a host other than 127.0.0.1/localhost
(and every non-local scheme) is aborted by Playwright routing and recorded, so a test can assert that
a page drew its figures from local files only. Debian's ``/usr/bin/chromium`` (``$FLOODNB_CHROMIUM``;
``.ci/install-test-deps`` installs it), never ``playwright install``.
"""

from __future__ import annotations

import io
import os
from urllib.parse import urlparse

import numpy as np

CHROMIUM = os.environ.get("FLOODNB_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
LOCAL_HOSTS = {"127.0.0.1", "localhost"}
LOCAL_SCHEMES = {"file", "data", "blob", "about"}


class Offline:
    """A browser context whose requests leave the machine never: blocked ones land in ``blocked``;
    console errors and page errors in ``errors``.
    """

    def __init__(self, browser, *, width: int = 1280, height: int = 900):
        self.blocked: list[str] = []
        self.errors: list[str] = []
        self.context = browser.new_context(viewport={"width": width, "height": height})
        self.context.route("**/*", self._route)

    def _route(self, route):
        u = urlparse(route.request.url)
        if u.scheme in LOCAL_SCHEMES or u.hostname in LOCAL_HOSTS:
            route.continue_()
        else:
            self.blocked.append(route.request.url)
            route.abort()

    def page(self):
        """A new page of this context, its errors recorded."""
        page = self.context.new_page()
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        return page

    def close(self) -> None:
        self.context.close()


def launch(playwright):
    """Chromium launched with the flags of the dashboard tests."""
    assert os.access(CHROMIUM, os.X_OK), (f"no Chromium at {CHROMIUM}: run .ci/install-test-deps (the first step of "
                                          "the README's test command) or set FLOODNB_CHROMIUM")
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


def pixels(png: bytes) -> np.ndarray:
    """RGB ``(H, W, 3)`` int16 array of a PNG screenshot."""
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(np.int16)


def colour_px(img: np.ndarray, rgb: tuple[int, int, int], tol: int = 30) -> int:
    """Pixels within ``tol`` (per channel) of ``rgb``."""
    return int((np.abs(img - np.asarray(rgb, np.int16)) <= tol).all(axis=-1).sum())


def drawn_px(img: np.ndarray) -> int:
    """Pixels that are neither white nor near-white background (something was drawn)."""
    return int((img.min(axis=-1) < 230).sum())
