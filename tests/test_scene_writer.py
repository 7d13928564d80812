"""floodnb.predict.scene_writer.SceneWriter: strips -> encoded scratch GeoTIFFs -> COGs, with pixel counts."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from floodnb.predict.export import validate_cog
from floodnb.predict.scene_writer import SceneWriter

TR = from_origin(10.0, 45.0, 1e-4, 1e-4)


def _strips(h: int = 40, w: int = 24, step: int = 16):
    rng = np.random.default_rng(0)
    prob = rng.random((h, w), dtype=np.float32)
    valid = np.ones((h, w), bool)
    valid[:, -3:] = False
    return prob, valid, [(r, prob[r:r + step], valid[r:r + step]) for r in range(0, h, step)]


@pytest.mark.parametrize("prob_dtype", ["uint8", "float32"])
def test_strips_become_cogs_with_counts(tmp_path, prob_dtype):
    prob, valid, strips = _strips()
    with SceneWriter(tmp_path / "c.tmp.tif", tmp_path / "p.tmp.tif", height=40, width=24, crs="EPSG:4326",
                     transform=TR, threshold=0.5, prob_dtype=prob_dtype) as w:
        w.write_all(strips)
        cls_path, prob_path = w.to_cogs(tmp_path / "class.tif", tmp_path / "prob.tif")
    water = (prob >= 0.5) & valid
    assert w.n_valid == int(valid.sum()) and w.n_water == int(water.sum())
    with rasterio.open(cls_path) as ds:
        cls = ds.read(1)
        assert ds.dtypes[0] == "int8" and ds.nodata == -1 and ds.transform == TR
    np.testing.assert_array_equal(cls, np.where(valid, water.astype(np.int8), -1))
    with rasterio.open(prob_path) as ds:
        stored = ds.read(1)
        assert ds.dtypes[0] == prob_dtype
    if prob_dtype == "uint8":
        np.testing.assert_array_equal(stored[valid], np.rint(prob[valid] * 100).astype(np.uint8))
        assert (stored[~valid] == 255).all()
    else:
        np.testing.assert_allclose(stored[valid], prob[valid])
        assert (stored[~valid] == -1).all()
    assert validate_cog(cls_path) == [] and validate_cog(prob_path) == []


def test_class_only_and_strips_out_of_order(tmp_path):
    prob, valid, strips = _strips()
    with SceneWriter(tmp_path / "c.tmp.tif", None, height=40, width=24, crs="EPSG:4326", transform=TR,
                     threshold=0.9, prob_dtype="uint8") as w:
        assert not w.has_prob
        with pytest.raises(ValueError, match="in order"):
            w.write(*strips[1])
        w.write_all(strips)
        cls_path, prob_path = w.to_cogs(tmp_path / "class.tif", tmp_path / "never.tif")
    assert prob_path is None and not (tmp_path / "never.tif").exists() and cls_path.is_file()
    assert w.n_water == int(((prob >= 0.9) & valid).sum())
