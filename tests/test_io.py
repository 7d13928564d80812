"""Chip loading: every real chip, conversions, grid tolerance, bad input, empty-data warnings."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import rasterio
from _real_data import chip_size, label_counts
from conftest import tree_checksums, write_geotiff

from floodnb.bands import S1_BANDS, S2_BANDS
from floodnb.data.catalog import build_catalog
from floodnb.data.io import ChipReadError, EmptyChipWarning, load_chip, read_arrays


@pytest.fixture(scope="module")
def real_catalog(real_root):
    return build_catalog(real_root).set_index("chip_id", drop=False)


def test_every_real_chip(real_root, real_catalog):
    before = tree_checksums(real_root)
    size = chip_size(real_root)  # 512 (shared sample) or 64 (in-repo fixture)
    for cid, row in real_catalog.iterrows():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", EmptyChipWarning)
            ds = load_chip(row)
            fast, grid = read_arrays(row)
        assert ds.attrs["chip_id"] == cid and ds.attrs["split"] == "test"
        assert ds.attrs["s1_date"] == row["s1_date"] and ds.attrs["lat"] == pytest.approx(row["lat"])
        assert ds.attrs["vh_thresh"] == pytest.approx(row["vh_thresh"]) and -26 < ds.attrs["vh_thresh"] < -19
        assert ds.rio.crs.to_epsg() == 4326 and ds.sizes["x"] == ds.sizes["y"] == size and grid.shape == (size, size)
        assert abs(ds.rio.transform().a - 8.983e-05) < 1e-8
        assert ds.x.values[0] < ds.x.values[-1] and ds.y.values[0] > ds.y.values[-1]
        assert set(fast) == set(ds.data_vars)
        for k in fast:
            np.testing.assert_array_equal(fast[k], ds[k].values)
        if "s1" in ds:
            s1 = ds["s1"]
            assert s1.dtype == np.float32 and s1.dims == ("s1_band", "y", "x")
            assert tuple(s1.s1_band.values) == S1_BANDS and s1.attrs["units"] == "dB"
            v = s1.values[np.isfinite(s1.values)]
            assert v.size == 0 or (v.min() > -60 and v.max() < 30)
        if "s2" in ds:
            s2 = ds["s2"]
            assert s2.dtype == np.float32 and tuple(s2.s2_band.values) == S2_BANDS
            v = s2.values
            assert np.nanmin(v) >= 3e-4 and np.nanmax(v) <= 0.62  # DN 3..6113 / 10000
            with rasterio.open(row["s2_path"]) as f:
                raw = f.read()
            np.testing.assert_allclose(v[raw > 0], raw[raw > 0] / 10000.0, rtol=1e-6)
        if "label" in ds:
            lab = ds["label"]
            assert lab.dtype == np.int16 and lab.dims == ("y", "x")
            vals, counts = np.unique(lab.values, return_counts=True)
            assert dict(zip(vals.tolist(), counts.tolist())) == label_counts(real_root, cid)
            assert set(vals.tolist()) <= {-1, 0, 1}
    assert tree_checksums(real_root) == before


def test_real_label_grid_differs_by_round_off_only(real_catalog):
    row = real_catalog.loc["Mekong_333434"]
    with rasterio.open(row["s1_path"]) as a, rasterio.open(row["label_path"]) as b:
        assert a.transform != b.transform  # float round-off in the real files
    ds = load_chip(row)
    assert ds["label"].x.equals(ds["s1"].x)


def test_real_edge_cases(real_root, real_catalog):
    with pytest.warns(EmptyChipWarning, match="Paraguay_34417.*s1.*entirely nodata"):
        ds = load_chip(real_catalog.loc["Paraguay_34417"])
    water = label_counts(real_root, "Paraguay_34417")[1]
    assert np.isnan(ds["s1"].values).all() and int((ds["label"].values == 1).sum()) == water > 0
    with pytest.warns(EmptyChipWarning, match="Ghana_83483.*label.*entirely nodata"):
        ds = load_chip(real_catalog.loc["Ghana_83483"])
    assert (ds["label"].values == -1).all()
    with warnings.catch_warnings():
        warnings.simplefilter("error", EmptyChipWarning)
        ds = load_chip(real_catalog.loc["Ghana_53713"])  # all dry: valid data, no warning
    assert (ds["label"].values == 0).all()
    ds = load_chip(real_catalog.loc["USA_430764"])
    assert list(ds.data_vars) == ["s2"]
    ds = load_chip(real_catalog.loc["Spain_7370579"], roles=["s2", "label"])
    assert list(ds.data_vars) == ["s2", "label"]
    with pytest.raises(ValueError, match="USA_430764.*'s1'"):
        load_chip(real_catalog.loc["USA_430764"], roles=["s1"])


def test_paths_mapping_input_and_tiny_conversions(tiny_dataset):
    cat = build_catalog(tiny_dataset).set_index("chip_id", drop=False)
    row = cat.loc["Spain_100"]
    ds = load_chip({"s1": row["s1_path"], "s2_path": row["s2_path"], "label": row["label_path"]})
    assert ds.attrs["chip_id"] == "Spain_100" and ds.attrs["event"] == "Spain" and ds.attrs["s1_date"] is None
    assert np.isnan(ds["s2"].values[:, -1, :2]).all() and np.isnan(ds["s1"].values[:, 0, :3]).all()
    full = load_chip(row)
    assert {"s1", "s2", "label", "s1_otsu", "jrc"} == set(full.data_vars)
    weak = load_chip(cat.loc["Spain_104"])
    assert {"s1", "s2", "s1_otsu", "s2_index"} == set(weak.data_vars)


def _copy_chip(real_catalog, cid, dst: Path) -> dict[str, str]:
    row = real_catalog.loc[cid]
    out = {}
    for role in ("s1", "label"):
        p = dst / Path(row[f"{role}_path"]).name
        shutil.copy(row[f"{role}_path"], p)
        out[role] = str(p)
    return out


def test_bad_input_errors_name_the_file_and_modify_nothing(real_root, real_catalog, tmp_path):
    real_before = tree_checksums(real_root)
    size = chip_size(real_root)
    paths = _copy_chip(real_catalog, "USA_905409", tmp_path)
    # truncated copy of a real S1 file (cut inside the pixel data)
    trunc = tmp_path / "trunc" / Path(paths["s1"]).name
    trunc.parent.mkdir()
    whole = Path(paths["s1"]).read_bytes()
    trunc.write_bytes(whole[: min(20000, len(whole) // 2)])
    # not a GeoTIFF at all
    text = tmp_path / "USA_1_S1Hand.tif"
    text.write_text("this is not a tiff")
    # wrong band count: a 3-band float file as S1
    three = write_geotiff(tmp_path / "USA_2_S1Hand.tif", np.zeros((3, 16, 16), np.float32), lat=38.7, lon=-94.9)
    # layers that do not share a grid: label shifted by 5 pixels
    with rasterio.open(paths["label"]) as f:
        arr, t = f.read(1), f.transform
    shifted = write_geotiff(tmp_path / "shift" / "USA_905409_LabelHand.tif", arr, lat=t.f + 5 * abs(t.e), lon=t.c)
    smaller = write_geotiff(tmp_path / "small" / "USA_905409_LabelHand.tif", arr[: size // 2], lat=t.f, lon=t.c)
    badvals = write_geotiff(tmp_path / "vals" / "USA_905409_LabelHand.tif", np.full_like(arr, 7), lat=t.f, lon=t.c,
                            pix=abs(t.e))
    before = tree_checksums(tmp_path)

    for loader in (load_chip, lambda p: read_arrays(p)):
        with pytest.raises(ChipReadError, match=f"{trunc}.*(truncated|GeoTIFF)"):
            loader({"s1": str(trunc)})
        with pytest.raises(ChipReadError, match=f"{text}.*not a GeoTIFF"):
            loader({"s1": str(text)})
        with pytest.raises(ChipReadError, match=f"{three}.*3 band.*expected 2 bands \\(VV, VH\\)"):
            loader({"s1": str(three)})
        with pytest.raises(ChipReadError, match=f"do not share a grid.*{shifted}.*{paths['s1']}"):
            loader({"s1": paths["s1"], "label": str(shifted)})
        with pytest.raises(ChipReadError, match=f"do not share a grid.*{smaller}.*{size // 2}x{size}"):
            loader({"s1": paths["s1"], "label": str(smaller)})
        with pytest.raises(ChipReadError, match=f"{badvals}.*label values \\[7\\]"):
            loader({"s1": paths["s1"], "label": str(badvals)})
        with pytest.raises(FileNotFoundError, match="gone_S1Hand.tif"):
            loader({"s1": str(tmp_path / "gone_S1Hand.tif")})
    assert issubclass(ChipReadError, ValueError)
    assert tree_checksums(tmp_path) == before
    assert tree_checksums(real_root) == real_before


def test_label_nodata_tag_and_float_s1_nodata_tag(tmp_path):
    lab = np.array([[0, 1], [255, 1]], np.uint8)
    p = write_geotiff(tmp_path / "X_1_LabelHand.tif", lab, lat=1.0, lon=1.0, nodata=255)
    s1 = np.array([[[-9999.0, -10.0], [-12.0, -13.0]]] * 2, np.float32)
    q = write_geotiff(tmp_path / "X_1_S1Hand.tif", s1, lat=1.0, lon=1.0, nodata=-9999.0)
    ds = load_chip({"s1": str(q), "label": str(p)})
    np.testing.assert_array_equal(ds["label"].values, [[0, 1], [-1, 1]])
    assert ds["label"].dtype == np.int16 and np.isnan(ds["s1"].values[:, 0, 0]).all()
