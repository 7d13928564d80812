"""Prepared training arrays: a store's samples computed once, so epochs only copy bytes.

A :class:`floodnb.data.store.ChipStore` removes GeoTIFF decoding from every epoch, but each
sample still normalises its inputs, finds the valid pixels and turns labels into int64 targets
(about 0.6 ms per 512 px S1 chip on one core — 5x the time of copying its bytes).
:func:`prepare` runs :class:`floodnb.data.torch.ChipDataset` once over the whole store (no crop,
no augmentation) and writes every sample key to a memory-mapped array::

    <store>/prepared/<digest>/prepared.json   inputs, target/weak roles, normalisers, keys
    <store>/prepared/<digest>/<key>.npy       s1/s2 (N, C, H, W) float32 normalised; valid (N, H, W)
                                              bool; label/weak/truth (N, H, W) int64 targets

The digest covers the inputs, label roles and normalisers, so a dataset with other settings
never reads arrays made for different ones. Because the arrays *are* ChipDataset samples, nodata
still becomes ``IGNORE_INDEX`` in one place only (``ChipDataset._to_target``). A ChipDataset over
the store picks a matching prepared folder up by itself (:func:`find_prepared`) and then only
reads, crops and flips — identical samples, epochs at memory-map speed. Costs disk: 4 + 1 + 8
bytes per pixel for S1 + valid + one target.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from floodnb.data.prepared_arrays import (  # noqa: F401  (find_prepared / PreparedArrays re-exported)
    META,
    PREPARED_DIR,
    VERSION,
    PreparedArrays,
    _digest,
    _settings,
    find_prepared,
)
from floodnb.io_utils import atomic_dir, atomic_write_json


def prepare(store, *, inputs: Sequence[str] = ("s1",), target: str | None = "label", weak: str | None = None,
            normalizers: Mapping | None = None, overwrite: bool = False, progress: bool = True) -> Path:
    """Write the ChipDataset samples of ``store`` (see module doc) and return their folder.

    ``inputs``/``target``/``weak``/``normalizers``: as :class:`floodnb.data.torch.ChipDataset`
    (``ignore_invalid_input=True``). Refuses to replace an existing prepared folder of the same
    settings unless ``overwrite``; written under a temporary name and renamed when complete.
    """
    from tqdm.auto import tqdm

    from floodnb.data.torch import ChipDataset

    ds = ChipDataset(store, inputs=inputs, target=target, weak=weak, normalizers=normalizers, prepared=False)
    settings = _settings(inputs=ds.inputs, target=ds.label_keys.get("label"), weak=ds.label_keys.get("weak"),
                         truth=ds.truth_role, normalizers=ds.normalizers)
    out = Path(store.path) / PREPARED_DIR / _digest(settings)
    n = len(ds)
    with atomic_dir(out, overwrite=overwrite) as tmp:
        arrays: dict[str, np.memmap] = {}
        for i in tqdm(range(n), desc=f"prepare {Path(store.path).name}", unit="chip", disable=not progress):
            sample = ds[i]
            keys = [k for k in (*ds.inputs, "valid", "label", "weak", "truth") if k in sample]
            if not arrays:
                for k in keys:
                    v = sample[k].numpy()
                    arrays[k] = np.lib.format.open_memmap(tmp / f"{k}.npy", mode="w+", dtype=v.dtype,
                                                          shape=(n, *v.shape))
            for k in keys:
                arrays[k][i] = sample[k].numpy()
        for a in arrays.values():
            a.flush()
        keys = list(arrays)
        del arrays
        atomic_write_json(tmp / META, {"settings": settings, "n": n, "keys": keys})
    return out
