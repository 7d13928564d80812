"""Unit tests of the one-home helpers: chip ids and split CSVs, JSON hashing, atomic GDAL paths, GeoTIFF writing."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine

from floodnb.chip_ids import (
    SEN1FLOODS11_ID_RE,
    chip_event,
    decode_split_csv,
    is_chip_id,
    split_csv_chips,
)
from floodnb.geotiff import write_geotiff
from floodnb.io_utils import atomic_gdal_path, json_hash

FIXTURE = Path(__file__).parent / "data" / "sen1floods11"


# --- chip ids --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cid", ["Bolivia_103757", "Sri-Lanka_101973", "USA_905409", "Mekong_333434", "chip0"])
def test_real_shaped_ids_are_chip_ids(cid):
    assert is_chip_id(cid)


@pytest.mark.parametrize("cid", ["../evil", "a.b_1", "Bolivia_103757.tif", "_x", "", "a/b", "a b", None, 3])
def test_dots_paths_and_non_strings_are_refused(cid):
    assert not is_chip_id(cid)


def test_sen1floods11_shape_and_event():
    assert SEN1FLOODS11_ID_RE.match("Sri-Lanka_101973") and not SEN1FLOODS11_ID_RE.match("Ghana_1_2")
    assert not SEN1FLOODS11_ID_RE.match("1Ghana_1") and not SEN1FLOODS11_ID_RE.match("Ghana.x_1")
    assert chip_event("Bolivia_103757") == "Bolivia" and chip_event("Sri-Lanka_101973") == "Sri-Lanka"
    with pytest.raises(ValueError, match="'<Event>_<id>'"):
        chip_event("Bolivia")


def test_every_file_of_the_real_fixture_names_a_chip_id():
    names = [p.name for p in FIXTURE.rglob("*.tif")]
    assert names, "the in-repo fixture has GeoTIFFs"
    for name in names:
        cid = name[: -len(".tif")].rsplit("_", 1)[0]
        assert is_chip_id(cid) and SEN1FLOODS11_ID_RE.match(cid), name


def test_split_csv_rows_of_the_real_fixture():
    csvs = sorted(FIXTURE.rglob("flood_*_data.csv"))
    assert csvs
    chips = [c for p in csvs for c in split_csv_chips(decode_split_csv(p.read_bytes(), str(p)), str(p))]
    on_disk = {p.name.rsplit("_", 1)[0] for p in FIXTURE.rglob("*.tif")}
    assert chips and set(chips) <= on_disk


def test_split_csv_parsing_rules():
    text = "\ufeffGhana_1_S1Hand.tif,Ghana_1_LabelHand.tif\r\n\r\nsub\\Spain_7_S1Hand.TIFF,x\r\n"
    assert split_csv_chips(decode_split_csv(text.encode("utf-8"), "t.csv"), "t.csv") == ["Ghana_1", "Spain_7"]
    with pytest.raises(ValueError, match="t.csv line 2"):
        split_csv_chips("Ghana_1_S1Hand.tif,y\n../../x_S1Hand.tif,y\n", "t.csv")
    with pytest.raises(ValueError, match="line 1"):
        split_csv_chips("Ghana_1_S1Hand.png,y\n", "t.csv")
    with pytest.raises(ValueError, match="binary file"):
        decode_split_csv(b"a\x00b", "b.csv")
    with pytest.raises(ValueError, match="not UTF-8 text"):
        decode_split_csv(b"Spain_1_S1Hand.tif,\xff\xfe", "u.csv")


# --- hashing ---------------------------------------------------------------------------------------------------


def test_json_hash_matches_the_former_inline_hashes():
    obj = {"b": 1, "a": [1, 2], "p": Path("/x")}
    blob = json.dumps(obj, sort_keys=True, default=str).encode()
    for n in (8, 10, 16):
        assert json_hash(obj, n) == hashlib.sha256(blob).hexdigest()[:n]
    plain = {"z": "s", "a": 2}
    assert json_hash(plain, 12, algorithm="sha1") == hashlib.sha1(
        json.dumps(plain, sort_keys=True).encode()).hexdigest()[:12]
    assert json_hash({"a": 2, "z": "s"}, 12) == json_hash(plain, 12) != json_hash({"a": 3, "z": "s"}, 12)
    with pytest.raises(ValueError, match="outside"):
        json_hash(plain, 0)


# --- atomic GDAL path ------------------------------------------------------------------------------------------


def test_atomic_gdal_path_success_failure_and_no_file(tmp_path):
    target = tmp_path / "out.tif"
    with atomic_gdal_path(target) as tmp:
        assert not tmp.exists() and tmp.suffix == ".tif" and tmp.parent == tmp_path
        tmp.write_bytes(b"new")
    assert target.read_bytes() == b"new"
    with pytest.raises(RuntimeError), atomic_gdal_path(target) as tmp:
        tmp.write_bytes(b"half")
        Path(str(tmp) + ".aux.xml").write_text("x")
        raise RuntimeError("driver failed")
    assert target.read_bytes() == b"new" and sorted(p.name for p in tmp_path.iterdir()) == ["out.tif"]
    with pytest.raises(FileNotFoundError, match="produced no file"), atomic_gdal_path(tmp_path / "none.tif"):
        pass
    assert not (tmp_path / "none.tif").exists()


# --- GeoTIFF writer --------------------------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")  # reading the CRS-less file
def test_write_geotiff_one_band_and_many(tmp_path):
    tr = Affine(10.0, 0.0, 500000.0, 0.0, -10.0, 4000000.0)
    prob = np.linspace(0, 1, 32 * 48, dtype=np.float32).reshape(32, 48)
    prob[0, 0] = np.nan
    p = write_geotiff(tmp_path / "p.tif", prob, crs="EPSG:32633", transform=tr, nodata=float("nan"),
                      descriptions=("prob",), tags={"K": "v"}, compress="deflate")
    with rasterio.open(p) as ds:
        assert (ds.count, ds.height, ds.width, ds.dtypes[0]) == (1, 32, 48, "float32")
        assert ds.crs.to_epsg() == 32633 and ds.transform == tr and np.isnan(ds.nodata)
        assert ds.descriptions == ("prob",) and ds.tags()["K"] == "v" and ds.compression.name == "deflate"
        np.testing.assert_array_equal(ds.read(1), prob)
    cube = np.arange(2 * 16 * 16, dtype=np.int16).reshape(2, 16, 16)
    q = write_geotiff(tmp_path / "sub" / "c.tif", cube, descriptions=("VV", "VH"))
    with rasterio.open(q) as ds:
        assert ds.count == 2 and ds.crs is None and ds.nodata is None and ds.descriptions == ("VV", "VH")
        np.testing.assert_array_equal(ds.read(), cube)
    with pytest.raises(ValueError, match="2 band descriptions for 1 band"):
        write_geotiff(tmp_path / "bad.tif", prob, descriptions=("a", "b"))
    with pytest.raises(ValueError, match="expected an"):
        write_geotiff(tmp_path / "bad.tif", np.zeros(4))
    assert not (tmp_path / "bad.tif").exists()
