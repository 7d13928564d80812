"""The one crossing from chips to torch: :class:`ChipDataset` yields dict samples.

Sample keys (:data:`KEYS`; a key is absent when the source lacks it):

* ``"s1"`` float32 (2, H, W), ``"s2"`` float32 (13, H, W): inputs normalised with the given
  :class:`floodnb.data.normalize.Normalizer` (NaN -> 0 after normalising);
* ``"valid"`` bool (H, W): pixels where every input band has data;
* ``"label"`` int64 (H, W): target (hand label by default), ``"weak"`` int64 (H, W): weak label
  (S1 Otsu by default), ``"truth"`` int64 (H, W): simulator truth water (simulated data only) —
  label nodata (-1) becomes :data:`floodnb.bands.IGNORE_INDEX` **here and nowhere else**, and
  with ``ignore_invalid_input=True`` so do pixels without input data (an all-NaN S1 chip then
  contributes no loss even though its label has water);
* ``"meta"`` float32 (5,) = [sin doy, cos doy, cos lat cos lon, cos lat sin lon, sin lat]
  (teacher-only spatiotemporal metadata, Bernhard et al., ECAI 2024; doy from s2_date, else s1_date);
  with ``shuffle_meta=seed`` each chip gets the metadata of another chip of the same dataset (a
  seeded permutation: same marginal distribution, link to the chip broken — the ablation that
  tests whether a metadata-conditioned model uses what the metadata says about its chip);
* ``"soft"`` float32 (K, H, W): teacher probabilities when ``soft`` (N, K, H, W) is given;
* ``"index"`` int64 (), ``"chip_id"`` str.

Sources: a catalog DataFrame (GeoTIFF decode per sample, :func:`floodnb.data.io.read_arrays`)
or a packed :class:`floodnb.data.store.ChipStore` (memory-mapped fast path; crops read only the
window). Over a store with prepared arrays for the same inputs, label roles and normalisers
(:func:`floodnb.data.prepared.prepare`, ``floodnb pack --prepare``) samples are read precomputed —
identical, but epochs only copy bytes (``prepared=False`` turns this off). Training augmentation:
random crop, horizontal/vertical flips and rot90, drawn from a
generator seeded by ``(seed, epoch, index)`` — deterministic per epoch whatever the worker
order; call :meth:`ChipDataset.set_epoch` each epoch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from floodnb.bands import IGNORE_INDEX, LABEL_NODATA
from floodnb.data.metadata import meta_vector
from floodnb.data.normalize import DEFAULT_PRESETS, Normalizer, get_preset
from floodnb.data.store import ChipStore

KEYS: tuple[str, ...] = ("s1", "s2", "valid", "label", "weak", "truth", "meta", "soft", "index", "chip_id")
INPUT_ROLES: tuple[str, ...] = ("s1", "s2")
META_DIM = 5


def _none(v: object) -> bool:
    return v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA


class ChipDataset(torch.utils.data.Dataset):
    """Dict samples for training/evaluation; see the module docstring for keys and shapes.

    ``source``: catalog DataFrame or :class:`ChipStore`; ``inputs``: subset of ("s1", "s2"),
    every chip must have them; ``target`` / ``weak``: label roles (or None) mapped to keys
    "label" / "weak" (chips lacking them get all IGNORE_INDEX); ``normalizers``: role ->
    Normalizer (default: :data:`floodnb.data.normalize.DEFAULT_PRESETS`); ``crop``: square
    crop size in px (random with ``augment``, centred otherwise) or None; ``augment``: random
    crop + flips + rot90; ``with_meta``: add "meta"; ``soft``: (N, K, H, W) array aligned with
    the source rows (memmap allowed); ``split``: keep only rows of these splits; ``seed``;
    ``s1_units``: units of S1 GeoTIFFs (:data:`floodnb.data.units.S1_UNITS`; values are checked
    on read); ``missing_inputs``: "error" (a chip lacking an input is a ValueError) or "skip"
    (left out; :attr:`skipped` maps its chip id to the inputs it lacks); ``shuffle_meta``: None
    (each chip's own metadata) or the seed of a permutation of the metadata among this dataset's
    chips (:meth:`meta_row`; needs ``with_meta``).
    """

    def __init__(self, source: pd.DataFrame | ChipStore, *, inputs: Sequence[str] = ("s1",),
                 target: str | None = "label", weak: str | None = "s1_otsu",
                 normalizers: Mapping[str, Normalizer] | None = None, crop: int | None = None,
                 augment: bool = False, with_meta: bool = False, soft: np.ndarray | None = None,
                 split: str | Sequence[str] | None = None, ignore_invalid_input: bool = True,
                 seed: int = 0, prepared: bool = True, s1_units: str = "auto",
                 missing_inputs: str = "error", shuffle_meta: int | None = None) -> None:
        inputs = tuple(inputs)
        if shuffle_meta is not None and (not with_meta or isinstance(shuffle_meta, bool)
                                         or not isinstance(shuffle_meta, (int, np.integer))):
            raise ValueError(f"shuffle_meta must be None or an int seed with with_meta=True, got "
                             f"shuffle_meta={shuffle_meta!r}, with_meta={with_meta!r}")
        bad = [r for r in inputs if r not in INPUT_ROLES]
        if not inputs or bad:
            raise ValueError(f"inputs must be a non-empty subset of {INPUT_ROLES}, got {inputs}")
        self.source = source
        self.is_store = isinstance(source, ChipStore)
        if not self.is_store and not isinstance(source, pd.DataFrame):
            raise TypeError(f"source must be a catalog DataFrame or a ChipStore, got {type(source).__name__}")
        table = source.index if isinstance(source, ChipStore) else source.reset_index(drop=True)
        rows = np.arange(len(table))
        if split is not None:
            splits = {split} if isinstance(split, str) else set(split)
            rows = rows[table["split"].isin(splits).to_numpy()]
        self.rows = rows
        self.table = table
        from floodnb.data.units import check_units_option

        self.s1_units = check_units_option(s1_units)
        if self.is_store and s1_units not in ("auto", "db"):
            raise ValueError(f"s1_units={s1_units!r}: a packed store holds S1 in dB already (checked when it was "
                             "packed); s1_units applies to GeoTIFF chips (a catalog source)")
        if missing_inputs not in ("error", "skip"):
            raise ValueError(f"missing_inputs must be 'error' or 'skip', got {missing_inputs!r}")
        self.inputs, self.target, self.weak = inputs, target, weak
        self.normalizers = {r: (normalizers[r] if normalizers is not None and r in normalizers
                                else get_preset(DEFAULT_PRESETS[r])) for r in inputs}
        for r, n in self.normalizers.items():
            if n.role != r:
                raise ValueError(f"normaliser {n.name!r} is for role {n.role!r}, given for input {r!r}")
        if crop is not None and crop < 1:
            raise ValueError(f"crop must be a positive size in px or None, got {crop}")
        self.crop, self.augment, self.with_meta = crop, augment, with_meta
        self.ignore_invalid_input = ignore_invalid_input
        self.seed, self.epoch = int(seed), 0
        #: chip_id -> input roles it lacks, for chips left out with ``missing_inputs="skip"``
        self.skipped: dict[str, tuple[str, ...]] = {}
        lacking = {r: ~self._has(r) for r in inputs}
        if missing_inputs == "skip":
            gone = np.logical_or.reduce([m for m in lacking.values()])
            ids = table["chip_id"].to_numpy()[rows]
            self.skipped = {str(ids[j]): tuple(r for r in inputs if lacking[r][j]) for j in np.flatnonzero(gone)}
            self.rows = rows = rows[~gone]
        else:
            for r, lack in lacking.items():
                if lack.any():
                    ids = table["chip_id"].to_numpy()[rows[lack]][:5].tolist()
                    raise ValueError(f"{int(lack.sum())} chips lack input {r!r} (e.g. {ids}); filter the source "
                                     f"to chips with {r}_path / has_{r}, or pass missing_inputs='skip'")
        self.shuffle_meta = None if shuffle_meta is None else int(shuffle_meta)
        self._meta_rows = None if shuffle_meta is None else dict(zip(
            rows.tolist(), rows[np.random.default_rng((int(shuffle_meta), 0x5EED)).permutation(len(rows))].tolist()))
        self.label_keys = {k: role for k, role in (("label", target), ("weak", weak)) if role is not None
                           and self._has(role).any()}
        self.truth_role = "truth_water" if self._has("truth_water").any() else None
        self._prepared = None  # samples precomputed by floodnb.data.prepared.prepare for these settings
        if self.is_store and prepared and ignore_invalid_input:
            from floodnb.data.prepared_arrays import find_prepared

            self._prepared = find_prepared(source, inputs=inputs, target=self.label_keys.get("label"),
                                           weak=self.label_keys.get("weak"), truth=self.truth_role,
                                           normalizers=self.normalizers)
        if soft is not None:
            if soft.ndim != 4 or soft.shape[0] != len(table):
                raise ValueError(f"soft must be (N={len(table)}, K, H, W) aligned with the source rows, "
                                 f"got shape {soft.shape}")
        self.soft = soft

    def _has(self, role: str) -> np.ndarray:
        t = self.table
        if self.is_store:
            col = f"has_{role}"
            v = t[col].to_numpy(bool) if col in t.columns else np.zeros(len(t), bool)
        else:
            col = f"{role}_path"
            v = t[col].notna().to_numpy() if col in t.columns else np.zeros(len(t), bool)
        return v[self.rows]

    def meta_row(self, r: int) -> int:
        """Source row whose metadata source row ``r`` gets: ``r`` itself unless ``shuffle_meta``."""
        return int(r) if self._meta_rows is None else self._meta_rows[int(r)]

    def set_epoch(self, epoch: int) -> None:
        """Select the augmentation stream of ``epoch`` (same epoch -> same crops/flips)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.rows)

    def _roles(self) -> list[str]:
        roles = list(self.inputs) + list(self.label_keys.values())
        if self.truth_role:
            roles.append(self.truth_role)
        return list(dict.fromkeys(roles))

    def _window(self, h: int, w: int, rng: np.random.Generator) -> tuple[slice, slice]:
        if self.crop is None:
            return slice(None), slice(None)
        if self.crop > h or self.crop > w:
            raise ValueError(f"crop {self.crop} px is larger than the chips ({h}x{w} px)")
        if self.augment:
            y0, x0 = int(rng.integers(0, h - self.crop + 1)), int(rng.integers(0, w - self.crop + 1))
        else:
            y0, x0 = (h - self.crop) // 2, (w - self.crop) // 2
        return slice(y0, y0 + self.crop), slice(x0, x0 + self.crop)

    def _read(self, r: int, rng: np.random.Generator) -> tuple[dict[str, np.ndarray], tuple[slice, slice]]:
        roles = self._roles()
        if self.is_store:
            store: ChipStore = self.source
            win = self._window(store.height, store.width, rng)
            return store.read(int(r), roles=roles, window=win), win
        from floodnb.data.io import read_arrays

        row = self.table.iloc[int(r)]
        present = [x for x in roles if not _none(row[f"{x}_path"])]
        arrays, grid = read_arrays(row, roles=present, s1_units=self.s1_units)
        win = self._window(*grid.shape, rng)
        return {k: v[..., win[0], win[1]] for k, v in arrays.items()}, win

    def __getitem__(self, i: int) -> dict[str, Any]:
        if not 0 <= i < len(self.rows):
            raise IndexError(f"index {i} out of range for {len(self.rows)} chips")
        r = int(self.rows[i])
        rng = np.random.default_rng((self.seed, self.epoch, r))
        if self._prepared is not None:  # same random stream as _read: window first, then flips
            win = self._window(self.height_width[0], self.height_width[1], rng)
            arrays = self._prepared.read(r, win)
        else:
            arrays, win = self._read(r, rng)
        flips = (bool(rng.integers(2)), bool(rng.integers(2)), int(rng.integers(4))) if self.augment else None

        def geo(a: np.ndarray) -> np.ndarray:
            if flips is not None:
                if flips[0]:
                    a = a[..., :, ::-1]
                if flips[1]:
                    a = a[..., ::-1, :]
                if flips[2]:
                    a = np.rot90(a, flips[2], axes=(-2, -1))
            return np.ascontiguousarray(a)

        sample: dict[str, object] = {}
        if self._prepared is not None:  # already normalised, masked and converted: copy, crop, flip
            for key, a in arrays.items():
                sample[key] = torch.from_numpy(geo(a))
            return self._finish(sample, r, win, geo)
        valid = None
        for role in self.inputs:
            x = geo(arrays[role])
            ok = np.isfinite(x).all(axis=0)
            valid = ok if valid is None else valid & ok
            # x is this call's own array (fresh read / copy): normalise in place
            sample[role] = torch.from_numpy(self.normalizers[role](x, inplace=True))
        assert valid is not None
        sample["valid"] = torch.from_numpy(valid)
        h, w = valid.shape
        for key, role in self.label_keys.items():
            sample[key] = self._to_target(geo(arrays[role]) if role in arrays else None, valid, (h, w))
        if self.truth_role:
            t = arrays[self.truth_role] if self.truth_role in arrays else None
            sample["truth"] = self._to_target(None if t is None else geo(t), valid, (h, w), mask_input=False)
        return self._finish(sample, r, win, geo)

    @property
    def height_width(self) -> tuple[int, int]:
        return self.source.height, self.source.width

    def _finish(self, sample: dict, r: int, win: tuple[slice, slice], geo) -> dict[str, object]:
        """Keys that do not depend on the pixels' preparation: meta, soft, index, chip_id."""
        if self.with_meta:
            row = self.table.iloc[self.meta_row(r)]
            date = row["s2_date"] if "s2_date" in row.index and not _none(row["s2_date"]) else (
                row["s1_date"] if "s1_date" in row.index and not _none(row["s1_date"]) else None)
            lat = None if "lat" not in row.index or _none(row["lat"]) else float(row["lat"])
            lon = None if "lon" not in row.index or _none(row["lon"]) else float(row["lon"])
            sample["meta"] = torch.from_numpy(meta_vector(date=date, lat=lat, lon=lon))
        if self.soft is not None:
            s = np.asarray(self.soft[r][..., win[0], win[1]], dtype=np.float32)
            sample["soft"] = torch.from_numpy(geo(s).astype(np.float32, copy=False))
        sample["index"] = torch.from_numpy(np.array(r, dtype=np.int64))
        sample["chip_id"] = str(self.table.at[r, "chip_id"])
        return sample

    def _to_target(self, lab: np.ndarray | None, valid: np.ndarray, hw: tuple[int, int], *,
                   mask_input: bool = True) -> torch.Tensor:
        """The single place where nodata becomes IGNORE_INDEX."""
        if lab is None:
            return torch.full(hw, IGNORE_INDEX, dtype=torch.int64)
        out = lab.astype(np.int64)  # labels are checked to be in {-1, 0, 1} on read
        out += (lab == LABEL_NODATA) * np.int64(IGNORE_INDEX - LABEL_NODATA)  # -1 -> IGNORE_INDEX (fastest form)
        if mask_input and self.ignore_invalid_input and not valid.all():
            np.putmask(out, ~valid, IGNORE_INDEX)
        return torch.from_numpy(out)
