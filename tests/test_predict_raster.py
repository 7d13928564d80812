"""floodnb.predict on rasters: streamed tiles, COG outputs, polygons, checkpoints, CLI, bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyogrio
import pytest
import rasterio
from _real_data import REAL_ROOT, chip_size, repeat_to_scene
from rasterio.transform import from_origin
from test_predict import IDENTITY, vh_threshold_model

from floodnb.cli import main as cli_main
from floodnb.data.io import load_chip
from floodnb.data.normalize import get_preset
from floodnb.models import ModelSpec, build_model, save_checkpoint
from floodnb.predict import (
    extent_polygons,
    predict_chip,
    predict_raster,
    validate_cog,
    write_polygons,
)
from floodnb.predict.raster import GeoTiffSource

REAL_S1 = REAL_ROOT / "HandLabeled" / "S1Hand" / "Ghana_97059_S1Hand.tif"
SCENE = 512  # px: tiles of 128-256 px, COG overviews
PIX = 8.983152841195215e-05


@pytest.fixture(scope="module")
def s1_file(tmp_path_factory) -> Path:
    """A real S1 scene of at least 512 x 512 px: the shared sample's chip itself, or (in-repo fixture,
    64 px windows) that window repeated into a 512 px GeoTIFF on the window's own grid, same bands,
    dtype and nodata, so tiling, overviews and COG layout are exercised on real values either way.
    """
    if chip_size(REAL_ROOT) >= SCENE:
        return REAL_S1
    return repeat_to_scene(REAL_S1, tmp_path_factory.mktemp("scene") / REAL_S1.name, size=SCENE)


def write_tif(path: Path, data: np.ndarray, *, descriptions=None, crs="EPSG:4326", transform=None, nodata=None):
    data = np.asarray(data)
    if data.ndim == 2:
        data = data[None]
    transform = transform or from_origin(-1.0, 9.0, PIX, PIX)
    with rasterio.open(path, "w", driver="GTiff", height=data.shape[1], width=data.shape[2], count=data.shape[0],
                       dtype=data.dtype, crs=crs, transform=transform, nodata=nodata) as ds:
        ds.write(data)
        if descriptions:
            for i, d in enumerate(descriptions, 1):
                ds.set_band_description(i, d)
    return path


def read1(path: Path) -> np.ndarray:
    with rasterio.open(path) as ds:
        return ds.read(1)


def test_streamed_raster_equals_whole_chip_and_is_cog(tmp_path, s1_file):
    m = vh_threshold_model()
    chip = load_chip({"s1": str(s1_file)})
    whole = predict_chip(m, chip, normalizers=IDENTITY)
    res = predict_raster(m, s1_file, tmp_path / "scene_water.tif", tile=128, overlap=32, batch=3,
                         normalizers=IDENTITY, prob_dtype="float32", progress=False)
    assert res.prob_path == tmp_path / "scene_water_prob.tif"
    prob, cls = read1(res.prob_path), read1(res.class_path)
    valid = whole["pred"].values >= 0
    np.testing.assert_allclose(prob[valid], whole["prob"].values[valid], atol=1e-6)
    assert (prob[~valid] == -1.0).all()
    np.testing.assert_array_equal(cls, whole["pred"].values.astype(np.int8))
    assert res.n_water == int((cls == 1).sum()) and res.n_valid == int(valid.sum())
    for p in (res.class_path, res.prob_path):
        assert validate_cog(p) == []
        with rasterio.open(p) as ds:
            assert ds.profile["tiled"] and ds.overviews(1) and ds.crs == chip.rio.crs
            assert ds.transform.almost_equals(chip.rio.transform())
    with rasterio.open(res.class_path) as ds:
        assert ds.dtypes[0] == "int8" and ds.nodata == -1
    # nothing but the outputs is left in the folder (scratch files removed)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scene_water.tif", "scene_water_prob.tif"]


def test_uint8_probability_encoding_and_separate_band_files(tmp_path, s1_file):
    with rasterio.open(s1_file) as ds:
        vv, vh, transform = ds.read(1), ds.read(2), ds.transform
    vv_f = write_tif(tmp_path / "vv.tif", vv, transform=transform)
    vh_f = write_tif(tmp_path / "vh.tif", vh, transform=transform)
    m = vh_threshold_model()
    a = predict_raster(m, [vv_f, vh_f], tmp_path / "a.tif", tile=200, overlap=40, normalizers=IDENTITY,
                       progress=False)
    b = predict_raster(m, s1_file, tmp_path / "b.tif", tile=512, overlap=0, normalizers=IDENTITY, progress=False)
    np.testing.assert_array_equal(read1(a.class_path), read1(b.class_path))
    pa, pb = read1(a.prob_path), read1(b.prob_path)
    assert pa.dtype == np.uint8 and pa.max() <= 100 and ((pa == 255) == (read1(b.class_path) == -1)).all()
    assert np.abs(pa.astype(int) - pb.astype(int)).max() <= 1
    with rasterio.open(a.prob_path) as ds:
        assert ds.nodata == 255 and ds.scales[0] == pytest.approx(0.01)


def test_nan_windows_skip_the_model_and_become_nodata(tmp_path):
    rng = np.random.default_rng(1)
    data = rng.normal(-15, 6, (2, 300, 400)).astype(np.float32)
    data[:, :150, :] = np.nan  # whole tile rows without data
    src = write_tif(tmp_path / "s1.tif", data, descriptions=("VV", "VH"))
    res = predict_raster(vh_threshold_model(), src, tmp_path / "out.tif", tile=64, overlap=16,
                         normalizers=IDENTITY, progress=False)
    cls, prob = read1(res.class_path), read1(res.prob_path)
    assert (cls[:150] == -1).all() and (prob[:150] == 255).all()
    assert (cls[150:] >= 0).all() and (prob[150:] <= 100).all()
    assert res.n_forward < res.n_tiles


def test_reads_are_strips_of_tile_rows(tmp_path, monkeypatch):
    """Bounded memory: the source is read one strip of `tile` rows at a time (in column chunks, one per
    row worker), each part once, never whole.
    """
    rng = np.random.default_rng(2)
    src = write_tif(tmp_path / "s1.tif", rng.normal(-15, 6, (2, 700, 333)).astype(np.float32))
    orig = GeoTiffSource.read
    for workers in (1, 2, 3):
        calls = []

        def spy(self, row0, nrows, col0=0, ncols=None, calls=calls):
            calls.append((row0, nrows, col0, self.width - col0 if ncols is None else ncols))
            return orig(self, row0, nrows, col0, ncols)

        monkeypatch.setattr(GeoTiffSource, "read", spy)
        res = predict_raster(vh_threshold_model(), src, tmp_path / f"o{workers}.tif", tile=96, overlap=32,
                             normalizers=IDENTITY, write_prob=False, progress=False, row_workers=workers)
        assert res.prob_path is None and not (tmp_path / f"o{workers}_prob.tif").exists()
        assert all(n == 96 for _, n, _, _ in calls) and len(calls) == len(set(calls)) == 11 * workers
        rows = sorted({r for r, _, _, _ in calls})
        assert rows[-1] + 96 == 700 and len(rows) == 11
        for r in rows:  # the chunks of a row cover its columns, overlapping by at most one tile's overlap
            spans = sorted((c, c + n) for r2, _, c, n in calls if r2 == r)
            assert spans[0][0] == 0 and spans[-1][1] == 333
            assert all(0 <= a[1] - b[0] <= 96 for a, b in zip(spans, spans[1:], strict=False))


def test_default_batch_fills_512_squared_pixels_per_forward_pass_and_gives_the_same_maps(tmp_path, monkeypatch,
                                                                                        s1_file):
    """batch=None runs 512² px per forward pass (1 tile of 512², 4 of 256², 16 of 128²); the maps do not
    depend on the batch.
    """
    from floodnb.predict.model import Predictor
    from floodnb.predict.tiles import resolve_batch

    assert [resolve_batch(None, t, t) for t in (1024, 512, 300, 256, 128)] == [1, 1, 2, 4, 16]
    assert resolve_batch(3, 512, 512) == 3
    for bad in (0, -2, 1.5, True, "4"):
        with pytest.raises(ValueError, match="batch must be an integer >= 1"):
            resolve_batch(bad, 512, 512)
    sizes: list[int] = []
    orig = Predictor.forward

    def spy(self, x):
        sizes.append(len(x))
        return orig(self, x)

    monkeypatch.setattr(Predictor, "forward", spy)
    m = vh_threshold_model()
    auto = predict_raster(m, s1_file, tmp_path / "auto.tif", tile=128, overlap=32, normalizers=IDENTITY,
                          prob_dtype="float32", progress=False, row_workers=1)
    assert max(sizes) == 5 and sum(sizes) == auto.n_forward  # 5 tile columns of 128 px: one forward pass a row
    sizes.clear()
    one = predict_raster(m, s1_file, tmp_path / "one.tif", tile=128, overlap=32, batch=1, normalizers=IDENTITY,
                         prob_dtype="float32", progress=False, row_workers=1)
    assert set(sizes) == {1}
    np.testing.assert_array_equal(read1(auto.prob_path), read1(one.prob_path))
    np.testing.assert_array_equal(read1(auto.class_path), read1(one.class_path))
    with pytest.raises(ValueError, match="batch must be an integer >= 1"):
        predict_raster(m, s1_file, tmp_path / "bad.tif", tile=128, batch=0, normalizers=IDENTITY, progress=False)
    assert not (tmp_path / "bad.tif").exists()


def test_bad_rasters_get_clear_errors_and_outputs_are_protected(tmp_path, s1_file):
    m = vh_threshold_model()
    three = write_tif(tmp_path / "three.tif", np.zeros((3, 40, 40), np.float32))
    with pytest.raises(ValueError, match=r"three\.tif has 3 band\(s\).*expected 2 bands \['VV', 'VH'\]"):
        predict_raster(m, three, tmp_path / "o.tif", normalizers=IDENTITY, progress=False)
    hh = write_tif(tmp_path / "hh.tif", np.zeros((2, 40, 40), np.float32), descriptions=("HH", "HV"))
    with pytest.raises(ValueError, match=r"hh\.tif has bands \['HH', 'HV'\].*missing \['VV', 'VH'\]"):
        predict_raster(m, hh, tmp_path / "o.tif", normalizers=IDENTITY, progress=False)
    with pytest.raises(FileNotFoundError, match="nope.tif"):
        predict_raster(m, tmp_path / "nope.tif", tmp_path / "o.tif", normalizers=IDENTITY, progress=False)
    with pytest.raises(ValueError, match="one of the input rasters"):
        predict_raster(m, s1_file, s1_file, normalizers=IDENTITY, progress=False, overwrite=True)
    existing = tmp_path / "keep.tif"
    existing.write_bytes(b"user data")
    with pytest.raises(FileExistsError, match="keep.tif"):
        predict_raster(m, s1_file, existing, normalizers=IDENTITY, progress=False)
    assert existing.read_bytes() == b"user data"


def test_failure_midway_leaves_no_output(tmp_path, s1_file):
    class Boom(type(vh_threshold_model())):
        calls = 0

        def forward(self, x):
            Boom.calls += 1
            if Boom.calls > 3:
                raise RuntimeError("model failed")
            return super().forward(x)

    m = Boom(2, 2, 1)
    with pytest.raises(RuntimeError, match="model failed"):
        predict_raster(m, s1_file, tmp_path / "out.tif", tile=128, overlap=32, batch=1, normalizers=IDENTITY,
                       progress=False)
    assert list(tmp_path.iterdir()) == []


def test_validate_cog_rejects_plain_geotiff(tmp_path):
    plain = write_tif(tmp_path / "plain.tif", np.zeros((1, 1024, 1024), np.int8))
    problems = validate_cog(plain)
    assert any("overviews" in p for p in problems) and any("COG layout" in p for p in problems)


def test_polygons_geodesic_area_in_4326_and_utm(tmp_path):
    # 4326, at 60 N: a 100 x 50 pixel water rectangle (~10 m pixels) and a 2 x 2 speck
    cls = np.zeros((200, 200), np.int8)
    cls[20:120, 30:80] = 1
    cls[150:152, 150:152] = 1
    cls[190:, :] = -1
    path = write_tif(tmp_path / "cls.tif", cls, transform=from_origin(10.0, 60.0, PIX, PIX), nodata=-1)
    gdf = extent_polygons(path)
    assert len(gdf) == 2 and gdf["area_m2"].iloc[0] > gdf["area_m2"].iloc[1]
    # independent check: the same polygon's area in its local UTM zone
    utm = gdf.to_crs(gdf.estimate_utm_crs())
    np.testing.assert_allclose(gdf["area_m2"].values, utm.area.values, rtol=2e-3)
    # a degree pixel is ~10 m x ~5 m at 60 N: 5000 px -> about 5000 * 10.0 * 5.0 m² (not 5000 * 100)
    assert 0.45 * 5000 * 100 < gdf["area_m2"].iloc[0] < 0.55 * 5000 * 100
    big_only = extent_polygons(path, min_area_m2=1000.0)
    assert len(big_only) == 1
    # projected input (UTM 33N, 10 m pixels): area is exactly pixels x 100 m² up to the UTM scale factor
    utm_path = write_tif(tmp_path / "cls_utm.tif", cls, crs="EPSG:32633",
                         transform=from_origin(500000, 6650000, 10, 10), nodata=-1)
    g2 = extent_polygons(utm_path, min_area_m2=1000.0)
    assert g2["area_m2"].iloc[0] == pytest.approx(5000 * 100.0, rel=2e-3)
    gpkg, geojson = write_polygons(gdf, tmp_path / "extent")
    back = pyogrio.read_dataframe(gpkg)
    assert len(back) == 2 and back.crs.to_epsg() == 4326
    np.testing.assert_allclose(back["area_m2"].values, gdf["area_m2"].values)
    gj = pyogrio.read_dataframe(geojson)
    assert len(gj) == 2 and gj.crs.to_epsg() == 4326
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_polygons_from_predict_chip_dataset_and_empty_result(tmp_path, s1_file):
    chip = load_chip({"s1": str(s1_file)})
    out = predict_chip(vh_threshold_model(), chip, normalizers=IDENTITY)
    gdf = extent_polygons(out, min_area_m2=0.0)
    n_water = int((out["pred"].values == 1).sum())
    assert n_water > 0 and len(gdf) > 0
    # total polygon area ~ water pixels x pixel area (~9.9 m x 9.9 m at 9 N)
    assert gdf["area_m2"].sum() == pytest.approx(n_water * 9.86 * 9.93, rel=0.02)
    none = extent_polygons(out["pred"].where(out["pred"] < 1, 0).astype(np.int16).rio.write_crs(4326))
    assert len(none) == 0
    gpkg, geojson = write_polygons(none, tmp_path / "empty.gpkg")
    assert len(pyogrio.read_dataframe(gpkg)) == 0 and geojson.name == "empty.geojson"


def _checkpoint(tmp_path: Path):
    model = build_model("unet_tiny", in_channels=2)
    spec = ModelSpec(model_name="unet_tiny", model_config=model.config(), inputs=("s1",), bands={"s1": ("VV", "VH")},
                     normalizers={"s1": get_preset("sen1floods11_s1").to_dict()})
    return save_checkpoint(tmp_path / "student.safetensors", model, spec=spec), model


def test_checkpoint_path_and_pair_give_same_prediction(tmp_path, s1_file):
    from floodnb.models import load_checkpoint

    ckpt, model = _checkpoint(tmp_path)
    chip = load_chip({"s1": str(s1_file)})
    a = predict_chip(ckpt, chip)
    b = predict_chip(load_checkpoint(ckpt), chip)
    c = predict_chip(model, chip, normalizers={"s1": get_preset("sen1floods11_s1")})
    np.testing.assert_array_equal(a["prob"].values, b["prob"].values)
    np.testing.assert_allclose(a["prob"].values, c["prob"].values, atol=1e-6)
    assert a.attrs["checkpoint"] == str(ckpt) and a.attrs["model"] == "unet_tiny"
    with pytest.raises(ValueError, match="records its inputs"):
        predict_chip(ckpt, chip, normalizers={"s1": get_preset("sen1floods11_s1")})
    s2_model = build_model("unet_tiny", in_channels=13)
    s2_spec = ModelSpec(model_name="unet_tiny", model_config=s2_model.config(), inputs=("s2",),
                        bands={"s2": tuple(get_preset("s2_l1c").bands)},
                        normalizers={"s2": get_preset("s2_l1c").to_dict()})
    with pytest.raises(ValueError, match=r"no 's2' variable"):
        predict_chip((s2_model, s2_spec), chip)


def test_cli_predict_writes_cogs_and_polygons_then_skips(tmp_path, capsys, s1_file):
    ckpt, _ = _checkpoint(tmp_path)
    out = tmp_path / "out"
    argv = ["predict", str(ckpt), str(s1_file), "--out-dir", str(out), "--tile", "256", "--overlap", "32",
            "--polygons", "--min-area", "200"]
    assert cli_main(argv) == 0
    stem = s1_file.stem
    for name in (f"{stem}_water.tif", f"{stem}_water_prob.tif", f"{stem}_water.gpkg", f"{stem}_water.geojson"):
        assert (out / name).is_file(), name
    assert validate_cog(out / f"{stem}_water.tif") == []
    mtime = (out / f"{stem}_water.tif").stat().st_mtime_ns
    assert cli_main(argv) == 0
    assert "skipped" in capsys.readouterr().out
    assert (out / f"{stem}_water.tif").stat().st_mtime_ns == mtime
    bad = write_tif(tmp_path / "bad.tif", np.zeros((3, 40, 40), np.float32))
    assert cli_main(["predict", str(ckpt), str(bad), "--out-dir", str(out)]) == 2
    assert "bad.tif has 3 band(s)" in capsys.readouterr().err


def test_windowed_reads_apply_nodata_and_keep_band_order(tmp_path):
    """GeoTiffSource.read: float32 bands in order are read straight into the strip, others (reordered, int16)
    through a cast; the file's nodata value becomes NaN either way; the files are not changed.
    """
    from floodnb.predict.sources import GeoTiffSource

    rng = np.random.default_rng(3)
    data = rng.normal(-15, 5, (2, 40, 30)).astype(np.float32)
    data[0, 5, 6] = data[1, 7, 8] = -9999.0
    f32 = write_tif(tmp_path / "f32.tif", data, nodata=-9999.0)
    i16 = write_tif(tmp_path / "i16.tif", np.rint(data).astype(np.int16), nodata=-9999)
    before = {p: p.read_bytes() for p in (f32, i16)}
    for path, ref in ((f32, data), (i16, np.rint(data).astype(np.int16).astype(np.float32))):
        for order in ((1, 2), (2, 1)):
            src = GeoTiffSource(name="s", bands=tuple((str(path), b) for b in order), height=40, width=30,
                                crs=None, transform=None)
            got = src.read(3, 10)
            want = ref[[b - 1 for b in order], 3:13].copy()
            want[want == -9999.0] = np.nan
            assert got.shape == (2, 10, 30) and got.dtype == np.float32
            np.testing.assert_array_equal(got, want)
            assert np.isnan(got).sum() == 2
    assert {p: p.read_bytes() for p in (f32, i16)} == before


def test_in_memory_scene_is_not_modified_by_prediction(tmp_path):
    """An xr.DataArray source is read as views of the user's array: prediction never normalises it in place."""
    import rioxarray  # noqa: F401
    import xarray as xr

    rng = np.random.default_rng(4)
    arr = rng.normal(-15, 5, (2, 200, 150)).astype(np.float32)
    arr[1, 10:20, 30:40] = np.nan
    da = xr.DataArray(arr, dims=("band", "y", "x"), coords={"band": ["VV", "VH"], "y": -np.arange(200) * PIX,
                                                            "x": np.arange(150) * PIX}).rio.write_crs("EPSG:4326")
    keep = arr.copy()
    res = predict_raster(vh_threshold_model(), da, tmp_path / "mem.tif", tile=96, overlap=16,
                         normalizers={"s1": get_preset("sen1floods11_s1")}, progress=False)
    np.testing.assert_array_equal(da.values, keep)
    cls = read1(res.class_path)
    assert (cls[10:20, 30:40] == -1).all() and (cls >= 0).sum() == 200 * 150 - 100


