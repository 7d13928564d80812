"""Paired S1/S2 pools from a static STAC catalog served from 127.0.0.1 (floodnb.scale.stac_pool)."""

from __future__ import annotations

import datetime as dt
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rasterio
from _stac_fixture import NORTH, RES_DEG, WEST, make_catalog, serve, t

from floodnb.data.catalog import build_catalog
from floodnb.scale.collections import resolve_assets, s1_to_db, s1_units_of, s2_to_l1c_dn
from floodnb.scale.stac_pool import MANIFEST_FILE, SKIPPED_FILE, build_pool
from floodnb.scale.stac_search import find_pairs, group_acquisitions, search_items

pytestmark = pytest.mark.filterwarnings("ignore:Use `@` matmul:PendingDeprecationWarning")

CHIP = 64
# 2 x 1 chips inside the scenes (S1 covers 300 px from (WEST, NORTH)); away from the S1 nodata edge
BBOX = (WEST + 0.001, NORTH - 0.001 - CHIP * RES_DEG - RES_DEG / 4, WEST + 0.001 + 2 * CHIP * RES_DEG + RES_DEG / 4,
        NORTH - 0.001)


@pytest.fixture(scope="module")
def stac_url(tmp_path_factory):
    folder = tmp_path_factory.mktemp("stac")
    make_catalog(
        folder, size=300,
        s1=[{"id": "S1_day0", "datetime": t(0)}, {"id": "S1_day20", "datetime": t(20)},
            {"id": "S1_day40", "datetime": t(40)}],
        s2=[{"id": "S2_day1_cloudy", "datetime": t(1), "cloud": 80.0},
            {"id": "S2_day2_clear", "datetime": t(2), "cloud": 5.0},
            {"id": "S2_day20_clear", "datetime": t(20, 11), "cloud": 10.0},
            {"id": "S2_day40_nocloudprop", "datetime": t(40, 11), "cloud": None},
            {"id": "S2_day41_noB11", "datetime": t(41), "cloud": 1.0, "drop": ["B11"]}],
    )
    with serve(folder) as url:
        yield url + "/catalog.json"


def _acqs(url, start="2023-03-01", end="2023-04-30"):
    s1 = group_acquisitions(search_items(url, collection="sentinel-1-rtc", bbox=BBOX, start=start, end=end),
                             sensor="s1")
    s2 = group_acquisitions(search_items(url, collection="sentinel-2-l2a", bbox=BBOX, start=start, end=end),
                             sensor="s2")
    return s1, s2


def test_search_filters_collection_window_and_bbox(stac_url):
    s1 = search_items(stac_url, collection="sentinel-1-rtc", bbox=BBOX, start="2023-03-01", end="2023-03-21")
    assert [i.id for i in s1] == ["S1_day0", "S1_day20"]
    assert search_items(stac_url, collection="sentinel-1-rtc", bbox=(20, 10, 21, 11), start="2023-03-01",
                        end="2023-04-30") == []
    with pytest.raises(ValueError, match="bbox"):
        search_items(stac_url, collection="sentinel-1-rtc", bbox=(11, 45, 10, 46), start="2023-03-01", end="2023-03-02")
    with pytest.raises(ValueError, match="end=.*before start"):
        search_items(stac_url, collection="sentinel-1-rtc", bbox=BBOX, start="2023-03-05", end="2023-03-01")


def test_pairing_respects_max_gap_and_cloud(stac_url):
    s1, s2 = _acqs(stac_url)
    pairs, skipped = find_pairs(s1, s2, max_gap=dt.timedelta(hours=72), max_cloud=20)
    got = {p.s1.item_ids: p.s2.item_ids for p in pairs}
    # the day-1 scene is nearer but too cloudy: day 2 is chosen
    assert got[("S1_day0",)] == ("S2_day2_clear",)
    assert got[("S1_day20",)] == ("S2_day20_clear",)
    reasons = {r["item_id"]: r["reason"] for r in skipped}
    assert "80 > max_cloud 20" in reasons["S2_day1_cloudy"]
    assert "no eo:cloud_cover" in reasons["S2_day40_nocloudprop"]
    # a tighter gap leaves the day-0 radar scene without a partner, and says so
    pairs, skipped = find_pairs(s1, s2, max_gap=dt.timedelta(hours=30), max_cloud=20)
    assert ("S1_day0",) not in {p.s1.item_ids for p in pairs}
    assert any(r["item_id"] == "S1_day0" and "no usable Sentinel-2" in r["reason"] for r in skipped)
    # accepting any cloud cover pairs day 0 with the nearer cloudy scene
    pairs, _ = find_pairs(s1, s2, max_gap=dt.timedelta(hours=72), max_cloud=100)
    assert {p.s1.item_ids: p.s2.item_ids for p in pairs}[("S1_day0",)] == ("S2_day1_cloudy",)


