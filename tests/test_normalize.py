"""Normalisation presets, fitting on a training split, JSON round trip."""

from __future__ import annotations

import numpy as np
import pytest

from floodnb.data.catalog import build_catalog
from floodnb.data.io import read_arrays
from floodnb.data.normalize import PRESETS, Normalizer, fit_normalizer, get_preset, load_normalizers, save_normalizers
from floodnb.data.store import pack


def test_official_s1_recipe_values():
    n = get_preset("sen1floods11_s1")
    assert n.bands == ("VV", "VH") and "Sen1Floods11" in n.source
    x = np.array([[[-60.0, 1.0, 5.0, np.nan]], [[-50.0, -25.0, 0.0, -10.0]]], np.float32)  # (2, 1, 4)
    y = n(x)
    want_vv = ((np.clip([-60.0, 1.0, 5.0], -50, 1) + 50) / 51 - 0.6851) / 0.0820
    want_vh = ((np.array([-50.0, -25.0, 0.0, -10.0]) + 50) / 51 - 0.5235) / 0.1102
    np.testing.assert_allclose(y[0, 0, :3], want_vv, rtol=1e-5)
    assert y[0, 0, 3] == 0.0  # NaN -> 0 after normalising
    np.testing.assert_allclose(y[1, 0], want_vh, rtol=1e-5)
    assert y.dtype == np.float32 and np.isfinite(y).all()
    batched = n(np.stack([x, x]))
    np.testing.assert_array_equal(batched[1], y)


def test_presets_roundtrip_select_and_errors(tmp_path):
    for name in PRESETS:
        n = get_preset(name)
        assert Normalizer.from_dict(n.to_dict()) == n and n.source
    s2 = get_preset("s2_l1c")
    sub = s2.select(["B3", "B8"])
    assert sub.mean == (s2.mean[2], s2.mean[7]) and sub.bands == ("B3", "B8")
    with pytest.raises(ValueError, match="unknown normalisation preset 'nope'"):
        get_preset("nope")
    with pytest.raises(ValueError, match=r"expected \(\.\.\., 2, H, W\)"):
        get_preset("sen1floods11_s1")(np.zeros((3, 4, 4), np.float32))
    with pytest.raises(ValueError, match="std must be"):
        Normalizer(name="x", role="s1", bands=("VV",), kind="standardize", mean=(0.0,), std=(0.0,), source="t")
    with pytest.raises(ValueError, match="no bands"):
        s2.select(["B13"])
    path = save_normalizers(tmp_path / "run" / "normalizers.json", {"s1": get_preset("sen1floods11_s1"), "s2": s2})
    assert load_normalizers(path) == {"s1": get_preset("sen1floods11_s1"), "s2": s2}
    (tmp_path / "bad.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="bad.json"):
        load_normalizers(tmp_path / "bad.json")


def test_s2_fit_on_real_chips_and_the_preset(real_root, shared_sample):
    import rasterio

    cat = build_catalog(real_root)
    fitted = fit_normalizer(cat, role="s2", split=None, progress=False)
    # the same statistics straight from the files: DN / 10000, nodata (0) left out
    raw = []
    for p in cat["s2_path"].dropna():
        with rasterio.open(p) as f:
            raw.append(f.read().reshape(13, -1).astype(np.float64))
    x = np.concatenate(raw, axis=1)
    x = np.where(x > 0, x / 10000.0, np.nan)
    np.testing.assert_allclose(fitted.mean, np.nanmean(x, axis=1), rtol=0, atol=1e-6)  # stored rounded to 1e-6
    np.testing.assert_allclose(fitted.std, np.nanstd(x, axis=1), rtol=0, atol=1e-6)
    if shared_sample:  # the preset was fitted on these two full chips (floodnb.data.normalize docstring)
        np.testing.assert_allclose(fitted.mean, get_preset("s2_l1c").mean, atol=6e-5)
        np.testing.assert_allclose(fitted.std, get_preset("s2_l1c").std, atol=6e-5)


def test_fit_on_train_split_matches_numpy(tiny_dataset, tmp_path):
    cat = build_catalog(tiny_dataset)
    fitted = fit_normalizer(cat, role="s1", split="train", base="sen1floods11_s1", name="mine", progress=False)
    rows = cat[cat["split"] == "train"]
    assert len(rows) == 1
    x, _ = read_arrays(rows.iloc[0], roles=["s1"])
    pre = (np.clip(x["s1"].astype(np.float64), -50, 1) + 50) / 51
    np.testing.assert_allclose(fitted.mean, np.nanmean(pre.reshape(2, -1), 1), rtol=1e-5)
    np.testing.assert_allclose(fitted.std, np.nanstd(pre.reshape(2, -1), 1), rtol=1e-4)
    assert fitted.clip == (-50.0, 1.0) and fitted.name == "mine" and "'train'" in fitted.source
    # normalised training data: mean ~0, std ~1
    y = fitted(x["s1"])[:, np.isfinite(x["s1"]).all(0)]
    np.testing.assert_allclose(y.mean(1), 0, atol=1e-4)
    np.testing.assert_allclose(y.std(1), 1, atol=1e-3)
    # same statistics from a packed store and from plain arrays
    store = pack(cat, tmp_path / "store", progress=False)
    assert fit_normalizer(store, role="s1", split="train", base="sen1floods11_s1", name="mine",
                          progress=False) == fitted
    assert fit_normalizer([x["s1"]], role="s1", split="train", base="sen1floods11_s1", name="mine",
                          progress=False) == fitted


def test_fit_errors(tiny_dataset):
    cat = build_catalog(tiny_dataset)
    with pytest.raises(ValueError, match="no valid s1 pixels"):
        fit_normalizer([np.full((2, 4, 4), np.nan, np.float32)], role="s1", progress=False)
    with pytest.raises(ValueError, match="no valid s2 pixels"):
        fit_normalizer(cat, role="s2", split="nosuchsplit", progress=False)
    with pytest.raises(ValueError, match=r"expected arrays \(C=13"):
        fit_normalizer([np.zeros((2, 4, 4), np.float32)], role="s2", progress=False)
    with pytest.raises(ValueError, match="zero variance"):
        fit_normalizer([np.ones((2, 4, 4), np.float32)], role="s1", progress=False)
