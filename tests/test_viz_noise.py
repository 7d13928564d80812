"""Noise visuals and display stretch: figures are built, PNGs written atomically, bad input named."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.colors import to_rgba

from floodnb.bands import DISAGREE_COLOR
from floodnb.labels.noise import event_confusion, pair_confusion
from floodnb.viz import noise as vn
from floodnb.viz import stretch

RNG = np.random.default_rng(0)
S1 = RNG.normal(-15, 5, (2, 32, 32)).astype(np.float32)
S2 = (RNG.random((13, 32, 32)) * 0.3).astype(np.float32)


def test_percentile_stretch_maps_percentiles_to_unit_range_and_keeps_nan():
    a = np.arange(100, dtype=np.float32).reshape(1, 10, 10)
    a[0, 0, 0] = np.nan
    s = stretch.percentile_stretch(a, low=2, high=98)
    assert np.isnan(s[0, 0, 0]) and np.nanmin(s) == 0 and np.nanmax(s) == 1
    lo, hi = np.nanpercentile(a, [2, 98])
    assert s[0, 5, 0] == pytest.approx((50 - lo) / (hi - lo), abs=1e-6)
    rgb = stretch.s2_true_color(S2)
    assert rgb.shape == (32, 32, 3) and 0 <= np.nanmin(rgb) and np.nanmax(rgb) <= 1
    g = stretch.s1_db_display(S1)
    assert g.shape == (32, 32) and g.min() >= 0 and g.max() <= 1
    with pytest.raises(ValueError, match="low < high"):
        stretch.percentile_stretch(a, low=90, high=10)
    with pytest.raises(ValueError, match=r"s2 must have shape \(13"):
        stretch.s2_true_color(S2[:3])


def test_disagreement_overlay_colours_disagreeing_pixels(tmp_path):
    a = np.zeros((32, 32), int)
    b = a.copy()
    b[:4, :4] = 1
    fig = vn.disagreement_overlay(a, b, names=("hand", "otsu"), s1=S1, path=tmp_path / "d.png")
    assert "1.6% of 1024 px" in fig.axes[0].get_title()
    over = fig.axes[0].images[-1].get_array()
    np.testing.assert_allclose(over[0, 0], to_rgba(DISAGREE_COLOR), atol=1e-6)
    assert over[10, 10, 3] == 0
    assert (tmp_path / "d.png").stat().st_size > 1000


def test_heatmap_gallery_and_table_write_pngs_atomically(tmp_path):
    score = RNG.random((32, 32)).astype(np.float32)
    score[:2] = np.nan
    vn.noise_heatmap(score, s2=S2, path=tmp_path / "h.png")
    items = [{"chip_id": f"c{i}", "score": score, "s1": S1, "noise_rate": 0.3 - 0.1 * i, "rank": i + 1}
             for i in range(3)]
    fig = vn.worst_chips_gallery(items, ncols=2, path=tmp_path / "g.png")
    assert fig.axes[0].get_title().startswith("#1 c0")
    a = np.zeros((2, 32, 32), int)
    ev = event_confusion(pair_confusion(a, a), ["x", "y"], names=("hand", "otsu"))
    vn.event_confusion_figure(ev, path=tmp_path / "t.png")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.png", "h.png", "t.png"]
    with pytest.raises(ValueError, match="must end in .png"):
        vn.noise_heatmap(score, path=tmp_path / "x.jpg")
    with pytest.raises(ValueError, match="grid"):
        vn.noise_heatmap(score, s1=S1[:, :8])
    with pytest.raises(ValueError, match="at least one chip"):
        vn.worst_chips_gallery([])


def test_hvplot_views_return_holoviews_objects():
    import holoviews as hv

    score = RNG.random((32, 32)).astype(np.float32)
    assert isinstance(vn.noise_heatmap_hv(score, s1=S1), hv.Overlay)
    a = np.zeros((1, 32, 32), int)
    assert isinstance(vn.event_confusion_hv(event_confusion(pair_confusion(a, a), ["x"])), hv.Table)


def _inside(fig, artist) -> bool:
    renderer = fig.canvas.get_renderer()
    box, page = artist.get_window_extent(renderer), fig.bbox
    return box.x0 >= page.x0 - 1 and box.y0 >= page.y0 - 1 and box.x1 <= page.x1 + 1 and box.y1 <= page.y1 + 1


def test_event_confusion_figure_names_the_counts_and_is_not_clipped():
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    a = np.zeros((3, 32, 32), int)
    b = a.copy()
    b[0, :4] = 1
    ev = event_confusion(pair_confusion(a, b), ["Bolivia", "Mekong", "Mekong"], names=("hand", "s1_otsu"))
    fig = vn.event_confusion_figure(ev)
    FigureCanvasAgg(fig)
    table = fig.axes[0].tables[0]
    heads = [table[0, i].get_text().get_text() for i in range(len(vn.TABLE_COLUMNS))]
    assert not {"n00", "n01", "n10", "n11"} & set(heads)
    assert "px hand dry,\ns1_otsu water" in heads and "px both\nwater" in heads
    assert _inside(fig, table), "the table runs off the figure"
    assert "hand vs s1_otsu" in fig._suptitle.get_text()
    cells = [table[r, 2].get_text().get_text() for r in range(1, 4)]
    assert cells[-1] == f"{3 * 32 * 32:,}"  # valid pixels of "all", with thousands separators
    hv_cols = vn.event_confusion_hv(ev).dimensions("all", label=True)
    assert "n00" not in hv_cols and "px both dry" in hv_cols


def test_worst_chips_gallery_has_a_colour_bar_and_shows_the_imagery():
    score = np.ones((32, 32), np.float32)  # every pixel flagged: the worst case for hiding imagery
    items = [{"chip_id": f"c{i}", "score": score, "s1": S1, "noise_rate": 1.0, "rank": i + 1} for i in range(3)]
    fig = vn.worst_chips_gallery(items, ncols=2)
    bars = [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]
    assert len(bars) == 1 and "noise score" in bars[0].get_ylabel()
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    img = np.asarray(canvas.buffer_rgba())[..., :3].astype(float)
    panel = fig.axes[0].get_window_extent()
    h = img.shape[0]
    crop = img[int(h - panel.y1) + 2:int(h - panel.y0) - 2, int(panel.x0) + 2:int(panel.x1) - 2]
    # imagery shows through the fully flagged overlay: the S1 texture varies across the panel
    assert crop.std(axis=(0, 1)).mean() > 10


def test_noise_heatmap_hv_is_thinned_to_max_px():
    score = RNG.random((256, 256)).astype(np.float32)
    s1 = RNG.normal(-15, 5, (2, 256, 256)).astype(np.float32)
    over = vn.noise_heatmap_hv(score, s1=s1, max_px=64)
    assert all(max(el.dimension_values(2, flat=False).shape) <= 64 for el in over)
