"""The in-repo Sen1Floods11 fixture (tests/data/sen1floods11) and the script that makes it.

* the committed fixture keeps the Sen1Floods11 conventions (dtypes, band counts, nodata tags, band
  descriptions, strip/deflate layout, CRLF split CSVs of its own chips, metadata of their events),
  its windows hold what PROVENANCE.md says, and it stays small;
* ``make_fixture.py`` crops exactly the window it names with the geotransform shifted to it: run on
  the shared sample when that is the real root (and then it must reproduce the committed fixture
  byte for byte), else on 512 px sources rebuilt from the fixture's own windows.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio
from _real_data import FIXTURE, chip_roles, label_counts, repeat_to_scene, split_chips
from conftest import tree_checksums
from rasterio.windows import Window
from rasterio.windows import transform as window_transform

SCRIPT = FIXTURE.parent / "make_fixture.py"
LAYER_RULES = {  # layer -> (dtype, band count, nodata, descriptions): the Sen1Floods11 v1.1 files
    "S1Hand": ("float32", 2, "nan", ("VV", "VH")),
    "S2Hand": ("int16", 13, 0.0, ("B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B10", "B11", "B12")),
    "LabelHand": ("int16", 1, None, (None,)),
}


@pytest.fixture(scope="module")
def mk():
    spec = importlib.util.spec_from_file_location("make_fixture", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_committed_fixture_follows_the_dataset_conventions(mk):
    total = sum(p.stat().st_size for p in FIXTURE.rglob("*") if p.is_file())
    assert total < 400_000, f"fixture is {total} bytes"
    roles = chip_roles(FIXTURE)
    assert set(roles) == set(mk.WINDOWS)
    for tif in sorted(FIXTURE.glob("HandLabeled/*/*.tif")):
        dtype, count, nodata, desc = LAYER_RULES[tif.parent.name]
        with rasterio.open(tif) as f:
            assert (f.width, f.height) == (mk.SIZE, mk.SIZE) and f.crs.to_epsg() == 4326, tif
            assert f.dtypes[0] == dtype and f.count == count and f.descriptions == desc, tif
            assert (np.isnan(f.nodata) if nodata == "nan" else f.nodata == nodata), tif
            assert f.compression.name == "deflate" and f.interleaving.name == "band" and not f.profile["tiled"]
            assert f.block_shapes[0] == (mk.SIZE, mk.SIZE)  # one strip per band, as the source chips
            assert f.tags()["AREA_OR_POINT"] == "Area" and abs(f.transform.a - 8.983e-05) < 1e-8
    # the edge cases the tests rely on
    assert roles["Spain_7370579"] == {"s1", "s2", "label"} and roles["USA_430764"] == {"s2"}
    with rasterio.open(FIXTURE / "HandLabeled/S1Hand/Paraguay_34417_S1Hand.tif") as f:
        assert np.isnan(f.read()).all()
    assert label_counts(FIXTURE, "Paraguay_34417").get(1, 0) > 0
    assert set(label_counts(FIXTURE, "Ghana_83483")) == {-1} and set(label_counts(FIXTURE, "Ghana_53713")) == {0}
    for cid in ("Mekong_333434", "Spain_7370579", "USA_905409"):
        counts = label_counts(FIXTURE, cid)
        assert counts.get(0, 0) > 100 and counts.get(1, 0) > 100, (cid, counts)  # water and dry
    with rasterio.open(FIXTURE / "HandLabeled/S1Hand/Mekong_333434_S1Hand.tif") as a, \
            rasterio.open(FIXTURE / "HandLabeled/LabelHand/Mekong_333434_LabelHand.tif") as b:
        assert a.transform != b.transform and a.transform.almost_equals(b.transform)  # real round-off kept
    # split CSVs: CRLF, no header, two columns, only the fixture's chips (all in the test split)
    for split in mk.SPLITS:
        raw = (FIXTURE / "splits" / f"flood_{split}_data.csv").read_bytes()
        assert raw == b"" or (raw.endswith(b"\r\n") and b"\n" not in raw.replace(b"\r\n", b""))
    assert sorted(split_chips(FIXTURE, "test")) == sorted(mk.WINDOWS)
    feats = json.loads((FIXTURE / "Sen1Floods11_Metadata.geojson").read_text())["features"]
    assert sorted(f["properties"]["location"] for f in feats) == ["Cambodia", "Ghana", "Paraguay", "Spain", "USA"]
    prov = (FIXTURE / "PROVENANCE.md").read_text()
    assert "Bonafilia" in prov and "CC BY 4.0" in prov and "Copernicus" in prov
    for tif in FIXTURE.glob("HandLabeled/*/*.tif"):
        assert f"`{tif.relative_to(FIXTURE).as_posix()}`" in prov


def _sources_from_fixture(mk, src: Path) -> None:
    """A short-layout source of 512 px chips rebuilt from the fixture's windows (for a bare clone)."""
    for tif in FIXTURE.glob("HandLabeled/*/*.tif"):
        repeat_to_scene(tif, src / tif.relative_to(FIXTURE), size=512)
    shutil.copytree(FIXTURE / "splits", src / "splits")
    shutil.copy(FIXTURE / "Sen1Floods11_Metadata.geojson", src)


def test_make_fixture_crops_the_named_windows(mk, real_root, shared_sample, tmp_path):
    if shared_sample:
        src = real_root
    else:
        src = tmp_path / "src"
        _sources_from_fixture(mk, src)
    before = tree_checksums(src)
    out = tmp_path / "out"
    assert mk.main(["--source", str(src), "--out", str(out)]) == 0
    assert tree_checksums(src) == before  # the source is only read
    for cid, (r, c, _why) in mk.WINDOWS.items():
        for layer in mk.LAYERS:
            rel = Path("HandLabeled") / layer / f"{cid}_{layer}.tif"
            if not (src / rel).exists():
                assert not (out / rel).exists()
                continue
            with rasterio.open(src / rel) as s, rasterio.open(out / rel) as o:
                win = Window(c, r, mk.SIZE, mk.SIZE)
                np.testing.assert_array_equal(o.read(), s.read(window=win))
                assert o.transform == window_transform(win, s.transform)
                assert (o.dtypes, o.nodata is None, o.descriptions, o.tags()) == \
                       (s.dtypes, s.nodata is None, s.descriptions, s.tags())
    prov = (out / "PROVENANCE.md").read_text()
    for p in sorted((src / "HandLabeled").glob("*/*.tif")):
        if p.name.rsplit("_", 1)[0] in mk.WINDOWS:
            assert mk.sha256(p) in prov
    if shared_sample:  # the committed fixture is what the script makes from the shared sample
        assert tree_checksums(out) == tree_checksums(FIXTURE)
    assert mk.main(["--source", str(tmp_path / "nothing"), "--out", str(tmp_path / "o2")]) == 2
    assert not (tmp_path / "o2").exists()
