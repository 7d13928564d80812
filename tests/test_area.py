"""floodnb.area: pixel areas from CRS + transform, chip water/flood/permanent km², per-event sums."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pyproj
import pytest
import rasterio
from affine import Affine

from floodnb.area import (
    AREA_COLUMNS,
    catalog_chip_areas,
    chip_areas,
    event_areas,
    mask_area_km2,
    pixel_area_km2,
    row_areas_km2,
)
from floodnb.simulate.geotiff import PIXEL_DEG

FIXTURE = Path(__file__).resolve().parent / "data" / "sen1floods11" / "HandLabeled"
UTM33 = "EPSG:32633"


def geod_row_areas_km2(transform: Affine, height: int) -> np.ndarray:
    """Independent check: each row's first pixel as a WGS84 polygon, area by pyproj.Geod (Karney 2013)."""
    geod = pyproj.Geod(ellps="WGS84")
    out = []
    for r in range(height):
        x0, y0 = transform * (0, r)
        x1, y1 = transform * (1, r + 1)
        area, _ = geod.polygon_area_perimeter([x0, x1, x1, x0], [y0, y0, y1, y1])
        out.append(abs(area) / 1e6)
    return np.array(out)


def test_projected_10m_pixels_give_exact_km2():
    transform = Affine(10.0, 0.0, 500000.0, 0.0, -10.0, 4_000_000.0)
    rows = row_areas_km2(UTM33, transform, 4)
    assert np.all(rows == 1e-4)  # 100 m² = 1e-4 km², exactly
    pred = np.zeros((4, 5), np.int16)
    pred[:2, :3] = 1  # 6 water px
    pred[3, 4] = -1  # 1 nodata px
    a = chip_areas(pred, row_km2=rows)
    assert a["water_km2"] == pytest.approx(6e-4, rel=1e-12)
    assert a["valid_km2"] == pytest.approx(19e-4, rel=1e-12)
    assert math.isnan(a["ref_water_km2"]) and math.isnan(a["flood_km2"]) and math.isnan(a["permanent_km2"])
    assert pixel_area_km2(UTM33, transform, (4, 5)).shape == (4, 5)


def test_projected_feet_unit_is_converted():
    # EPSG:2263 (NY Long Island, US survey feet): a 10 ft pixel is (10 * 1200/3937 m)²
    rows = row_areas_km2("EPSG:2263", Affine(10.0, 0, 0, 0, -10.0, 0), 1)
    assert rows[0] == pytest.approx((10 * 1200 / 3937) ** 2 / 1e6, rel=1e-9)


def _equator_and_60n(crs) -> tuple[float, float]:
    size = 32
    half = size * PIXEL_DEG / 2
    eq = row_areas_km2(crs, Affine(PIXEL_DEG, 0, 10.0, 0, -PIXEL_DEG, half), size).sum()
    n60 = row_areas_km2(crs, Affine(PIXEL_DEG, 0, 10.0, 0, -PIXEL_DEG, 60.0 + half), size).sum()
    return eq, n60


def test_geographic_area_scales_with_cos_latitude():
    # on a sphere a chip at 60°N has cos(60°) = 1/2 of the area of the same chip at the equator
    eq, n60 = _equator_and_60n("+proj=longlat +R=6371000 +no_defs")
    assert n60 / eq == pytest.approx(math.cos(math.radians(60.0)), rel=5e-3)
    # on WGS84 the radii of curvature M·N grow by 1 / (1 - e² sin²φ)² (about +1 % at 60°)
    eq, n60 = _equator_and_60n("EPSG:4326")
    e2 = pyproj.Geod(ellps="WGS84").es
    want = math.cos(math.radians(60.0)) / (1 - e2 * math.sin(math.radians(60.0)) ** 2) ** 2
    assert n60 / eq == pytest.approx(want, rel=5e-3)
    assert abs(n60 / eq - 0.5) > 0.004  # the ellipsoid matters: a spherical formula would be 1 % off
    assert eq / 32 == pytest.approx(1.0e-4, rel=0.02)  # 32 rows of one ~10 m pixel: ~1e-4 km² each


def test_geographic_rows_match_pyproj_geod():
    transform = Affine(PIXEL_DEG, 0, -60.0, 0, -PIXEL_DEG, -23.3)
    ours = row_areas_km2("EPSG:4326", transform, 16)
    assert np.allclose(ours, geod_row_areas_km2(transform, 16), rtol=1e-6, atol=0)


def test_geographic_rotation_and_missing_crs_rejected():
    with pytest.raises(ValueError, match="rotated"):
        row_areas_km2("EPSG:4326", Affine(PIXEL_DEG, 1e-6, 0, 0, -PIXEL_DEG, 0), 2)
    with pytest.raises(ValueError, match="no CRS"):
        row_areas_km2(None, Affine.identity(), 2)