def write_tiled(path: Path, data: np.ndarray, block: int, **kw) -> Path:
    with rasterio.open(path, "w", driver="GTiff", height=data.shape[1], width=data.shape[2], count=data.shape[0],
                       dtype=data.dtype, crs="EPSG:4326", transform=from_origin(-1.0, 9.0, PIX, PIX), tiled=True,
                       blockxsize=block, blockysize=block, **kw) as ds:
        ds.write(data)
        for i, d in enumerate(("VV", "VH")[:data.shape[0]], 1):
            ds.set_band_description(i, d)
    return path


def test_scene_check_reads_a_sample_of_whole_blocks_including_the_corners(tmp_path):
    """A scene larger than the check's budget is sampled as whole blocks on a spread grid that
    includes the first and last block rows and columns; a small one is read whole.
    """
    from floodnb.data.units import scene_sample

    data = np.arange(2 * 512 * 384, dtype=np.float32).reshape(2, 512, 384)
    path = write_tiled(tmp_path / "s.tif", data, 64)  # 8 x 6 blocks
    with rasterio.open(path) as ds:
        small = scene_sample(ds, [1, 2], max_pixels=512 * 384)
        sample = scene_sample(ds, [2, 1], max_pixels=4 * 64 * 64)
    np.testing.assert_array_equal(small, data.reshape(2, 1, -1))
    assert sample.shape == (2, 1, 4 * 64 * 64)  # 2 x 2 blocks: the corners
    corners = [data[:, r:r + 64, c:c + 64].reshape(2, -1) for r in (0, 448) for c in (0, 320)]
    np.testing.assert_array_equal(sample[:, 0], np.concatenate(corners, axis=1)[[1, 0]])
    striped = tmp_path / "striped.tif"
    with rasterio.open(striped, "w", driver="GTiff", height=512, width=384, count=1, dtype="float32",
                       crs="EPSG:4326", transform=from_origin(-1.0, 9.0, PIX, PIX), blockysize=1) as ds:
        ds.write(data[:1])
    with rasterio.open(striped) as ds:
        rows = scene_sample(ds, [1], max_pixels=20 * 384)
    assert rows.shape == (1, 1, 20 * 384)  # 20 whole rows, the first and the last among them
    assert rows[0, 0, 0] == data[0, 0, 0] and rows[0, 0, -1] == data[0, -1, -1]


