"""Packed memory-mapped store: equality with GeoTIFF decode, atomicity, errors, CLI."""

from __future__ import annotations

import shutil
import warnings

import numpy as np
import pytest
from conftest import make_tiny_dataset, tree_checksums

from floodnb.cli import main
from floodnb.data import layout as lay
from floodnb.data.catalog import build_catalog
from floodnb.data.io import ChipReadError, EmptyChipWarning, read_arrays
from floodnb.data.store import ChipStore, pack


def test_pack_equals_decode(tiny_dataset, tmp_path):
    before = tree_checksums(tiny_dataset)
    cat = build_catalog(tiny_dataset)
    store = pack(cat, tmp_path / "store", progress=False)
    assert len(store) == 6 and set(store.roles) == {"s1", "s2", "label", "s1_otsu", "s2_index", "jrc"}
    assert store.array("s1").shape == (6, 2, 32, 32) and store.array("s2").dtype == np.int16
    assert store.array("label").shape == (6, 32, 32) and isinstance(store.array("s1"), np.memmap)
    for col in ("chip_id", "event", "split", "group", "s1_date", "s2_date", "lat", "lon", "vh_thresh"):
        assert list(store.index[col]) == list(cat[col]), col
    for i, row in cat.iterrows():
        want, _ = read_arrays(row)
        got = store.read(i)
        assert set(got) == set(want)
        for k in want:
            np.testing.assert_array_equal(got[k], want[k])
            assert got[k].dtype == want[k].dtype
    assert not store.has("label", 5) and (store.array("label")[5] == -1).all()
    win = store.read(0, roles=["s1", "label"], window=(slice(4, 12), slice(8, 24)))
    np.testing.assert_array_equal(win["label"], store.read(0)["label"][4:12, 8:24])
    reopened = ChipStore.open(tmp_path / "store")
    assert reopened.chip_ids == list(cat["chip_id"]) and reopened.index["lat"].dtype == np.float64
    assert tree_checksums(tiny_dataset) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s1f11", "store"]  # no temp folder left


def test_pack_real_chips(real_root, tmp_path):
    cat = build_catalog(real_root)
    cat = cat[cat["s1_path"].notna()].reset_index(drop=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EmptyChipWarning)
        store = pack(cat, tmp_path / "real", roles=["s1", "label"], progress=False)
        empty = int(np.flatnonzero(cat["chip_id"] == "Paraguay_34417")[0])  # S1 entirely NaN
        for i in (0, empty, len(cat) - 1):
            want, _ = read_arrays(cat.iloc[i], roles=["s1", "label"])
            got = store.read(i)
            np.testing.assert_array_equal(got["s1"], want["s1"])
            np.testing.assert_array_equal(got["label"], want["label"])
    assert len(store) == len(cat) and np.isnan(store.read(empty)["s1"]).all()
    assert not np.isnan(store.read(0)["s1"]).all()


def test_existing_store_kept_and_overwrite(tiny_dataset, tmp_path):
    cat = build_catalog(tiny_dataset)
    pack(cat.iloc[:2], tmp_path / "s", progress=False)
    before = tree_checksums(tmp_path / "s")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        pack(cat, tmp_path / "s", progress=False)
    assert tree_checksums(tmp_path / "s") == before
    assert len(pack(cat, tmp_path / "s", overwrite=True, progress=False)) == 6
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s", "s1f11"]


def test_failed_pack_leaves_nothing(tiny_dataset, tmp_path):
    cat = build_catalog(tiny_dataset)
    bad = tmp_path / "bad_S1Hand.tif"
    shutil.copy(cat.at[2, "s1_path"], bad)
    bad.write_bytes(bad.read_bytes()[:300])
    cat.at[2, "s1_path"] = str(bad)
    out = tmp_path / "out"
    with pytest.raises(ChipReadError, match="bad_S1Hand.tif"):
        pack(cat, out, progress=False)
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]


def test_mixed_sizes_and_errors(tmp_path):
    a = build_catalog(make_tiny_dataset(tmp_path / "a", size=32, n_weak=0))
    b = build_catalog(make_tiny_dataset(tmp_path / "b", size=48, n_weak=0))
    import pandas as pd

    with pytest.raises(ValueError, match="48x48 px.*32x32.*one chip size"):
        pack(pd.concat([a, b], ignore_index=True), tmp_path / "mixed", progress=False)
    with pytest.raises(ValueError, match="catalog is empty"):
        pack(a.iloc[:0], tmp_path / "e", progress=False)
    with pytest.raises(ValueError, match="unknown roles"):
        pack(a, tmp_path / "e", roles=["sar"], progress=False)
    with pytest.raises(FileNotFoundError, match="not a floodnb chip store"):
        ChipStore.open(tmp_path / "a")
    store = pack(a, tmp_path / "ok", roles=["s1"], progress=False)
    (tmp_path / "ok" / "s1.npy").unlink()
    with pytest.raises(FileNotFoundError, match="s1.npy"):
        ChipStore.open(tmp_path / "ok")
    with pytest.raises(KeyError, match="no role 'label'"):
        store.array("label")


def test_pack_command(tiny_dataset, tmp_path, capsys):
    assert main(["pack", str(tiny_dataset), str(tmp_path / "st"), "--group", "hand", "--require", "s1,label"]) == 0
    assert "packed 4 chips" in capsys.readouterr().out
    store = ChipStore.open(tmp_path / "st")
    assert list(store.index["split"]) == ["train", "valid", "test", "unassigned"]
    assert "s2_index" not in store.roles
    assert main(["pack", str(tiny_dataset), str(tmp_path / "st")]) == 2  # exists, no --overwrite
    assert main(["pack", str(tiny_dataset), str(tmp_path / "x"), "--roles", "sar"]) == 2
    assert lay.detect(tiny_dataset) == "official"
