"""Permanent water in floodnb.predict: aligned/reprojected JRC-coded rasters, scene km², tagged polygons, CLI."""

from __future__ import annotations

import json

import numpy as np
import pyogrio
import pytest
import rasterio
from rasterio.transform import from_origin
from test_predict_raster import PIX, write_tif

from floodnb.area import chip_areas, row_areas_km2
from floodnb.cli import main as cli_main
from floodnb.data.normalize import get_preset
from floodnb.models import ModelSpec, build_model, save_checkpoint
from floodnb.predict import extent_polygons, write_polygons
from floodnb.predict.permanent import read_permanent, scene_areas

GRID = from_origin(10.0, 45.0, PIX, PIX)  # 10 m pixels at 45 N


def class_map(tmp_path, n: int = 60):
    cls = np.zeros((n, n), np.int8)
    cls[10:40, 5:50] = 1
    cls[50:, :] = -1
    return write_tif(tmp_path / "cls.tif", cls, transform=GRID, nodata=-1), cls


def coarse_jrc(tmp_path, n: int = 60):
    """A 30 m (3 px) JRC-like layer on the same origin: permanent water in columns 0..29 of rows 0..29."""
    coarse = np.zeros((n // 3, n // 3), np.uint8)
    coarse[:10, :10] = 1
    coarse[-1, -1] = 255  # nodata
    path = write_tif(tmp_path / "jrc30.tif", coarse, transform=from_origin(10.0, 45.0, 3 * PIX, 3 * PIX), nodata=255)
    fine = np.repeat(np.repeat(coarse.astype(np.int16), 3, 0), 3, 1)
    fine[fine == 255] = -1
    return path, fine


def test_read_permanent_same_grid_and_reprojected(tmp_path):
    _, fine = coarse_jrc(tmp_path)
    same = write_tif(tmp_path / "jrc10.tif", fine.astype(np.int16), transform=GRID)
    np.testing.assert_array_equal(read_permanent(same, crs="EPSG:4326", transform=GRID, shape=(60, 60)), fine)
    jrc30, _ = coarse_jrc(tmp_path)
    got = read_permanent(jrc30, crs=rasterio.crs.CRS.from_epsg(4326), transform=GRID, shape=(60, 60))
    np.testing.assert_array_equal(got, fine)
    # a target grid larger than the layer: uncovered pixels are unknown (-1)
    wide = read_permanent(jrc30, crs="EPSG:4326", transform=from_origin(10.0 - 10 * PIX, 45.0, PIX, PIX),
                          shape=(60, 80))
    assert (wide[:, :10] == -1).all() and (wide[:30, 10:40] == 1).all()


def test_read_permanent_rejects_bad_layers(tmp_path):
    far = write_tif(tmp_path / "far.tif", np.ones((5, 5), np.uint8), transform=from_origin(-60.0, -20.0, PIX, PIX))
    with pytest.raises(ValueError, match=r"far.tif .* does not overlap"):
        read_permanent(far, crs="EPSG:4326", transform=GRID, shape=(60, 60))
    occurrence = write_tif(tmp_path / "occ.tif", np.full((60, 60), 87, np.uint8), transform=GRID)
    with pytest.raises(ValueError, match=r"occ.tif holds values \[87\].*threshold"):
        read_permanent(occurrence, crs="EPSG:4326", transform=GRID, shape=(60, 60))
    with pytest.raises(FileNotFoundError, match="missing.tif"):
        read_permanent(tmp_path / "missing.tif", crs="EPSG:4326", transform=GRID, shape=(60, 60))


def test_scene_areas_in_strips_equal_whole_chip_areas(tmp_path):
    path, cls = class_map(tmp_path)
    jrc30, fine = coarse_jrc(tmp_path)
    got = scene_areas(path, permanent=jrc30, strip_rows=7)
    want = chip_areas(cls, row_km2=row_areas_km2("EPSG:4326", GRID, 60), permanent=fine)
    for k, v in want.items():
        assert got[k] == pytest.approx(v, rel=1e-12, nan_ok=True), k
    assert 0 < got["flood_km2"] < got["water_km2"] and got["permanent_km2"] > 0
    plain = scene_areas(path)
    assert np.isnan(plain["flood_km2"]) and plain["water_km2"] == pytest.approx(got["water_km2"])


def test_polygons_tagged_flood_and_permanent_with_km2(tmp_path):
    path, _ = class_map(tmp_path)
    jrc30, fine = coarse_jrc(tmp_path)
    plain = extent_polygons(path)
    assert set(plain["kind"]) == {"water"} and len(plain) == 1
    np.testing.assert_allclose(plain["area_km2"], plain["area_m2"] / 1e6)
    tagged = extent_polygons(path, permanent=jrc30)
    assert sorted(tagged["kind"]) == ["flood", "permanent"]
    assert tagged["area_m2"].sum() == pytest.approx(plain["area_m2"].sum(), rel=1e-5)  # geodesic edges
    areas = scene_areas(path, permanent=jrc30)
    flood = tagged.loc[tagged["kind"] == "flood", "area_km2"].sum()
    assert flood == pytest.approx(areas["flood_km2"], rel=1e-4)  # polygon (geodesic) vs pixel (authalic) area
    same = extent_polygons(path, permanent=fine)
    assert list(same["kind"]) == list(tagged["kind"])
    gpkg, geojson = write_polygons(tagged, tmp_path / "tagged")
    for f in (gpkg, geojson):
        back = pyogrio.read_dataframe(f)
        assert sorted(back["kind"]) == ["flood", "permanent"] and "area_km2" in back.columns


def all_water_checkpoint(tmp_path):
    """unet_tiny whose head ignores its input and says water everywhere (logits 0 dry, 5 water)."""
    model = build_model("unet_tiny", in_channels=2)
    torch = pytest.importorskip("torch")
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.copy_(torch.tensor([0.0, 5.0]))
    spec = ModelSpec(model_name="unet_tiny", model_config=model.config(), inputs=("s1",), bands={"s1": ("VV", "VH")},
                     normalizers={"s1": get_preset("sen1floods11_s1").to_dict()})
    return save_checkpoint(tmp_path / "water.safetensors", model, spec=spec)


def test_cli_predict_reports_flood_km2_and_records_it(tmp_path, capsys):
    ckpt = all_water_checkpoint(tmp_path)
    s1 = np.random.default_rng(0).uniform(-25, -5, (2, 60, 60)).astype(np.float32)
    s1[:, 55:, :] = np.nan  # nodata rows
    scene = write_tif(tmp_path / "scene.tif", s1, descriptions=("VV", "VH"), transform=GRID)
    jrc30, fine = coarse_jrc(tmp_path)
    out = tmp_path / "out"
    argv = ["predict", str(ckpt), str(scene), "--out-dir", str(out), "--tile", "64", "--overlap", "8",
            "--polygons", "--permanent-water", str(jrc30)]
    assert cli_main(argv) == 0
    printed = capsys.readouterr().out
    assert "water " in printed and "flood " in printed and "permanent water" in printed
    result = json.loads((out / "scene_water.done.json").read_text())["result"]
    with rasterio.open(out / "scene_water.tif") as ds:
        cls = ds.read(1)
    want = chip_areas(cls, row_km2=row_areas_km2("EPSG:4326", GRID, 60), permanent=fine)
    assert (cls[:55] == 1).all() and (cls[55:] == -1).all()
    assert result["flood_km2"] == pytest.approx(want["flood_km2"]) and result["ref_water_km2"] is None
    assert 0 < result["flood_km2"] < result["water_km2"]
    assert f"flood {want['flood_km2']:.4f} km²" in printed
    kinds = set(pyogrio.read_dataframe(out / "scene_water.gpkg")["kind"])
    assert kinds == {"flood", "permanent"}
    far = write_tif(tmp_path / "far.tif", np.ones((5, 5), np.uint8), transform=from_origin(-60.0, -20.0, PIX, PIX))
    assert cli_main(argv[:-1] + [str(far), "--overwrite"]) == 2
    assert "far.tif" in capsys.readouterr().err
