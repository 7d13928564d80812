"""Saved maps and the same maps as notebook outputs draw their layers in Chromium with the network cut off.

:func:`floodnb.viz.explore.chip_map` inlines Leaflet (:mod:`floodnb.viz.offline`): the saved ``.html``
file and the notebook's ``_repr_html_`` (an iframe) are opened with every non-local request aborted;
the tests check that no request was attempted, that Leaflet ran and that the overlays' pixels are on
screen.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from _offline_browser import Offline, colour_px, launch, pixels

from floodnb.viz import explore, offline

pytestmark = pytest.mark.browser

RED = (220, 20, 20)
BLUE = (31, 95, 191)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = launch(p)
        yield b
        b.close()


def _solid(rgb, size=32, alpha=255):
    img = np.zeros((size, size, 4), np.uint8)
    img[...] = (*rgb, alpha)
    return img


@pytest.fixture(scope="module")
def two_chip_map():
    fp = pd.DataFrame({"chip_id": ["a_1", "b_2"], "event": ["a", "b"], "split": ["test", "test"],
                       "west": [10.0, 10.2], "south": [45.0, 45.0], "east": [10.1, 10.3], "north": [45.1, 45.1]})
    overlays = [{"name": "a_1 red", "rgba": _solid(RED), "bounds": (10.0, 45.0, 10.1, 45.1), "opacity": 1.0},
                {"name": "b_2 blue", "rgba": _solid(BLUE), "bounds": (10.2, 45.0, 10.3, 45.1), "opacity": 1.0}]
    return explore.chip_map(fp, overlays=overlays)


def test_map_html_has_no_remote_address(two_chip_map, tmp_path):
    html = explore.save_map(two_chip_map, tmp_path / "m.html").read_text()
    assert "cdn." not in html and "<script src=" not in html and 'rel="stylesheet" href="http' not in html
    assert offline.NO_BASEMAP_NOTE in html
    assert f"Leaflet {offline.LEAFLET_VERSION}" in offline.leaflet_js()[:200]


def test_saved_map_draws_layers_offline(two_chip_map, tmp_path, browser):
    path = explore.save_map(two_chip_map, tmp_path / "chips_map.html")
    net = Offline(browser)
    try:
        page = net.page()
        page.goto(path.as_uri())
        page.wait_for_function("window.L !== undefined && "
                               "document.querySelectorAll('.leaflet-image-layer').length == 2")
        page.wait_for_timeout(500)
        img = pixels(page.screenshot())
        assert colour_px(img, RED) > 500 and colour_px(img, BLUE) > 500
        assert page.locator(".floodnb-map-note").inner_text() == offline.NO_BASEMAP_NOTE
        assert page.locator(".leaflet-control-scale").count() == 1
        assert net.blocked == [] and net.errors == [], (net.blocked, net.errors)
    finally:
        net.close()


def test_notebook_output_of_the_map_draws_offline(two_chip_map, tmp_path, browser):
    """The map as a notebook shows it (``_repr_html_``: an iframe holding the whole page)."""
    page_html = tmp_path / "output.html"
    page_html.write_text(f"<html><body>{two_chip_map._repr_html_()}</body></html>")
    net = Offline(browser)
    try:
        page = net.page()
        page.goto(page_html.as_uri())
        frame = page.frame_locator("iframe").first
        frame.locator(".leaflet-image-layer").nth(1).wait_for(state="attached")
        page.wait_for_timeout(500)
        img = pixels(page.screenshot())
        assert colour_px(img, RED) > 300 and colour_px(img, BLUE) > 300
        assert net.blocked == [] and net.errors == [], (net.blocked, net.errors)
    finally:
        net.close()


def test_local_url_rewrites_bokeh_and_panel_cdn():
    text = ('["https://cdn.bokeh.org/bokeh/release/bokeh-widgets-3.9.2.min.js", '
            '"https://cdn.holoviz.org/panel/1.9.4/dist/bundled/theme/default.css"]')
    out = offline.local_url(text, "/user/me/")
    assert out == ('["/user/me/panel-preview/static/js/bokeh-widgets.min.js", '
                   '"/user/me/panel-preview/static/extensions/panel/bundled/theme/default.css"]')
    assert offline.local_url("https://cdn.bokeh.org/bokeh/release/bokeh-3.9.2.min.js", "/") == \
        "/panel-preview/static/js/bokeh.min.js"
    with pytest.raises(ValueError, match="base_url"):
        offline.local_url("x", "user/")


def test_with_png_writes_a_static_copy_with_the_figure_labels(tmp_path):
    from PIL import Image

    from floodnb.viz import charts

    pc = pd.DataFrame({"chip_id": ["a", "b", "a", "b"], "event": ["e", "e", "e", "e"], "split": ["test"] * 4,
                       "method": ["student", "student", "s1_weak", "s1_weak"], "water_iou": [0.8, 0.4, 0.6, 0.5]})
    obj = charts.student_vs_baseline(pc)
    assert offline.with_png(obj, tmp_path / "scatter.png") is obj
    img = np.asarray(Image.open(tmp_path / "scatter.png").convert("RGB")).astype(np.int16)
    assert img.shape[0] > 150 and (img.min(axis=-1) < 200).sum() > 2000  # axes, points and the 1:1 line drawn
    import holoviews as hv

    assert hv.Store.lookup_options("matplotlib", obj.get(0), "plot").kwargs["xlabel"] == \
        "water IoU, S1-weak baseline"
    with pytest.raises(ValueError, match="must end in .png"):
        offline.with_png(obj, tmp_path / "x.svg")
