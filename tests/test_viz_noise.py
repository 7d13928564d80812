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
