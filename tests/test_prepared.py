"""Prepared training arrays: identical samples to the store path, picked up only for matching settings."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from floodnb.data.catalog import build_catalog
from floodnb.data.normalize import Normalizer, get_preset
from floodnb.data.prepared import find_prepared, prepare
from floodnb.data.store import pack
from floodnb.data.torch import ChipDataset


@pytest.fixture
def store(tiny_dataset, tmp_path):
    cat = build_catalog(tiny_dataset)
    cat = cat[cat["s1_path"].notna()]
    return pack(cat, tmp_path / "store", roles=["s1", "s2", "label", "s1_otsu"], progress=False)


def _same(a: dict, b: dict) -> None:
    assert list(a) == list(b)
    for k in a:
        if isinstance(a[k], torch.Tensor):
            assert a[k].dtype == b[k].dtype and a[k].shape == b[k].shape, k
            assert torch.equal(a[k], b[k]), k
        else:
            assert a[k] == b[k], k


@pytest.mark.parametrize("kw", [dict(), dict(crop=16, augment=True), dict(weak="s1_otsu", crop=20, augment=True)])
def test_prepared_samples_equal_the_store_path(store, kw):
    weak = kw.pop("weak", None)
    path = prepare(store, inputs=("s1",), target="label", weak=weak, progress=False)
    assert (path / "prepared.json").is_file()
    fast = ChipDataset(store, inputs=("s1",), weak=weak, seed=3, **kw)
    slow = ChipDataset(store, inputs=("s1",), weak=weak, seed=3, prepared=False, **kw)
    assert fast._prepared is not None and slow._prepared is None
    for epoch in (0, 1):
        fast.set_epoch(epoch)
        slow.set_epoch(epoch)
        for i in range(len(fast)):
            _same(fast[i], slow[i])


def test_prepared_arrays_are_not_used_for_other_settings(store):
    prepare(store, inputs=("s1",), target="label", weak=None, progress=False)
    other = get_preset("sen1floods11_s1").to_dict()
    other["mean"] = [0.0, 0.0]
    norm = Normalizer.from_dict(other)
    assert find_prepared(store, inputs=("s1",), target="label", weak=None, truth=None,
                         normalizers={"s1": norm}) is None
    assert ChipDataset(store, inputs=("s1",), weak=None, normalizers={"s1": norm})._prepared is None
    assert ChipDataset(store, inputs=("s1",), weak="s1_otsu")._prepared is None  # another label set
    assert ChipDataset(store, inputs=("s1",), weak=None, ignore_invalid_input=False)._prepared is None
    assert ChipDataset(store, inputs=("s1",), weak=None)._prepared is not None


def test_prepare_refuses_to_replace_without_overwrite(store):
    path = prepare(store, inputs=("s1", "s2"), target="label", weak=None, progress=False)
    stamp = (path / "prepared.json").stat().st_mtime_ns
    with pytest.raises(FileExistsError, match=str(path.name)):
        prepare(store, inputs=("s1", "s2"), target="label", weak=None, progress=False)
    assert (path / "prepared.json").stat().st_mtime_ns == stamp
    prepare(store, inputs=("s1", "s2"), target="label", weak=None, overwrite=True, progress=False)
    s2 = np.load(path / "s2.npy", mmap_mode="r")
    assert s2.dtype == np.float32 and s2.shape[1] == 13


def test_pack_command_prepares_samples_the_dataset_picks_up(tiny_dataset, tmp_path, capsys):
    from floodnb.cli import main
    from floodnb.data.store import ChipStore

    out = tmp_path / "packed"
    assert main(["pack", str(tiny_dataset), str(out), "--require", "s1", "--prepare", "s1"]) == 0
    assert "prepared training samples" in capsys.readouterr().out
    ds = ChipDataset(ChipStore.open(out), inputs=("s1",), weak=None)
    assert ds._prepared is not None
    _same(ds[0], ChipDataset(ChipStore.open(out), inputs=("s1",), weak=None, prepared=False)[0])
