"""Read one Sen1Floods11 chip: GeoTIFF layers -> ``xr.Dataset`` (via rioxarray) or numpy arrays.

Sen1Floods11 (Bonafilia et al., CVPR Workshops 2020) conventions, applied here and nowhere else:

* ``s1 (s1_band=VV,VH, y, x)`` float32 backscatter in dB; NaN = nodata (a file nodata tag other
  than NaN is mapped to NaN too).
* ``s2 (s2_band=B1..B12 with B8A, y, x)`` float32 Level-1C TOA reflectance = DN / 10000;
  DN 0 (and the file's nodata tag) -> NaN. Real files are int16.
* ``label``, ``s1_otsu``, ``s2_index``, ``jrc``, ``truth_water`` ``(y, x)`` int16 in {-1, 0, 1}
  (-1 = nodata / cloud / not valid); ``truth_class (y, x)`` int16 in {-1, 0..7}. Real label
  files carry no nodata tag; a tag, where present, is mapped to -1.
* Image units and ranges are checked on read (:mod:`floodnb.data.units`): S1 stored as integers,
  S1 that is not dB, S2 reflectance 0..1 and untagged fill values (-9999) raise
  :class:`floodnb.data.units.UnitsError` (a ``ValueError``) naming file, band and observed range;
  ``s1_units="linear"|"amplitude"`` converts S1 to dB.

Every layer of a chip must share the grid of the first layer read (same shape and CRS,
transform equal within a sub-pixel tolerance: real LabelHand transforms differ from S1Hand's by
~1e-17 degrees); all variables get the first layer's coordinates. Bad files raise
:class:`ChipReadError` (a ``ValueError``) naming the file and what was expected; missing files
raise ``FileNotFoundError``. Valid but empty data (an all-NaN S1 chip, an all -1 label) gives an
:class:`EmptyChipWarning` and a correct result. Files are only ever opened for reading.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
from affine import Affine

from floodnb.bands import LABEL_NODATA, LAYERS, ROLES, S1_BANDS, S2_BANDS, S2_SCALE, SIM_CLASSES
from floodnb.data.metadata import chip_event, raster_center
from floodnb.data.units import check_s2_dn, check_units_option, s1_to_model_db

IMAGE_ROLES: tuple[str, ...] = ("s1", "s2")
LABEL_ROLES: tuple[str, ...] = ("label", "s1_otsu", "s2_index", "jrc", "truth_water", "truth_class")
TRUTH_ROLES: tuple[str, ...] = ("truth_water", "truth_class")
#: Band names (image roles) or band count 1 (label roles) expected per role.
ROLE_BANDS: dict[str, tuple[str, ...]] = {"s1": S1_BANDS, "s2": S2_BANDS}
#: Allowed integer values per label role (after nodata -> -1).
LABEL_VALUES: dict[str, frozenset[int]] = {
    **{r: frozenset((LABEL_NODATA, 0, 1)) for r in LABEL_ROLES},
    "truth_class": frozenset((LABEL_NODATA, *range(len(SIM_CLASSES)))),
}
#: Grid tolerance in pixels: origins may differ by this fraction of a pixel, pixel sizes by
#: this relative amount.
GRID_TOL_PX: float = 1e-3
ATTR_KEYS: tuple[str, ...] = ("chip_id", "event", "split", "s1_date", "s2_date", "lat", "lon", "vh_thresh")


class ChipReadError(ValueError):
    """A chip file that cannot be used: not a GeoTIFF, truncated, wrong bands, wrong grid, bad values."""


class EmptyChipWarning(UserWarning):
    """A chip layer that is valid but holds no data (all-NaN image, all-nodata label)."""


@dataclass(frozen=True)
class Grid:
    """Georeferencing of one layer: CRS (rasterio CRS or None), affine transform, (H, W)."""

    crs: object
    transform: Affine
    shape: tuple[int, int]


def _none(v: object) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA


def role_paths(row_or_paths: pd.Series | Mapping) -> dict[str, str]:
    """Role -> path for a catalog row (``<role>_path`` entries) or a mapping role/``<role>_path`` -> path.

    Missing, None or NaN entries are left out.
    """
    src = row_or_paths.to_dict() if isinstance(row_or_paths, pd.Series) else dict(row_or_paths)
    out: dict[str, str] = {}
    for role in ROLES:
        for key in (f"{role}_path", role):
            if key in src and not _none(src[key]) and str(src[key]) != "":
                out[role] = str(src[key])
                break
    return out


def _select_roles(paths: Mapping[str, str], roles: Sequence[str] | None, *, with_truth: bool,
                  chip: str) -> list[str]:
    if roles is None:
        return [r for r in ROLES if r in paths and (with_truth or r not in TRUTH_ROLES)]
    unknown = [r for r in roles if r not in ROLES]
    if unknown:
        raise ValueError(f"unknown roles {unknown}; expected names from {ROLES}")
    absent = [r for r in roles if r not in paths]
    if absent:
        raise ValueError(f"chip {chip}: requested roles {absent} have no file (present: {sorted(paths)})")
    roles = list(dict.fromkeys(roles))
    if with_truth:
        roles += [r for r in TRUTH_ROLES if r in paths and r not in roles]
    return roles


def _layer_name(role: str) -> str:
    return next(n for n, spec in LAYERS.items() if spec.role == role)


def _validate_bands(role: str, count: int, descriptions: Sequence[str | None], path: str) -> None:
    want = ROLE_BANDS.get(role)
    n = len(want) if want else 1
    if count != n:
        what = f"{n} bands ({', '.join(want)})" if want else "1 band"
        raise ChipReadError(f"{path}: has {count} band(s); expected {what} for a {_layer_name(role)}-like "
                            f"'{role}' layer")
    if want and descriptions and all(descriptions) and tuple(descriptions) != tuple(want):
        raise ChipReadError(f"{path}: band descriptions {tuple(descriptions)}; expected {want} in this order")


def _convert(role: str, raw: np.ndarray, *, nodata: float | None, path: str, s1_units: str = "auto") -> np.ndarray:
    """Raw layer pixels -> floodnb convention (see module docstring). ``raw`` (C, H, W).

    Image layers are unit- and range-checked (:mod:`floodnb.data.units`); S1 in ``s1_units``
    "linear"/"amplitude" is converted to dB.
    """
    if role == "s1":
        return s1_to_model_db(raw, units=s1_units, nodata=nodata, path=path)
    if role == "s2":
        if raw.dtype.kind == "f":
            bad = ~np.isfinite(raw) | (raw == 0)
        else:
            bad = raw == 0
        if nodata is not None and not math.isnan(nodata):
            bad |= raw == nodata
        check_s2_dn(raw, ~bad, path=path)
        out = raw.astype(np.float32) / np.float32(S2_SCALE)
        out[bad] = np.nan
        return out
    arr = raw[0]
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr) | np.isnan(arr)) or np.any(np.isfinite(arr) & (arr != np.round(arr))):
            raise ChipReadError(f"{path}: non-integer label values; expected integers in "
                                f"{sorted(LABEL_VALUES[role])}")
        bad = np.isnan(arr)
        arr = np.where(bad, LABEL_NODATA, arr)
    else:
        bad = np.zeros(arr.shape, bool)
    if nodata is not None and not math.isnan(nodata) and nodata != LABEL_NODATA:
        bad |= arr == nodata
    out = arr.astype(np.int16)
    out[bad] = LABEL_NODATA
    values = np.unique(out)
    extra = sorted(set(values.tolist()) - LABEL_VALUES[role])
    if extra:
        raise ChipReadError(f"{path}: label values {extra[:10]} outside the expected "
                            f"{sorted(LABEL_VALUES[role])} for role '{role}'")
    return out


def _check_grid(ref: Grid, ref_path: str, grid: Grid, path: str) -> None:
    if grid.shape != ref.shape:
        raise ChipReadError(f"layers do not share a grid: {path} is {grid.shape[0]}x{grid.shape[1]} px, "
                            f"{ref_path} is {ref.shape[0]}x{ref.shape[1]} px")
    if (grid.crs is None) != (ref.crs is None) or (grid.crs is not None and grid.crs != ref.crs):
        raise ChipReadError(f"layers do not share a grid: {path} has CRS {grid.crs}, {ref_path} has {ref.crs}")
    a, b = ref.transform, grid.transform
    px = max(abs(a.a), abs(a.e), 1e-300)
    size_ok = all(abs(x - y) <= GRID_TOL_PX * px for x, y in ((a.a, b.a), (a.b, b.b), (a.d, b.d), (a.e, b.e)))
    origin_ok = abs(a.c - b.c) <= GRID_TOL_PX * px and abs(a.f - b.f) <= GRID_TOL_PX * px
    if not (size_ok and origin_ok):
        raise ChipReadError(f"layers do not share a grid (tolerance {GRID_TOL_PX} px): {path} has transform "
                            f"{tuple(b)[:6]}, {ref_path} has {tuple(a)[:6]}")


def _warn_empty(role: str, arr: np.ndarray, *, chip: str, path: str) -> None:
    if role in IMAGE_ROLES and arr.size and bool(np.isnan(arr).all()):
        warnings.warn(f"chip {chip}: {role} layer {path} is entirely nodata (NaN); returned as all-NaN",
                      EmptyChipWarning, stacklevel=3)
    elif role in LABEL_ROLES and arr.size and bool((arr == LABEL_NODATA).all()):
        warnings.warn(f"chip {chip}: {role} layer {path} is entirely nodata (-1); returned as all -1",
                      EmptyChipWarning, stacklevel=3)


def _read_rasterio(path: str, role: str) -> tuple[np.ndarray, Grid, float | None, tuple]:
    import rasterio

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"chip file {path!r} ({role}) not found")
    try:
        with rasterio.open(p) as ds:
            _validate_bands(role, ds.count, ds.descriptions, path)
            raw = ds.read()
            grid = Grid(ds.crs, ds.transform, (ds.height, ds.width))
            return raw, grid, ds.nodata, ds.descriptions
    except ChipReadError:
        raise
    except (rasterio.errors.RasterioError, OSError, ValueError) as exc:
        raise ChipReadError(f"{path}: cannot read as GeoTIFF ({exc}); expected a readable Sen1Floods11 "
                            f"{_layer_name(role)} GeoTIFF (truncated or not a GeoTIFF?)") from exc


def _resolve(row_or_paths, roles: Sequence[str] | None, *, with_truth: bool) -> tuple[dict, str, list[str]]:
    """``(role -> path, chip name, roles to read)``; error naming the chip when nothing is left to read."""
    paths = role_paths(row_or_paths)
    chip = _chip_name(row_or_paths, paths)
    sel = _select_roles(paths, roles, with_truth=with_truth, chip=chip)
    if not sel:
        raise ValueError(f"chip {chip}: no layer files to read")
    return paths, chip, sel


def read_arrays(row_or_paths: pd.Series | Mapping, *, roles: Sequence[str] | None = None,
                with_truth: bool = False, s1_units: str = "auto") -> tuple[dict[str, np.ndarray], Grid]:
    """Fast path (rasterio, no xarray): role -> converted array, plus the chip's grid.

    Same conventions, checks, errors and warnings as :func:`load_chip`; image roles are
    (C, H, W) float32, label roles (H, W) int16. Used by the torch Dataset and the store packer.
    """
    check_units_option(s1_units)
    paths, chip, sel = _resolve(row_or_paths, roles, with_truth=with_truth)
    out: dict[str, np.ndarray] = {}
    ref: tuple[Grid, str] | None = None
    for role in sel:
        raw, grid, nodata, _ = _read_rasterio(paths[role], role)
        if ref is None:
            ref = (grid, paths[role])
        else:
            _check_grid(ref[0], ref[1], grid, paths[role])
        arr = _convert(role, raw, nodata=nodata, path=paths[role], s1_units=s1_units)
        _warn_empty(role, arr, chip=chip, path=paths[role])
        out[role] = arr
    assert ref is not None
    return out, ref[0]


def _chip_name(row_or_paths: pd.Series | Mapping, paths: Mapping[str, str]) -> str:
    src = row_or_paths.to_dict() if isinstance(row_or_paths, pd.Series) else dict(row_or_paths)
    if "chip_id" in src and not _none(src["chip_id"]):
        return str(src["chip_id"])
    for role, path in paths.items():
        name = Path(path).name
        layer = _layer_name(role)
        suffix = f"_{layer}.tif"
        if name.endswith(suffix):
            return name[: -len(suffix)]
        parts = name.split("_")
        if len(parts) >= 2:
            return f"{parts[0]}_{parts[1]}"
    return "<unknown chip>"


def _attrs(row_or_paths: pd.Series | Mapping, paths: Mapping[str, str], chip: str) -> dict[str, object]:
    src = row_or_paths.to_dict() if isinstance(row_or_paths, pd.Series) else dict(row_or_paths)
    attrs: dict[str, Any] = {k: (None if k not in src or _none(src[k]) else src[k]) for k in ATTR_KEYS}
    attrs["chip_id"] = chip
    if attrs["event"] is None and "_" in chip:
        attrs["event"] = chip_event(chip)
    if attrs["lat"] is None or attrs["lon"] is None:
        attrs["lat"], attrs["lon"] = raster_center(next(iter(paths.values())))
    attrs["lat"], attrs["lon"] = float(attrs["lat"]), float(attrs["lon"])
    attrs["vh_thresh"] = None if attrs["vh_thresh"] is None else float(attrs["vh_thresh"])
    for k in ("chip_id", "event", "split", "s1_date", "s2_date"):
        attrs[k] = None if attrs[k] is None else str(attrs[k])
    return attrs


_UNITS = {"s1": "dB", "s2": "reflectance"}


def load_chip(row_or_paths: pd.Series | Mapping, *, roles: Sequence[str] | None = None,
              with_truth: bool = False, s1_units: str = "auto") -> xr.Dataset:
    """Load one chip as an ``xr.Dataset`` through rioxarray.

    ``row_or_paths``: a catalog row (:func:`floodnb.data.catalog.build_catalog`) or a mapping
    role (or ``<role>_path``) -> file. ``roles``: subset of :data:`floodnb.bands.ROLES` to read
    (default: every role with a file, truth roles only with ``with_truth=True``); an explicitly
    requested role without a file is a ValueError. ``s1_units``: units of the S1 file,
    :data:`floodnb.data.units.S1_UNITS` ("auto": float dB, checked).

    Returns variables ``s1 (s1_band, y, x)`` float32 dB, ``s2 (s2_band, y, x)`` float32
    reflectance, label roles ``(y, x)`` int16 in {-1, 0, 1} — only those present; ``x``/``y``
    pixel-centre coordinates (lon/lat for EPSG:4326), CRS and transform via ``ds.rio``; attrs
    ``chip_id, event, split, s1_date, s2_date, lat, lon, vh_thresh`` (None where unknown; lat/lon
    from the raster bounds when the row has none; ``vh_thresh``: the event's Otsu VH threshold in
    dB from ``Sen1Floods11_Metadata.geojson``). Each variable's ``source`` attr names its file.
    """
    import rasterio
    import rioxarray

    check_units_option(s1_units)
    paths, chip, sel = _resolve(row_or_paths, roles, with_truth=with_truth)
    data_vars: dict[str, xr.DataArray] = {}
    ref: tuple[Grid, str, np.ndarray, np.ndarray] | None = None
    for role in sel:
        path = paths[role]
        if not Path(path).is_file():
            raise FileNotFoundError(f"chip file {path!r} ({role}) not found")
        try:
            # a GeoTIFF opens as one DataArray; the stub's return type also lists list[Dataset]
            with rioxarray.open_rasterio(path, masked=False, cache=False) as da:  # type: ignore[union-attr]
                names = da.attrs.get("long_name", ())
                names = names if isinstance(names, tuple) else (names,)
                _validate_bands(role, int(da.sizes["band"]), names if len(names) == da.sizes["band"] else (), path)
                raw = np.asarray(da.values)
                grid = Grid(da.rio.crs, da.rio.transform(), (int(da.sizes["y"]), int(da.sizes["x"])))
                nodata = da.rio.nodata
                y, x = da.coords["y"].values, da.coords["x"].values
        except ChipReadError:
            raise
        except (rasterio.errors.RasterioError, OSError, ValueError, RuntimeError) as exc:
            raise ChipReadError(f"{path}: cannot read as GeoTIFF ({exc}); expected a readable Sen1Floods11 "
                                f"{_layer_name(role)} GeoTIFF (truncated or not a GeoTIFF?)") from exc
        if ref is None:
            ref = (grid, path, y, x)
        else:
            _check_grid(ref[0], ref[1], grid, path)
        arr = _convert(role, raw, nodata=None if nodata is None else float(nodata), path=path, s1_units=s1_units)
        _warn_empty(role, arr, chip=chip, path=path)
        y, x = ref[2], ref[3]
        if role in IMAGE_ROLES:
            dim = f"{role}_band"
            v = xr.DataArray(arr, dims=(dim, "y", "x"), coords={dim: list(ROLE_BANDS[role]), "y": y, "x": x})
        else:
            v = xr.DataArray(arr, dims=("y", "x"), coords={"y": y, "x": x})
        v.attrs = {"source": path, "layer": _layer_name(role)}
        if role in _UNITS:
            v.attrs["units"] = _UNITS[role]
        data_vars[role] = v
    assert ref is not None
    ds = xr.Dataset(data_vars)
    ds = ds.rio.write_crs(ref[0].crs) if ref[0].crs is not None else ds
    ds = ds.rio.write_transform(ref[0].transform)
    ds.attrs = _attrs(row_or_paths, paths, chip)
    return ds
