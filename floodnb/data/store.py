"""Packed chip store: chips decoded once into memory-mapped ``.npy`` arrays, one per role.

Decoding a deflate-compressed GeoTIFF per sample costs far more than training needs to spend
on I/O; :func:`pack` decodes every chip of a catalog once (streamed chip by chip with a
progress bar, memory bounded by one chip) into a folder::

    <store>/store.json      version, N, H, W, roles {role: file, dtype, shape, bands, units}
    <store>/index.csv       one row per chip: catalog columns (chip_id, event, split, group,
                            s1_date, s2_date, lat, lon, vh_thresh, ...) + has_<role> flags
    <store>/<role>.npy      s1 (N, 2, H, W) float32 dB (NaN = nodata)
                            s2 (N, 13, H, W) int16 DN (0 = nodata; half the bytes of float32)
                            label roles (N, H, W) int16 in {-1, 0, 1}

A chip lacking a role is filled with nodata and flagged ``has_<role> = False``. The folder is
written under a temporary name and renamed when complete (atomic). :class:`ChipStore` opens it
with ``np.load(mmap_mode="r")`` and returns chips in the same units as
:func:`floodnb.data.io.read_arrays` (S2 converted to reflectance with NaN on read).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from floodnb.bands import LABEL_NODATA, ROLES, S1_BANDS, S2_BANDS, S2_SCALE
from floodnb.io_utils import atomic_dir, atomic_write_json

STORE_VERSION = 1
INDEX_FILE = "index.csv"
META_FILE = "store.json"
#: Catalog columns kept in the index (those present in the catalog).
INDEX_COLUMNS: tuple[str, ...] = (
    "chip_id", "event", "split", "group", "location", "iso_cc", "s1_date", "s2_date", "orbit", "vh_thresh",
    "lat", "lon",
)
_STORED_DTYPE = {"s1": np.float32, "s2": np.int16}
_BANDS = {"s1": S1_BANDS, "s2": S2_BANDS}
_UNITS = {"s1": "dB", "s2": f"DN (reflectance x {S2_SCALE:g}), 0 = nodata"}


def _shape(role: str, n: int, h: int, w: int) -> tuple[int, ...]:
    return (n, len(_BANDS[role]), h, w) if role in _BANDS else (n, h, w)


def _to_stored(role: str, arr: np.ndarray) -> np.ndarray:
    if role == "s2":  # reflectance with NaN -> DN with 0
        dn = np.rint(np.nan_to_num(arr, nan=0.0) * S2_SCALE)
        return np.clip(dn, np.iinfo(np.int16).min, np.iinfo(np.int16).max).astype(np.int16)
    return arr


def _fill(role: str) -> float | int:
    return np.nan if role == "s1" else (0 if role == "s2" else LABEL_NODATA)


def pack(catalog: pd.DataFrame, path: str | Path, *, roles: Sequence[str] | None = None,
         overwrite: bool = False, progress: bool = True) -> ChipStore:
    """Decode every chip of ``catalog`` once into a memory-mapped store at ``path``.

    ``roles``: roles to pack (default: every role with at least one file in the catalog).
    All packed chips must share one H x W. Memory use is bounded by one chip. ``overwrite``:
    replace an existing store (only after the new one is complete); without it an existing
    ``path`` is a FileExistsError. Returns the opened :class:`ChipStore`.
    """
    from tqdm.auto import tqdm

    from floodnb.data.io import read_arrays

    if len(catalog) == 0:
        raise ValueError("pack: the catalog is empty; nothing to pack")
    if roles is None:
        roles = [r for r in ROLES if f"{r}_path" in catalog.columns and catalog[f"{r}_path"].notna().any()]
    unknown = [r for r in roles if r not in ROLES]
    if unknown:
        raise ValueError(f"pack: unknown roles {unknown}; expected names from {ROLES}")
    roles = list(dict.fromkeys(roles))
    if not roles:
        raise ValueError("pack: no role has any file in the catalog")
    has = {r: (catalog[f"{r}_path"].notna().to_numpy() if f"{r}_path" in catalog.columns
               else np.zeros(len(catalog), bool)) for r in roles}
    any_role = np.logical_or.reduce([has[r] for r in roles])
    if not any_role.all():
        bad = catalog["chip_id"].to_numpy()[~any_role][:5].tolist()
        raise ValueError(f"pack: {int((~any_role).sum())} chips have none of the roles {roles} (e.g. {bad}); "
                         "filter the catalog first")
    n = len(catalog)
    path = Path(path)
    with atomic_dir(path, overwrite=overwrite) as tmp:
        arrays: dict[str, np.memmap] = {}
        hw: tuple[int, int] | None = None
        first_chip = ""
        rows = catalog.reset_index(drop=True)
        for i, row in tqdm(rows.iterrows(), total=n, desc=f"pack {path.name}", disable=not progress):
            present = [r for r in roles if has[r][i]]
            chip, grid = read_arrays(row, roles=present)
            if hw is None:
                hw, first_chip = grid.shape, str(row["chip_id"])
                for r in roles:
                    arrays[r] = np.lib.format.open_memmap(tmp / f"{r}.npy", mode="w+",
                                                          dtype=_STORED_DTYPE.get(r, np.int16),
                                                          shape=_shape(r, n, *hw))
            elif grid.shape != hw:
                raise ValueError(f"pack: chip {row['chip_id']} is {grid.shape[0]}x{grid.shape[1]} px but "
                                 f"{first_chip} is {hw[0]}x{hw[1]}; a store holds one chip size")
            for r in roles:
                arrays[r][i] = _to_stored(r, chip[r]) if r in chip else _fill(r)
        for a in arrays.values():
            a.flush()
        assert hw is not None
        index = rows[[c for c in INDEX_COLUMNS if c in rows.columns]].copy()
        for r in roles:
            index[f"has_{r}"] = has[r]
        index.to_csv(tmp / INDEX_FILE, index=False)
        meta = {
            "version": STORE_VERSION, "n": n, "height": hw[0], "width": hw[1],
            "roles": {r: {"file": f"{r}.npy", "dtype": np.dtype(arrays[r].dtype).name,
                          "shape": list(arrays[r].shape), "bands": list(_BANDS.get(r, ("label",))),
                          "units": _UNITS.get(r, "label: -1 nodata, 0 dry, 1 water")} for r in roles},
            "source_root": catalog.attrs["root"] if "root" in catalog.attrs else None,
        }
        del arrays
        atomic_write_json(tmp / META_FILE, meta)
    return ChipStore.open(path)


class ChipStore:
    """A packed store opened read-only with memory maps; see the module docstring for layout.

    ``index``: DataFrame, one row per chip (catalog columns + ``has_<role>``); ``roles``;
    ``height``/``width``; :meth:`array` gives the raw memmap of a role, :meth:`read` one chip
    converted to floodnb units.
    """

    def __init__(self, path: Path, meta: dict, index: pd.DataFrame) -> None:
        self.path = path
        self.meta = meta
        self.index = index
        self.roles: tuple[str, ...] = tuple(meta["roles"])
        self.height, self.width = int(meta["height"]), int(meta["width"])
        self._arrays: dict[str, np.ndarray] = {}
        self._has = {r: (index[f"has_{r}"].to_numpy(bool) if f"has_{r}" in index.columns
                         else np.zeros(len(index), bool)) for r in self.roles}

    @classmethod
    def open(cls, path: str | Path) -> ChipStore:
        """Open a store folder; FileNotFoundError / ValueError name the missing or bad file."""
        path = Path(path)
        meta_path = path / META_FILE
        if not meta_path.is_file():
            raise FileNotFoundError(f"{meta_path} not found: {str(path)!r} is not a floodnb chip store "
                                    "(make one with floodnb.data.store.pack or 'floodnb pack')")
        try:
            meta = json.loads(meta_path.read_text())
            n, roles = int(meta["n"]), dict(meta["roles"])
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{meta_path}: malformed store metadata ({exc})") from exc
        if meta.get("version") != STORE_VERSION:
            raise ValueError(f"{meta_path}: store version {meta.get('version')!r}; expected {STORE_VERSION}")
        index = pd.read_csv(path / INDEX_FILE, dtype={"chip_id": object, "split": object, "event": object,
                                                       "s1_date": object, "s2_date": object},
                            keep_default_na=False, na_values=[""])
        index = index.astype({c: object for c in index.columns if index[c].dtype != bool
                              and c not in ("lat", "lon", "vh_thresh")})
        index = index.where(index.notna(), None) if len(index) else index
        for c in ("lat", "lon", "vh_thresh"):
            if c in index.columns:
                index[c] = pd.to_numeric(index[c]).astype("float64")
        if len(index) != n:
            raise ValueError(f"{path / INDEX_FILE}: {len(index)} rows but {meta_path} says {n} chips")
        for r, spec in roles.items():
            f = path / spec["file"]
            if not f.is_file():
                raise FileNotFoundError(f"chip store {str(path)!r}: array file {f.name} for role {r!r} is missing")
        return cls(path, meta, index.reset_index(drop=True))

    def __len__(self) -> int:
        return len(self.index)

    def __repr__(self) -> str:
        return f"ChipStore({str(self.path)!r}, n={len(self)}, {self.height}x{self.width}, roles={self.roles})"

    @property
    def chip_ids(self) -> list[str]:
        return [str(c) for c in self.index["chip_id"]]

    def array(self, role: str) -> np.ndarray:
        """Raw memory-mapped array of ``role`` (stored dtype/units; see module docstring)."""
        if role not in self.roles:
            raise KeyError(f"chip store {str(self.path)!r} has no role {role!r}; it has {self.roles}")
        if role not in self._arrays:
            spec = self.meta["roles"][role]
            arr = np.load(self.path / spec["file"], mmap_mode="r")
            if list(arr.shape) != list(spec["shape"]):
                raise ValueError(f"{self.path / spec['file']}: shape {arr.shape}, store.json says {spec['shape']}")
            self._arrays[role] = arr
        return self._arrays[role]

    def has(self, role: str, i: int) -> bool:
        return bool(role in self._has and self._has[role][i])

    def read(self, i: int, *, roles: Sequence[str] | None = None,
             window: tuple[slice, slice] | None = None) -> dict[str, np.ndarray]:
        """Chip ``i`` as role -> array in floodnb units (S1 dB, S2 reflectance + NaN, labels int16).

        Roles the chip lacks are left out. ``window``: (rows, cols) slices read from the map
        (only those bytes are touched), e.g. for a random crop.
        """
        roles = self.roles if roles is None else roles
        win = (slice(None), slice(None)) if window is None else window
        out: dict[str, np.ndarray] = {}
        for r in roles:
            if not self.has(r, i):
                continue
            a = self.array(r)
            if r in _BANDS:
                x = np.array(a[i, :, win[0], win[1]])
                if r == "s2":
                    bad = x == 0
                    x = x.astype(np.float32) / np.float32(S2_SCALE)
                    x[bad] = np.nan
                out[r] = x
            else:
                out[r] = np.array(a[i, win[0], win[1]])
        return out