def test_flood_excludes_permanent_water_and_reference_nodata():
    rows = np.full(3, 1e-4)
    pred = np.array([[1, 1, 1], [1, 0, 0], [-1, 1, 0]])
    ref = np.array([[1, 1, -1], [1, 1, 0], [1, 1, 0]])
    perm = np.array([[1, 0, 0], [0, 0, 0], [-1, 1, 0]])
    a = chip_areas(pred, row_km2=rows, ref=ref, permanent=perm)
    # valid = pred and ref both 0/1: 7 px (drops [0,2] ref nodata, [2,0] pred nodata)
    assert a["valid_km2"] == pytest.approx(7e-4)
    assert a["water_km2"] == pytest.approx(4e-4)  # [0,0] [0,1] [1,0] [2,1]
    assert a["ref_water_km2"] == pytest.approx(5e-4)  # [0,0] [0,1] [1,0] [1,1] [2,1]
    assert a["permanent_km2"] == pytest.approx(2e-4)  # [0,0] [2,1]
    assert a["flood_km2"] == pytest.approx(2e-4)  # water minus [0,0] [2,1]
    assert a["ref_flood_km2"] == pytest.approx(3e-4)
    with pytest.raises(ValueError, match="differs from the prediction"):
        chip_areas(pred, row_km2=rows, ref=ref[:2])


def test_real_fixture_label_area_matches_independent_geod():
    label_path = FIXTURE / "LabelHand" / "USA_905409_LabelHand.tif"
    with rasterio.open(label_path) as ds:
        label, transform, shape = ds.read(1), ds.transform, ds.shape
    expected = float(np.dot((label == 1).sum(axis=1), geod_row_areas_km2(transform, shape[0])))
    assert expected > 0
    row = {"chip_id": "USA_905409", "s1_path": str(FIXTURE / "S1Hand" / "USA_905409_S1Hand.tif")}
    a = catalog_chip_areas(row, label, label)
    assert a["water_km2"] == pytest.approx(expected, rel=1e-6)
    assert a["ref_water_km2"] == pytest.approx(expected, rel=1e-6)
    assert math.isnan(a["flood_km2"])  # the real sample has no JRCWaterHand
    with pytest.raises(ValueError, match="differs from the chip grid"):
        catalog_chip_areas(row, label[:10], None)


def test_simulated_chip_uses_its_jrc_layer(sim_root):
    from floodnb.data.catalog import build_catalog
    from floodnb.data.io import read_arrays

    cat = build_catalog(sim_root)
    row = cat[cat["jrc_path"].notna()].iloc[0]
    arrays, grid = read_arrays(row, roles=("label", "jrc"))
    a = catalog_chip_areas(row, arrays["label"], arrays["label"])
    rows = row_areas_km2(grid.crs, grid.transform, grid.shape[0])
    valid = arrays["label"] >= 0
    perm = (arrays["jrc"] == 1) & valid
    assert a["permanent_km2"] == pytest.approx(mask_area_km2(perm, rows))
    assert a["flood_km2"] == pytest.approx(a["water_km2"] - mask_area_km2(perm & (arrays["label"] == 1), rows))


def test_event_sums_keep_nan_when_no_chip_has_the_layer():
    df = pd.DataFrame({"event": ["A", "A", "B"], "chip_id": ["A_1", "A_2", "B_1"],
                       **{c: [1.0, 2.0, 3.0] for c in AREA_COLUMNS}})
    df.loc[df["event"] == "B", "flood_km2"] = np.nan
    out = event_areas(df).set_index("event")
    assert out.loc["A", "water_km2"] == 3.0 and out.loc["A", "chips"] == 2
    assert math.isnan(out.loc["B", "flood_km2"])
    with pytest.raises(ValueError, match="lacks columns"):
        event_areas(df.drop(columns="valid_km2"))


def test_event_area_figure_picks_flood_columns_and_draws(tmp_path):
    from PIL import Image

    from floodnb.viz.areas import area_columns, event_area_figure

    events = pd.DataFrame({"method": ["student", "student", "otsu", "otsu"], "event": ["A", "B", "A", "B"],
                           "water_km2": [1.0, 2.0, 1.5, 2.5], "ref_water_km2": [1.2, 2.1, 1.2, 2.1],
                           "flood_km2": [0.5, 1.0, 0.7, 1.4], "ref_flood_km2": [0.6, 1.1, 0.6, 1.1]})
    assert area_columns(events)[:2] == ("flood_km2", "ref_flood_km2")
    assert area_columns(events.assign(ref_flood_km2=np.nan))[:2] == ("water_km2", "ref_water_km2")
    png = event_area_figure(events, tmp_path / "event_area.png", reference="truth_water")
    img = np.asarray(Image.open(png).convert("RGB"))
    assert img.shape[0] > 300 and (img < 200).any(axis=2).mean() > 0.01  # axes, points and text drawn
    with pytest.raises(ValueError, match="no event has both"):
        event_area_figure(events, tmp_path / "x.png", methods=("nope",))
