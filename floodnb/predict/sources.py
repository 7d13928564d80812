"""Windowed scene sources: a Sentinel-1 scene opened once, read one strip of rows at a time.

Every source has ``name``, ``height``, ``width``, ``crs``, ``transform`` and ``read(row0, nrows,
col0=0, ncols=None)`` -> ``(C, nrows, ncols or width - col0)`` float32 backscatter in dB, NaN =
nodata; all are picklable (files are opened per read), so dask workers can read strips of them.

* :class:`GeoTiffSource` — one multi-band GeoTIFF or several single-band GeoTIFFs on one grid;
* :class:`ArraySource` — an ``xr.DataArray (band, y, x)`` with a rioxarray CRS;
* :class:`DbSource` — wraps a source of linear power or amplitude and converts it to dB;
* :func:`open_source` — path / list of paths / DataArray -> one of the above, bands matched by
  their descriptions (``VV``, ``VH``) else by order, Sentinel-1 units checked.

Used by :func:`floodnb.predict.predict_raster` and by the many-scene prediction of
:mod:`floodnb.scale.dask_predict` (through :mod:`floodnb.scale.scenes`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import rasterio
from affine import Affine
from rasterio.windows import Window

#: transforms of several input files must agree to this fraction of a pixel
TRANSFORM_TOL = 1e-6


@dataclass(frozen=True)
class GeoTiffSource:
    """Windowed reader over GeoTIFF band(s): ``bands`` = ``((path, band_index_1_based), ...)``
    in the model's channel order. Picklable (files are opened per read). Every :meth:`read`
    returns a new array (``fresh_reads``: the caller may normalise it in place).

    ``fill_check``: names of the bands (Sentinel-1 dB, one per entry of ``bands``) whose every
    strip read is checked for untagged fill values (:func:`floodnb.data.units.check_s1_fill`,
    ``UnitsError`` naming the file, band and rows); None: no check.
    """

    fresh_reads: ClassVar[bool] = True
    name: str
    bands: tuple[tuple[str, int], ...]
    height: int
    width: int
    crs: object
    transform: Affine
    fill_check: tuple[str, ...] | None = None

    def read(self, row0: int, nrows: int, col0: int = 0, ncols: int | None = None) -> np.ndarray:
        """Rows ``[row0, row0 + nrows)``, columns ``[col0, col0 + ncols)`` (default: to the last):
        ``(C, nrows, ncols)`` float32, NaN = nodata.
        """
        ncols = self.width - col0 if ncols is None else ncols
        out = np.empty((len(self.bands), nrows, ncols), dtype=np.float32)
        win = Window(col0, row0, ncols, nrows)
        by_file: dict[str, list[tuple[int, int]]] = {}
        for c, (path, idx) in enumerate(self.bands):
            by_file.setdefault(path, []).append((c, idx))
        for path, pairs in by_file.items():
            chans = [c for c, _ in pairs]
            with rasterio.open(path) as ds:
                if chans == list(range(chans[0], chans[0] + len(chans))) and all(
                        ds.dtypes[i - 1] == "float32" for _, i in pairs):  # straight into `out`: no copy
                    ds.read([i for _, i in pairs], window=win, out=out[chans[0]:chans[0] + len(chans)])
                else:
                    out[chans] = ds.read([i for _, i in pairs], window=win, out_dtype=np.float32)
                nodata = ds.nodata
            if nodata is not None and not math.isnan(nodata):
                for c in chans:
                    band = out[c]  # a view: the mask assignment writes into `out`
                    band[band == np.float32(nodata)] = np.nan
        if self.fill_check is not None:
            from floodnb.data.units import check_s1_fill

            for c, (path, _) in enumerate(self.bands):
                check_s1_fill(out[c:c + 1], path=path, names=(self.fill_check[c],),
                              where=f" (in rows {row0}..{row0 + nrows - 1}, columns {col0}..{col0 + ncols - 1})")
        return out


@dataclass(frozen=True)
class ArraySource:
    """Windowed reader over an in-memory or dask-backed ``xr.DataArray (band, y, x)``. Reads may be
    views of the user's array (``fresh_reads`` False: never modified).
    """

    fresh_reads: ClassVar[bool] = False
    name: str
    data: Any  # xr.DataArray (band, y, x), bands already selected in the model's order
    height: int
    width: int
    crs: object
    transform: Affine

    def read(self, row0: int, nrows: int, col0: int = 0, ncols: int | None = None) -> np.ndarray:
        cols = slice(col0, None if ncols is None else col0 + ncols)
        return np.asarray(self.data[:, row0:row0 + nrows, cols].values, dtype=np.float32)


def _match_bands(available: Sequence[str | None], want: tuple[str, ...], *, what: str) -> list[int] | None:
    """0-based indexes of ``want`` in ``available`` names; ``None`` when names are not all known."""
    if not available or any(not a for a in available):
        return None
    missing = [b for b in want if b not in available]
    if missing:
        raise ValueError(f"{what} has bands {available} but the model needs {list(want)} (missing {missing})")
    return [available.index(b) for b in want]


def open_source(src, *, bands: tuple[str, ...], s1_units: str = "auto"):
    """Open ``src`` (path, list of paths or ``xr.DataArray``) as a windowed source of ``bands``.

    GeoTIFF Sentinel-1 values are checked first (:func:`floodnb.data.units.check_scene`, on a
    sample of the file: dtype, fill values, dB or not), and every strip read is checked for fill
    values (``GeoTiffSource.fill_check``); ``s1_units`` "linear"/"amplitude" wraps the source in a
    dB converter.
    """
    src = _open_source(src, bands=bands)
    if isinstance(src, GeoTiffSource) and set(bands) <= {"VV", "VH"}:
        from floodnb.data.units import check_scene

        check_scene(src.bands, units=s1_units, names=bands)
        if s1_units in ("linear", "amplitude"):
            return DbSource(inner=src, units=s1_units, nodata=None)
        return dataclasses.replace(src, fill_check=tuple(bands))
    return src


def _open_source(src, *, bands: tuple[str, ...]) -> GeoTiffSource | ArraySource:
    try:
        import xarray as xr

        is_array = isinstance(src, xr.DataArray)
    except ImportError:  # pragma: no cover - xarray is a dependency
        is_array = False
    if is_array:
        return _array_source(src, bands=bands)
    paths = [Path(src)] if isinstance(src, (str, Path)) else [Path(p) for p in src]
    if not paths:
        raise ValueError("src: no input raster given")
    for p in paths:
        if not p.is_file():
            raise FileNotFoundError(f"input raster {p} not found")
    entries: list[tuple[str, int, str | None]] = []
    ref: tuple[Path, int, int, object, Affine] | None = None
    for p in paths:
        try:
            ds = rasterio.open(p)
        except rasterio.errors.RasterioIOError as exc:
            raise ValueError(f"input raster {p} is not readable by GDAL: {exc}") from exc
        with ds:
            if ref is None:
                ref = (p, ds.height, ds.width, ds.crs, ds.transform)
            else:
                rp, h, w, crs, tr = ref
                if (ds.height, ds.width) != (h, w) or ds.crs != crs or not ds.transform.almost_equals(
                        tr, precision=abs(tr.a) * TRANSFORM_TOL):
                    raise ValueError(f"input raster {p} is not on the grid of {rp}: {ds.height}x{ds.width} {ds.crs} "
                                     f"{tuple(ds.transform)[:6]} vs {h}x{w} {crs} {tuple(tr)[:6]}")
            if ds.crs is None:
                raise ValueError(f"input raster {p} has no CRS; expected a georeferenced GeoTIFF")
            entries.extend((str(p), i + 1, ds.descriptions[i]) for i in range(ds.count))
    what = ", ".join(str(p) for p in paths)
    names = [e[2] for e in entries]
    idx = _match_bands(names, bands, what=f"input raster {what}")
    if idx is None:
        if len(entries) != len(bands):
            raise ValueError(f"input raster {what} has {len(entries)} band(s) without names; expected {len(bands)} "
                             f"bands {list(bands)} (Sentinel-1 backscatter in dB), in that order")
        idx = list(range(len(bands)))
    name = paths[0].stem if len(paths) == 1 else "+".join(p.stem for p in paths)
    assert ref is not None  # paths is not empty
    _, h, w, crs, tr = ref
    return GeoTiffSource(name=name, bands=tuple((entries[i][0], entries[i][1]) for i in idx), height=h, width=w,
                         crs=crs, transform=tr)


def _array_source(da, *, bands: tuple[str, ...]) -> ArraySource:
    if da.ndim != 3 or tuple(da.dims[1:]) != ("y", "x"):
        raise ValueError(f"src DataArray {da.name!r}: expected dims (band, y, x), got {da.dims}")
    bdim = da.dims[0]
    name = str(da.name) if da.name is not None else "array"
    labels = [str(v) for v in da[bdim].values] if bdim in da.coords and da[bdim].dtype.kind in "UO" else None
    idx = _match_bands(labels, bands, what=f"src DataArray {name!r}") if labels else None
    if idx is None:
        if da.sizes[bdim] != len(bands):
            raise ValueError(f"src DataArray {name!r} has {da.sizes[bdim]} band(s) without names; expected "
                             f"{len(bands)} bands {list(bands)}, in that order")
        idx = list(range(len(bands)))
    crs = da.rio.crs
    if crs is None:
        raise ValueError(f"src DataArray {name!r} has no CRS (set one with .rio.write_crs)")
    return ArraySource(name=name, data=da.isel({bdim: idx}), height=da.sizes["y"], width=da.sizes["x"], crs=crs,
                       transform=da.rio.transform())


@dataclass(frozen=True)
class DbSource:
    """Windowed reader converting a Sentinel-1 source of linear power or amplitude to dB
    (STAC RTC items; :func:`floodnb.scale.collections.s1_to_db`). ``read`` returns
    ``(C, nrows, width)`` float32 dB with NaN = nodata. Picklable.
    """

    inner: GeoTiffSource | ArraySource
    units: str
    nodata: float | None

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def height(self) -> int:
        return self.inner.height

    @property
    def width(self) -> int:
        return self.inner.width

    @property
    def crs(self):
        return self.inner.crs

    @property
    def transform(self):
        return self.inner.transform

    def read(self, row0: int, nrows: int, col0: int = 0, ncols: int | None = None) -> np.ndarray:
        from floodnb.scale.collections import s1_to_db

        return s1_to_db(self.inner.read(row0, nrows, col0, ncols), units=self.units, nodata=self.nodata)


__all__ = ["ArraySource", "DbSource", "GeoTiffSource", "TRANSFORM_TOL", "open_source"]