def test_untagged_fill_outside_the_checked_sample_stops_the_stream_naming_file_band_and_rows(tmp_path, monkeypatch):
    """The up-front check reads a sample; every strip read is checked for fill values too, so a fill
    the sample missed still stops prediction (UnitsError naming the file, band and rows: the first
    strip holding it, rows 96..223 of tile row 1) and no output is left.
    """
    import functools

    import floodnb.data.units as units

    rng = np.random.default_rng(5)
    data = rng.normal(-15, 5, (2, 512, 512)).astype(np.float32)
    data[1, 200:230, 200:260] = -9999.0  # inside a block that the 2 x 2 corner sample does not read
    src = write_tiled(tmp_path / "fill.tif", data, 128)
    monkeypatch.setattr(units, "check_scene", functools.partial(units.check_scene, max_side=256))  # 4 blocks
    out = tmp_path / "out"
    want = r"fill.tif: Sentinel-1 band VH has 1440 pixels below -100 dB \(1440 of them exactly -9999"
    with pytest.raises(units.UnitsError, match=want + r".*\(in rows 96\.\.223, columns 0\.\.[0-9]+\)$"):
        predict_raster(vh_threshold_model(), src, out / "o.tif", tile=128, overlap=32, normalizers=IDENTITY,
                       progress=False)
    assert not out.exists() or list(out.iterdir()) == []
    data[1, 200:230, 200:260] = -20.0
    ok = predict_raster(vh_threshold_model(), write_tiled(tmp_path / "ok.tif", data, 128), out / "o.tif", tile=128,
                        overlap=32, normalizers=IDENTITY, progress=False)
    assert (read1(ok.class_path) >= 0).all()