def test_pool_writes_catalog_readable_chips(stac_url, tmp_path):
    root = tmp_path / "pool"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = build_pool(bbox=BBOX, start="2023-03-01", end="2023-03-31", out_root=root, stac=stac_url, chip=CHIP,
                         max_gap_hours=72, max_cloud=20, progress=False)
    assert not [w for w in caught if "missing asset" in str(w.message)]
    assert [p.s1.item_ids for p in res.pairs] == [("S1_day0",), ("S1_day20",)]
    assert list(res.manifest["status"]) == ["written"] * 4
    assert set(res.manifest["s2_absent_bands"]) == {"B10"}
    assert (root / "v1.1" / MANIFEST_FILE).is_file() and (root / "v1.1" / SKIPPED_FILE).is_file()

    cat = build_catalog(root)
    assert len(cat) == 4 and set(cat["group"]) == {"weak"}
    assert cat["s1_path"].notna().all() and cat["s2_path"].notna().all()
    first = cat.set_index("chip_id").loc["STAC20230301a_0"]
    assert (first["s1_date"], first["s2_date"]) == ("2023-03-01", "2023-03-03")
    assert abs(first["lon"] - (BBOX[0] + CHIP * RES_DEG / 2)) < 2 * RES_DEG

    s1s, s2s = [], []
    for cid in ("STAC20230301a_0", "STAC20230301a_1"):  # the pair's two chips side by side
        row = cat.set_index("chip_id").loc[cid]
        with rasterio.open(row["s1_path"]) as ds:
            s1s.append(ds.read())
            assert ds.dtypes == ("float32", "float32") and ds.descriptions == ("VV", "VH")
            assert str(ds.crs) == "EPSG:4326" and ds.shape == (CHIP, CHIP) and np.isnan(ds.nodata)
        with rasterio.open(row["s2_path"]) as ds:
            s2s.append(ds.read())
            assert ds.count == 13 and ds.dtypes[0] == "int16" and ds.nodata == 0 and ds.descriptions[10] == "B10"
    s1, s2 = np.concatenate(s1s, axis=2), np.concatenate(s2s, axis=2)
    # linear power -> dB: land -9 / -16 dB (VV / VH), water -22 / -29 dB as simulated
    assert np.isfinite(s1).all()
    land = s1[1] > -22.5
    assert np.median(s1[0][land]) == pytest.approx(-9.0, abs=0.5)
    assert np.median(s1[1][land]) == pytest.approx(-16.0, abs=0.5)
    assert np.median(s1[1][~land]) == pytest.approx(-29.0, abs=1.0)
    # L2A baseline 05.09: the +1000 DN offset is removed (land 2500, water 400 in B2); B10 absent -> 0
    b2 = s2[1]
    assert np.percentile(b2, 95) == pytest.approx(2500, abs=100)
    assert (s2[10] == 0).all() and (s2[[0, 1, 2, 11, 12]] > 0).all()
    # water in S1 (low VH) coincides with water in S2 (low B8) after reprojecting both grids
    water_s1 = s1[1] < -22
    water_s2 = s2[7] < 1500
    assert water_s1.sum() > 50 and (water_s1 == water_s2).mean() > 0.95


def test_pool_rerun_resumes_without_rewriting(stac_url, tmp_path):
    root = tmp_path / "pool"
    kw = dict(bbox=BBOX, start="2023-03-01", end="2023-03-05", out_root=root, stac=stac_url, chip=CHIP, progress=False)
    first = build_pool(**kw)
    paths = [Path(p) for p in first.manifest["s1_path"]]
    mtimes = [p.stat().st_mtime_ns for p in paths]
    again = build_pool(**kw)
    assert list(again.manifest["status"]) == ["existing"] * len(paths)
    assert [p.stat().st_mtime_ns for p in paths] == mtimes
    assert len(pd.read_csv(root / "v1.1" / MANIFEST_FILE)) == len(paths)
    assert not [p for p in root.rglob("*") if p.name.startswith(".")]  # no temporaries left


