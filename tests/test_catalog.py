"""Catalog: layouts, splits, missing chips, metadata join, real developer sample."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rasterio
from _real_data import chip_roles, split_chips
from conftest import make_tiny_dataset, tree_checksums

from floodnb.cli import main
from floodnb.data import layout as lay
from floodnb.data.catalog import (
    COLUMNS,
    build_catalog,
    missing_report,
    read_catalog,
    read_split_csv,
    summarize,
    write_catalog,
)
from floodnb.data.metadata import event_key, iso_date, read_event_metadata

SPLITS = ("train", "valid", "test", "bolivia")


def test_real_catalog_rows_layers_and_metadata(real_root):
    before = tree_checksums(real_root)
    layers = chip_roles(real_root)  # from the files on disk
    assert layers["Spain_7370579"] == {"s1", "s2", "label"} and layers["USA_430764"] == {"s2"}
    cat = build_catalog(real_root)
    assert tuple(cat.columns) == COLUMNS
    assert cat.attrs["layout"] == "short"
    assert dict(zip(cat["chip_id"], cat["split"])) == {c: "test" for c in layers}  # all real chips are test
    assert set(cat["group"]) == {"hand"}
    for _, row in cat.iterrows():
        present = {c[:-5] for c in cat.columns if c.endswith("_path") and row[c] is not None}
        assert present == layers[row["chip_id"]], row["chip_id"]
        for role in present:
            assert Path(row[f"{role}_path"]).is_file()
        # absent layers are None (visible), not NaN or ""
        assert row["jrc_path"] is None and row["truth_water_path"] is None
    byid = cat.set_index("chip_id")
    assert byid.at["Mekong_333434", "location"] == "Cambodia"
    assert byid.at["Mekong_333434", "s1_date"] == "2018-08-05" and byid.at["Mekong_333434", "s2_date"] == "2018-08-04"
    assert byid.at["Spain_7370579", "vh_thresh"] == pytest.approx(-25.13)
    assert byid.at["Paraguay_34417", "iso_cc"] == "PRY" and byid.at["USA_430764", "orbit"] == "ASCENDING"
    # chip centre = centre of the raster bounds (header only)
    with rasterio.open(byid.at["USA_430764", "s2_path"]) as ds:
        b = ds.bounds
    assert byid.at["USA_430764", "lat"] == pytest.approx((b.top + b.bottom) / 2)
    assert byid.at["USA_430764", "lon"] == pytest.approx((b.left + b.right) / 2)
    assert -25 < byid.at["Paraguay_34417", "lat"] < -24 and 105 < byid.at["Mekong_333434", "lon"] < 107
    assert tree_checksums(real_root) == before


def test_real_split_csvs_and_missing_report(real_root):
    named = {s: split_chips(real_root, s) for s in SPLITS}  # raw CRLF rows of each CSV
    for split in SPLITS:
        ids = read_split_csv(real_root / "splits" / f"flood_{split}_data.csv")
        assert ids == named[split] and all("\r" not in c and c.count("_") == 1 for c in ids)
    assert len(named["test"]) >= 8 and "USA_430764" in named["test"]
    layers = chip_roles(real_root)
    on_disk = {c for c, r in layers.items() if {"s1", "label"} <= r}  # USA_430764 has S2 only
    miss = missing_report(real_root)
    assert len(miss) == sum(len(v) for v in named.values()) - len(on_disk)
    want = {s: len(set(v) - on_disk) for s, v in named.items() if set(v) - on_disk}
    assert miss.groupby("split").size().to_dict() == want
    assert set(miss["chip_id"]) & on_disk == set()
    assert miss.set_index("chip_id").at["USA_430764", "missing"] == "S1Hand,LabelHand"


def test_shared_sample_split_counts(real_root, shared_sample):
    """The official split sizes (Bonafilia et al. 2020) where the root carries the full CSVs."""
    counts = {s: len(split_chips(real_root, s)) for s in SPLITS}
    if shared_sample:
        assert counts == {"train": 252, "valid": 89, "test": 90, "bolivia": 15}
    else:  # the fixture keeps only its own chips' rows, all of them in the test split
        assert counts == {"train": 0, "valid": 0, "test": len(chip_roles(real_root)), "bolivia": 0}


def test_metadata_reader_and_keys(real_root):
    path = real_root / "Sen1Floods11_Metadata.geojson"
    meta = read_event_metadata(path)
    feats = json.loads(path.read_text())["features"]
    assert len(meta) == len(feats) >= 5
    assert set(meta.index) == {event_key(f["properties"]["location"]) for f in feats}
    assert {event_key(c.split("_")[0]) for c in chip_roles(real_root)} <= set(meta.index)  # Mekong = Cambodia
    assert meta.at[event_key("Mekong"), "location"] == "Cambodia"
    assert meta.at["spain", "s2_date"] == "2019-09-18" and meta.at["spain", "vh_thresh"] == pytest.approx(-25.13)
    assert event_key("Sri-Lanka") == event_key("Sri Lanka") == "srilanka"
    assert iso_date("2018/8/5") == "2018-08-05" and iso_date(None) is None
    with pytest.raises(ValueError, match="YYYY/MM/DD"):
        iso_date("05.08.2018")


def test_tiny_official_layout(tiny_dataset):
    cat = build_catalog(tiny_dataset)
    assert cat.attrs["layout"] == "official"
    byid = cat.set_index("chip_id")
    assert byid["split"].to_dict() == {"Spain_100": "train", "Mekong_101": "valid", "Spain_102": "test",
                                       "Mekong_103": "unassigned", "Spain_104": "weak", "Mekong_105": "weak"}
    weak = byid.loc["Spain_104"]
    assert weak["group"] == "weak" and weak["label_path"] is None and weak["jrc_path"] is None
    assert "/v1.0/" in weak["s2_path"] and weak["s2_index_path"].endswith("_S2IndexLabelWeak.tif")
    assert byid.at["Mekong_101", "location"] == "Cambodia"
    assert list(cat["group"]) == ["hand"] * 4 + ["weak"] * 2
    s = summarize(cat).set_index(["split", "group"])
    assert s.at[("weak", "weak"), "chips"] == 2 and s.at[("weak", "weak"), "label"] == 0
    assert s.at[("train", "hand"), "jrc"] == 1
    miss = missing_report(tiny_dataset)
    assert miss.to_dict("records") == [{"chip_id": "Spain_900", "split": "train", "missing": "S1Hand,LabelHand"}]


@pytest.mark.parametrize("layout", ["v1.1", "short"])
def test_other_layouts_same_chips(tmp_path, layout):
    official = build_catalog(make_tiny_dataset(tmp_path / "o"))
    root = tmp_path / layout / ("v1.1" if layout == "v1.1" else "")
    make_tiny_dataset(root, layout=layout)
    cat = build_catalog(root)
    assert cat.attrs["layout"] == layout
    cols = ["chip_id", "split", "group", "s1_date", "lat", "lon"]
    got = cat[cols] if layout == "v1.1" else cat[cols][cat["group"] == "hand"].reset_index(drop=True)
    want = official[cols] if layout == "v1.1" else official[cols][official["group"] == "hand"].reset_index(drop=True)
    pd.testing.assert_frame_equal(got.reset_index(drop=True), want)


def test_catalog_roundtrip_csv(tiny_dataset, tmp_path):
    cat = build_catalog(tiny_dataset)
    out = write_catalog(cat, tmp_path / "cat.csv")
    back = read_catalog(out)
    assert back["label_path"].iloc[-1] is None
    pd.testing.assert_frame_equal(back, cat, check_dtype=False)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_temp_files_and_alternative_weak_s2_names(tiny_dataset):
    s1dir = lay.layer_dir(tiny_dataset, "S1Hand")
    shutil.copy(s1dir / "Spain_100_S1Hand.tif", s1dir / ".Spain_777_S1Hand.x1.tmp.tif")
    (s1dir / "notes.txt").write_text("not a chip")
    s2w = lay.layer_dir(tiny_dataset, "S2Weak")
    for f in list(s2w.iterdir()):
        f.rename(s2w / f.name.replace(lay.chip_file_name("X", "S2Weak")[1:], "_S2_NoQC.tif"))
    cat = build_catalog(tiny_dataset)
    assert "Spain_777" not in set(cat["chip_id"]) and len(cat) == 6
    assert cat[cat["group"] == "weak"]["s2_path"].str.endswith("_S2_NoQC.tif").all()


def test_empty_and_bad_roots(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope"):
        build_catalog(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no Sen1Floods11 layout"):
        build_catalog(tmp_path / "empty")
    (tmp_path / "nochips" / "HandLabeled" / "S1Hand").mkdir(parents=True)
    with pytest.raises(ValueError, match="no Sen1Floods11 chip files"):
        build_catalog(tmp_path / "nochips")


def test_chip_in_two_splits_is_an_error(tiny_dataset):
    sdir = lay.splits_dir(tiny_dataset)
    with open(sdir / "flood_test_data.csv", "ab") as f:
        f.write(b"Spain_100_S1Hand.tif,Spain_100_LabelHand.tif\r\n")
    with pytest.raises(ValueError, match="two splits.*flood_train_data.csv.*flood_test_data.csv"):
        build_catalog(tiny_dataset)


def test_missing_metadata_warns_and_leaves_none(tiny_dataset):
    lay.metadata_path(tiny_dataset).unlink()
    with pytest.warns(UserWarning, match="no event metadata"):
        cat = build_catalog(tiny_dataset)
    assert cat["s1_date"].isna().all() and np.isfinite(cat["lat"]).all()


def test_catalog_command(real_root, tmp_path, capsys):
    out = tmp_path / "cat.csv"
    assert main(["catalog", str(real_root), "--csv", str(out), "--show-missing", "2"]) == 0
    text = capsys.readouterr().out
    n_chips, miss = len(chip_roles(real_root)), missing_report(real_root)
    assert f"{n_chips} chips" in text and f"{len(miss)} chips" in text
    assert f"test {(miss['split'] == 'test').sum()}" in text
    assert len(read_catalog(out)) == n_chips
    assert main(["catalog", str(tmp_path / "missing")]) == 2
