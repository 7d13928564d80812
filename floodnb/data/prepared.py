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

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from floodnb.io_utils import atomic_dir, atomic_write_json

PREPARED_DIR = "prepared"
META = "prepared.json"
VERSION = 1


def _settings(*, inputs: Sequence[str], target: str | None, weak: str | None, truth: str | None,
              normalizers: Mapping) -> dict:
    return {"version": VERSION, "inputs": list(inputs), "target": target, "weak": weak, "truth": truth,
            "normalizers": {r: normalizers[r].to_dict() for r in inputs}, "ignore_invalid_input": True}


def _digest(settings: dict) -> str:
    return hashlib.sha1(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]


class PreparedArrays:
    """Read-only memory maps of one prepared folder; :meth:`read` copies one sample's window."""

    def __init__(self, path: Path, meta: dict) -> None:
        self.path, self.meta = path, meta
        self.keys: tuple[str, ...] = tuple(meta["keys"])
        self._arrays = {k: np.load(path / f"{k}.npy", mmap_mode="r") for k in self.keys}

    def read(self, i: int, window: tuple[slice, slice]) -> dict[str, np.ndarray]:
        """Sample ``i`` restricted to ``window`` (rows, cols): key -> a fresh, writable array."""
        return {k: np.array(a[i, ..., window[0], window[1]]) for k, a in self._arrays.items()}


def find_prepared(store, *, inputs: Sequence[str], target: str | None, weak: str | None, truth: str | None,
                  normalizers: Mapping) -> PreparedArrays | None:
    """The prepared folder of ``store`` made for exactly these settings, or None."""
    settings = _settings(inputs=inputs, target=target, weak=weak, truth=truth, normalizers=normalizers)
    path = Path(store.path) / PREPARED_DIR / _digest(settings)
    meta_path = path / META
    if not meta_path.is_file():
        return None
    meta = json.loads(meta_path.read_text())
    if meta["settings"] != settings or meta["n"] != len(store):
        return None
    return PreparedArrays(path, meta)


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
