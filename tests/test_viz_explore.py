"""Explore views: chip figures carry a legend and a dB colour bar; interactive panels and map overlays
are thinned so notebooks stay small.
"""

from __future__ import annotations

import base64
import io
import re

import numpy as np
import pandas as pd
import xarray as xr

from floodnb.bands import S1_BANDS
from floodnb.viz import explore


def _chip(size: int) -> xr.Dataset:
    rng = np.random.default_rng(0)
    lab = (rng.random((size, size)) > 0.6).astype(np.int16)
    lab[:3] = -1
    coords = {"y": 45.0 - np.arange(size) * 1e-4, "x": 10.0 + np.arange(size) * 1e-4}
    return xr.Dataset({"s1": (("s1_band", "y", "x"), rng.normal(-15, 4, (2, size, size)).astype(np.float32)),
                       "label": (("y", "x"), lab)}, coords={**coords, "s1_band": list(S1_BANDS)},
                      attrs={"chip_id": "Spain_1"})


def test_chip_figure_has_a_class_legend_and_a_db_colour_bar():
    fig = explore.chip_figure(_chip(32))
    texts = [t.get_text() for lg in fig.legends for t in lg.get_texts()]
    assert texts == ["water", "dry", "no label (cloud / nodata)"]
    bars = [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]
    assert len(bars) == 1 and "dB" in bars[0].get_xlabel()


def test_chip_panel_is_thinned_to_max_px():
    import holoviews as hv

    layout = explore.chip_panel_hv(_chip(256), pred=np.zeros((256, 256), np.int8), max_px=96)
    shapes = [el.dimension_values(2, flat=False).shape for el in layout if isinstance(el, hv.Image)]
    assert shapes and all(max(s) <= 96 for s in shapes), shapes
    assert len(layout) == 4  # VV, VH, label, prediction


def test_chip_map_overlays_are_thinned():
    fp = pd.DataFrame({"chip_id": ["a"], "west": [10.0], "south": [45.0], "east": [10.1], "north": [45.1]})
    rgba = np.zeros((256, 256, 4), np.uint8)
    rgba[..., 0] = np.arange(256)[None, :]
    rgba[..., 3] = 255
    html = explore.chip_map(fp, overlays=[{"name": "x", "rgba": rgba, "bounds": (10.0, 45.0, 10.1, 45.1)}],
                            max_px=64).get_root().render()
    from PIL import Image

    png = re.search(r"imageOverlay\(\s*\"data:image/png;base64,([A-Za-z0-9+/=]+)", html).group(1)
    assert Image.open(io.BytesIO(base64.b64decode(png))).size == (64, 64)
