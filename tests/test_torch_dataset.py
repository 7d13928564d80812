"""ChipDataset: key vocabulary, nodata -> IGNORE_INDEX, augmentation determinism, store == catalog."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from floodnb.bands import IGNORE_INDEX
from floodnb.data.catalog import build_catalog
from floodnb.data.io import EmptyChipWarning, read_arrays
from floodnb.data.metadata import meta_vector
from floodnb.data.normalize import get_preset
from floodnb.data.store import pack
from floodnb.data.torch import KEYS, ChipDataset


@pytest.fixture
def tiny(tiny_dataset, tmp_path):
    cat = build_catalog(tiny_dataset)
    return cat, pack(cat, tmp_path / "store", progress=False)


def test_sample_vocabulary_and_nodata(tiny):
    cat, _ = tiny
    hand = cat[cat["group"] == "hand"].reset_index(drop=True)
    ds = ChipDataset(hand, inputs=("s1", "s2"), with_meta=True)
    s = ds[0]
    assert set(s) <= set(KEYS) and set(s) == {"s1", "s2", "valid", "label", "weak", "meta", "index", "chip_id"}
    assert s["s1"].dtype == torch.float32 and s["s1"].shape == (2, 32, 32)
    assert s["s2"].shape == (13, 32, 32) and s["valid"].dtype == torch.bool
    assert s["label"].dtype == torch.int64 and s["weak"].dtype == torch.int64 and s["meta"].shape == (5,)
    raw, _ = read_arrays(hand.iloc[0])
    valid = np.isfinite(raw["s1"]).all(0) & np.isfinite(raw["s2"]).all(0)
    np.testing.assert_array_equal(s["valid"].numpy(), valid)
    want = np.where((raw["label"] == -1) | ~valid, IGNORE_INDEX, raw["label"])
    np.testing.assert_array_equal(s["label"].numpy(), want)
    np.testing.assert_allclose(s["s1"].numpy(), get_preset("sen1floods11_s1")(raw["s1"]))
    assert torch.isfinite(s["s1"]).all() and torch.isfinite(s["s2"]).all()
    np.testing.assert_allclose(s["meta"].numpy(), meta_vector(date="2019-09-18", lat=hand.at[0, "lat"],
                                                              lon=hand.at[0, "lon"]))
    assert s["chip_id"] == "Spain_100" and int(s["index"]) == 0


def test_meta_vector_values():
    m = meta_vector(date="2019-01-01", lat=0.0, lon=90.0)
    np.testing.assert_allclose(m, [0, 1, 0, 1, 0], atol=1e-6)
    np.testing.assert_allclose(meta_vector(date=None, lat=90.0, lon=0.0), [0, 0, 0, 0, 1], atol=1e-6)


def test_store_and_catalog_give_identical_augmented_samples(tiny):
    cat, store = tiny
    soft = np.random.default_rng(0).random((len(cat), 2, 32, 32)).astype(np.float32)
    kw = dict(inputs=("s1",), crop=16, augment=True, with_meta=True, soft=soft, seed=7)
    a, b = ChipDataset(cat, **kw), ChipDataset(store, **kw)
    for i in range(len(a)):
        x, y = a[i], b[i]
        assert x.keys() == y.keys()
        for k, v in x.items():
            assert torch.equal(v, y[k]) if isinstance(v, torch.Tensor) else v == y[k], k
    assert "label" in x and (x["label"] == IGNORE_INDEX).all()  # weak chips lack a hand label


def test_augmentation_is_seeded_per_epoch_and_geometric(tiny):
    _, store = tiny
    onehot = np.zeros((len(store), 2, 32, 32), np.float32)
    lab = store.array("s1_otsu")
    onehot[:, 0], onehot[:, 1] = lab == 0, lab == 1
    ds = ChipDataset(store, target="s1_otsu", weak=None, crop=16, augment=True, soft=onehot, seed=1)
    e0 = [ds[i] for i in range(len(ds))]
    again = [ds[i] for i in range(len(ds))]
    ds.set_epoch(1)
    e1 = [ds[i] for i in range(len(ds))]
    assert all(torch.equal(p["s1"], q["s1"]) for p, q in zip(e0, again))
    assert any(not torch.equal(p["s1"], q["s1"]) for p, q in zip(e0, e1))
    for s in e0 + e1:  # inputs, labels and soft targets move together
        ok = s["label"] != IGNORE_INDEX
        assert torch.equal(s["soft"].argmax(0)[ok], s["label"][ok])
    ev = ChipDataset(store, crop=16, augment=False)
    full = store.read(0)["s1"]
    np.testing.assert_allclose(ev[0]["s1"].numpy(), get_preset("sen1floods11_s1")(full[:, 8:24, 8:24]))


def test_real_edge_cases_in_dataset(real_root):
    from _real_data import label_counts

    cat = build_catalog(real_root)
    cat = cat[cat["s1_path"].notna()].reset_index(drop=True)
    i = int(np.flatnonzero(cat["chip_id"] == "Paraguay_34417")[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EmptyChipWarning)
        s = ChipDataset(cat)[i]
        kept = ChipDataset(cat, ignore_invalid_input=False)[i]
    assert not s["valid"].any() and (s["label"] == IGNORE_INDEX).all() and (s["s1"] == 0).all()
    water = label_counts(real_root, "Paraguay_34417")[1]
    assert int((kept["label"] == 1).sum()) == water > 0 and "weak" not in s
    j = int(np.flatnonzero(cat["chip_id"] == "Ghana_53713")[0])
    assert (ChipDataset(cat)[j]["label"] == 0).all()


def test_errors_and_dataloader(tiny, real_root):
    cat, store = tiny
    real = build_catalog(real_root)
    with pytest.raises(ValueError, match="1 chips lack input 's1'.*USA_430764"):
        ChipDataset(real)
    with pytest.raises(ValueError, match="inputs must be"):
        ChipDataset(store, inputs=("sar",))
    with pytest.raises(ValueError, match="soft must be"):
        ChipDataset(store, soft=np.zeros((2, 2, 32, 32), np.float32))
    with pytest.raises(ValueError, match="crop 64 px is larger"):
        ChipDataset(store, crop=64)[0]
    with pytest.raises(ValueError, match="normaliser 's2_l1c' is for role 's2'"):
        ChipDataset(store, normalizers={"s1": get_preset("s2_l1c")})
    ds = ChipDataset(store, split=["train", "valid"], crop=16, augment=True)
    assert len(ds) == 2
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=2)))
    assert batch["s1"].shape == (2, 2, 16, 16) and batch["chip_id"] == ["Spain_100", "Mekong_101"]
