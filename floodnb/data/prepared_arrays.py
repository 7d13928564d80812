"""Reading prepared training arrays: the folder of a store made for given settings, memory-mapped.

The writer is :func:`floodnb.data.prepared.prepare` (which runs
:class:`floodnb.data.torch.ChipDataset`); this half only finds and reads, so the dataset can pick
a prepared folder up (:func:`find_prepared`) without importing the writer. Layout::

    <store>/prepared/<digest>/prepared.json   {"settings", "n", "keys"}
    <store>/prepared/<digest>/<key>.npy       (N, ...) arrays, one per sample key

``<digest>`` = first 12 hex characters of the SHA-1 of the settings' sorted JSON.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from floodnb.io_utils import json_hash

PREPARED_DIR = "prepared"
META = "prepared.json"
VERSION = 1


def _settings(*, inputs: Sequence[str], target: str | None, weak: str | None, truth: str | None,
              normalizers: Mapping) -> dict:
    return {"version": VERSION, "inputs": list(inputs), "target": target, "weak": weak, "truth": truth,
            "normalizers": {r: normalizers[r].to_dict() for r in inputs}, "ignore_invalid_input": True}


def _digest(settings: dict) -> str:
    return json_hash(settings, 12, algorithm="sha1")


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