def test_item_missing_asset_is_skipped_and_reported(stac_url, tmp_path):
    kw = dict(bbox=BBOX, start="2023-04-09", end="2023-04-11", out_root=tmp_path / "pool", stac=stac_url, chip=CHIP,
              max_cloud=100, progress=False)
    with pytest.warns(UserWarning, match=r"S2_day41_noB11.*B11"):
        res = build_pool(**kw)
    # the day-40 scene without eo:cloud_cover is accepted with max_cloud=100; day 41 lacks B11
    assert [p.s2.item_ids for p in res.pairs] == [("S2_day40_nocloudprop",)]
    row = res.skipped.set_index("item_id").loc["S2_day41_noB11"]
    assert "B11" in row["reason"]
    assert "S2_day41_noB11" in (tmp_path / "pool" / "v1.1" / SKIPPED_FILE).read_text()
    with pytest.raises(ValueError, match=r"S2_day41_noB11.*B11"):
        build_pool(**{**kw, "out_root": tmp_path / "pool2"}, on_missing="error")
    assert not (tmp_path / "pool2").exists()


def test_bad_arguments_are_named(stac_url, tmp_path):
    with pytest.raises(ValueError, match="cannot tell"):
        build_pool(bbox=BBOX, start="2023-03-01", end="2023-03-02", out_root=tmp_path, stac=stac_url,
                   s1_collection="my-grd")
    with pytest.raises(ValueError, match="smaller than one"):
        build_pool(bbox=BBOX, start="2023-03-01", end="2023-03-05", out_root=tmp_path / "p", stac=stac_url,
                   chip=512, progress=False)
    with pytest.raises(ValueError, match="could not be opened"):
        build_pool(bbox=BBOX, start="2023-03-01", end="2023-03-05", out_root=tmp_path / "q",
                   stac=str(tmp_path / "nope.json"), chip=CHIP)


def test_unit_conversions():
    lin = np.array([[1.0, 0.1, 0.0, -32768.0]], dtype=np.float32)
    db = s1_to_db(lin, units="linear", nodata=-32768.0)
    np.testing.assert_allclose(db[0, :2], [0.0, -10.0], atol=1e-5)
    assert np.isnan(db[0, 2:]).all()
    np.testing.assert_allclose(s1_to_db(np.array([0.1], np.float32), units="amplitude", nodata=None), [-20.0],
                               atol=1e-5)
    assert s1_units_of("sentinel-1-rtc", "auto") == "linear"
    out = s2_to_l1c_dn(np.array([0, 1000, 1500, 70000.0]), scale=1.0, offset=-1000.0, nodata=0)
    assert out.tolist() == [0, 1, 500, 32767]  # nodata stays 0, a valid dark pixel never becomes 0
    # earth-search style raster:bands scale/offset: reflectance = DN * 1e-4 - 0.1
    assert s2_to_l1c_dn(np.array([3000.0]), scale=1.0, offset=-1000.0, nodata=0).tolist() == [2000]


def test_asset_names_of_both_providers():
    import pystac

    item = pystac.Item(id="e84", geometry=None, bbox=None, datetime=t(0), properties={})
    for key in ("coastal", "blue", "green", "red", "rededge1", "rededge2", "rededge3", "nir", "nir08", "nir09",
                "swir16", "swir22", "cirrus"):
        item.add_asset(key, pystac.Asset(href=f"{key}.tif"))
    keys, absent, missing = resolve_assets(item, "s2")
    assert keys["B8A"] == "nir08" and keys["B10"] == "cirrus" and absent == [] and missing == []
    del item.assets["swir16"]
    del item.assets["cirrus"]
    _, absent, missing = resolve_assets(item, "s2")
    assert absent == ["B10"] and missing == ["B11"]


def test_cli_pool(stac_url, tmp_path, capsys):
    from floodnb.cli import main

    root = tmp_path / "cli_pool"
    rc = main(["pool", "--bbox", *map(str, BBOX), "--start", "2023-03-20", "--end", "2023-03-22", "--out", str(root),
               "--stac-url", stac_url, "--chip", str(CHIP)])
    out = capsys.readouterr().out
    assert rc == 0 and "1 S1/S2 pairs" in out and "written 2" in out
    assert len(build_catalog(root)) == 2
    rc = main(["pool", "--bbox", "1", "2", "0", "3", "--start", "2023-03-20", "--end", "2023-03-22", "--out",
               str(root), "--stac-url", stac_url])
    assert rc == 2 and "bbox" in capsys.readouterr().err
