"""Overviews built while strips stream by (floodnb.predict.pyramid) and the COGs made from them."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from floodnb.predict.export import to_cog, validate_cog
from floodnb.predict.pyramid import PyramidTiff, overview_shapes, reduce_average, reduce_mode
from floodnb.predict.scene_writer import SceneWriter


def test_reduce_mode_majority_of_valid_pixels_ties_to_water_nodata_when_none_valid():
    rows = np.array([[1, 1, 0, 1, -1, -1, 0, 1, 0],
                     [1, 0, 0, 0, -1, -1, 1, 0, -1]], dtype=np.int8)
    # windows: {1,1,1,0} water, {0,1,0,0} dry, all nodata, {0,1,1,0} tie -> water, last column {0,-1} dry
    np.testing.assert_array_equal(reduce_mode(rows), [[1, 0, -1, 1, 0]])
    np.testing.assert_array_equal(reduce_mode(rows[:1]), [[1, 1, -1, 1, 0]])  # a last odd row: 1 x 2 windows
    assert reduce_mode(rows).dtype == np.int8


def test_reduce_average_of_valid_pixels_rounds_half_up():
    p = np.array([[10, 11, 255, 255, 0, 100, 7],
                  [20, 21, 255, 40, 1, 100, 255]], dtype=np.uint8)
    # (10+11+20+21)/4 = 15.5 -> 16; only 40; (0+100+1+100)/4 = 50.25 -> 50; 7 alone
    np.testing.assert_array_equal(reduce_average(p, 255), [[16, 40, 50, 7]])
    f = np.array([[0.1, 0.3], [-1.0, 0.5]], dtype=np.float32)
    np.testing.assert_allclose(reduce_average(f, -1.0), [[0.3]], rtol=1e-6)
    assert reduce_average(np.full((2, 2), -1.0, np.float32), -1.0)[0, 0] == -1.0


def test_overview_levels_are_those_gdal_would_make():
    for h, w in ((10000, 10000), (700, 300), (512, 512), (2048, 100), (5000, 2049)):
        block = 512 if max(h, w) >= 2048 else 256
        shapes = overview_shapes(h, w, block)
        assert all(max(s) > block for s in [(h, w)] + shapes[:-1]) and (not shapes or max(shapes[-1]) <= block)


@pytest.mark.parametrize("dtype", ["int8", "uint8"])
def test_streamed_pyramid_equals_the_levels_of_the_whole_map_and_gives_the_cog_gdal_makes(tmp_path, dtype):
    """Strips of uneven heights: each level equals the reduction of the whole map, level by level; the COG
    made from the VRT has the overview factors, metadata and layout of a COG GDAL builds itself.
    """
    rng = np.random.default_rng(0)
    h, w = 2500, 1300
    if dtype == "int8":
        full = rng.choice(np.array([-1, 0, 1], np.int8), size=(h, w), p=[0.1, 0.5, 0.4])
        nodata, reducer, reduce = -1, "mode", reduce_mode
    else:
        full = rng.integers(0, 101, size=(h, w)).astype(np.uint8)
        full[rng.random((h, w)) < 0.1] = 255
        nodata, reducer, reduce = 255, "average", lambda a: reduce_average(a, 255)
    tr = from_origin(10.0, 45.0, 1e-4, 1e-4)
    pyr = PyramidTiff(tmp_path / "m.tif", height=h, width=w, dtype=dtype, nodata=nodata, crs="EPSG:4326",
                      transform=tr, reducer=reducer, scale=0.01 if dtype == "uint8" else None, description="map")
    r = 0
    for n in (97, 3, 250, 1, 1, 700, 1448):
        pyr.write(r, full[r:r + n])
        r += n
    pyr.close()
    assert r == h
    levels, want = [], full
    for lv in pyr.levels:
        want = np.concatenate([reduce(want[i:i + 2]) for i in range(0, len(want), 2)])
        with rasterio.open(lv.path) as ds:
            got = ds.read(1)
        np.testing.assert_array_equal(got, want)
        levels.append(want)
    cog = to_cog(pyr.vrt(), tmp_path / "cog.tif", resampling="NEAREST")
    plain = tmp_path / "plain.tif"
    with rasterio.open(plain, "w", driver="GTiff", height=h, width=w, count=1, dtype=dtype, nodata=nodata,
                       crs="EPSG:4326", transform=tr) as ds:
        ds.write(full, 1)
    ref = to_cog(plain, tmp_path / "ref.tif", resampling="NEAREST")
    assert validate_cog(cog) == []
    with rasterio.open(cog) as a, rasterio.open(ref) as b:
        assert a.overviews(1) == b.overviews(1) == [2, 4, 8]
        assert (a.crs, a.transform, a.nodata, a.dtypes, a.block_shapes) == (b.crs, b.transform, b.nodata, b.dtypes,
                                                                          b.block_shapes)
        assert a.descriptions == ("map",) and a.scales == ((0.01,) if dtype == "uint8" else (1.0,))
        np.testing.assert_array_equal(a.read(1), full)
        for f, lv in zip(a.overviews(1), levels, strict=True):
            assert lv.shape == (-(-h // f), -(-w // f))
            np.testing.assert_array_equal(a.read(1, out_shape=lv.shape), lv)  # the streamed levels, copied


def test_incomplete_pyramid_has_no_vrt_and_bad_reducer_is_refused(tmp_path):
    pyr = PyramidTiff(tmp_path / "m.tif", height=600, width=600, dtype="int8", nodata=-1, crs="EPSG:4326",
                      transform=from_origin(10, 45, 1e-4, 1e-4), reducer="mode")
    pyr.write(0, np.zeros((100, 600), np.int8))
    pyr.close()
    with pytest.raises(ValueError, match=r"m.tif: 100 of 600 rows written; the pyramid is incomplete"):
        pyr.vrt()
    with pytest.raises(ValueError, match="reducer must be one of"):
        PyramidTiff(tmp_path / "x.tif", height=10, width=10, dtype="int8", nodata=-1, crs=None,
                    transform=from_origin(10, 45, 1e-4, 1e-4), reducer="median")


def test_scene_writer_cogs_carry_the_streamed_overviews(tmp_path):
    rng = np.random.default_rng(1)
    h, w = 900, 700
    prob = rng.random((h, w)).astype(np.float32)
    valid = rng.random((h, w)) > 0.05
    work = tmp_path / "work"
    work.mkdir()
    with SceneWriter(work / "c.tif", work / "p.tif", height=h, width=w, crs="EPSG:4326",
                     transform=from_origin(0, 0, 1e-4, 1e-4), threshold=0.5, prob_dtype="uint8") as sw:
        for r0 in range(0, h, 128):
            sw.write(r0, prob[r0:r0 + 128], valid[r0:r0 + 128])
        cls_path, prob_path = sw.to_cogs(tmp_path / "c.tif", tmp_path / "p.tif")
    cls = np.where(valid, (prob > 0.5).astype(np.int8), -1)
    for path, full, reduce in ((cls_path, cls, reduce_mode),
                               (prob_path, np.where(valid, np.rint(prob * 100), 255).astype(np.uint8),
                                lambda a: reduce_average(a, 255))):
        assert validate_cog(path) == []
        with rasterio.open(path) as ds:
            np.testing.assert_array_equal(ds.read(1), full)
            want = np.concatenate([reduce(full[i:i + 2]) for i in range(0, h, 2)])
            np.testing.assert_array_equal(ds.read(1, out_shape=want.shape), want)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.tif", "p.tif", "work"]
