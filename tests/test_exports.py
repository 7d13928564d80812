"""floodnb.viz.exports: the dashboard's downloads read back with rasterio / geopandas / pandas."""

from __future__ import annotations

import io

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from rasterio.io import MemoryFile
from rasterio.transform import from_origin

from floodnb.area import chip_areas, row_areas_km2
from floodnb.geotiff import write_geotiff
from floodnb.viz.exports import polygons_bytes, prediction_geotiff_bytes, prediction_paths, table_csv_bytes

PIX = 8.983152841195215e-05
N = 16


def _chips(tmp_path):
    """Two adjacent 16 px chips (E_1 west, E_2 east) with water blocks, and their JRC layers."""
    folder = tmp_path / "predictions"
    a = np.zeros((N, N), np.int8)
    a[2:8, 2:14] = 1
    a[15, :] = -1
    b = np.zeros((N, N), np.int8)
    b[4:12, 0:6] = 1
    ta, tb = from_origin(20.0, 5.0, PIX, PIX), from_origin(20.0 + N * PIX, 5.0, PIX, PIX)
    for cid, arr, t in (("E_1", a, ta), ("E_2", b, tb)):
        write_geotiff(folder / f"{cid}_pred.tif", arr, crs="EPSG:4326", transform=t, nodata=-1)
    jrc_a = np.zeros((N, N), np.int16)
    jrc_a[2:8, 2:6] = 1  # part of E_1's water is permanent
    jrc_b = np.zeros((N, N), np.int16)
    write_geotiff(tmp_path / "E_1_JRCWaterHand.tif", jrc_a, crs="EPSG:4326", transform=ta)
    write_geotiff(tmp_path / "E_2_JRCWaterHand.tif", jrc_b, crs="EPSG:4326", transform=tb)
    return folder, (a, b), [tmp_path / "E_1_JRCWaterHand.tif", tmp_path / "E_2_JRCWaterHand.tif"]


def test_prediction_geotiff_of_one_chip_and_of_an_event(tmp_path):
    folder, (a, b), _ = _chips(tmp_path)
    one = prediction_geotiff_bytes(prediction_paths(folder, ["E_1"]))
    with MemoryFile(one) as mem, mem.open() as ds:
        np.testing.assert_array_equal(ds.read(1), a)
        assert ds.crs.to_epsg() == 4326 and ds.nodata == -1 and ds.dtypes[0] == "int8"
    event = prediction_geotiff_bytes(prediction_paths(folder, ["E_1", "E_2"]))
    with MemoryFile(event) as mem, mem.open() as ds:
        assert ds.shape == (N, 2 * N)
        mosaic = ds.read(1)
        assert ds.transform.almost_equals(from_origin(20.0, 5.0, PIX, PIX))
    np.testing.assert_array_equal(mosaic[:, :N], a)
    np.testing.assert_array_equal(mosaic[:, N:], b)


def test_polygons_of_an_event_carry_kind_and_area(tmp_path):
    folder, (a, b), jrc = _chips(tmp_path)
    paths = prediction_paths(folder, ["E_1", "E_2"])
    gj = gpd.read_file(io.BytesIO(polygons_bytes(paths, "geojson")))
    assert set(gj["kind"]) == {"water"} and gj.crs.to_epsg() == 4326
    # E_1's block ends at mosaic column 13, E_2's starts at column 16: two polygons
    assert len(gj) == 2
    rows = row_areas_km2("EPSG:4326", from_origin(20.0, 5.0, PIX, PIX), N)
    want = chip_areas(np.hstack([a, b]), row_km2=rows)["water_km2"]
    assert gj["area_km2"].sum() == pytest.approx(want, rel=1e-4)
    tagged = tmp_path / "tagged.gpkg"
    tagged.write_bytes(polygons_bytes(paths, "gpkg", permanent=jrc))
    back = gpd.read_file(tagged)
    assert sorted(back["kind"]) == ["flood", "flood", "permanent"]
    perm = back.loc[back["kind"] == "permanent", "area_km2"].sum()
    assert perm == pytest.approx(6 * 4 * rows[2], rel=1e-3)
    assert back["area_km2"].sum() == pytest.approx(want, rel=1e-4)


def test_export_errors_name_what_is_wrong(tmp_path):
    folder, _, _ = _chips(tmp_path)
    with pytest.raises(FileNotFoundError, match="E_9_pred.tif"):
        prediction_paths(folder, ["E_1", "E_9"])
    with pytest.raises(ValueError, match="fmt='shp'"):
        polygons_bytes(prediction_paths(folder, ["E_1"]), "shp")
    utm = write_geotiff(folder / "U_1_pred.tif", np.zeros((4, 4), np.int8), crs="EPSG:32633",
                        transform=from_origin(5e5, 5e6, 10, 10), nodata=-1)
    with pytest.raises(ValueError, match="one CRS"):
        prediction_geotiff_bytes([folder / "E_1_pred.tif", utm])


def test_table_csv_round_trips():
    df = pd.DataFrame({"chip_id": ["E_1", "E_2"], "water_km2": [0.0123, np.nan], "kind": ["a,b", "é"]})
    back = pd.read_csv(io.BytesIO(table_csv_bytes(df)))
    pd.testing.assert_frame_equal(back, df)
    with pytest.raises(TypeError, match="DataFrame"):
        table_csv_bytes([1, 2])
