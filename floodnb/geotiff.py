"""One atomic GeoTIFF writer for whole arrays (chip maps, noise maps, pool chips, simulated chips).

:func:`write_geotiff` writes an ``(H, W)`` or ``(C, H, W)`` array in one go, under a temporary
name moved onto ``path`` only when complete (:func:`floodnb.io_utils.atomic_path`), with optional
band descriptions and dataset tags. Creation options (``compress``, ``tiled``, ``blockxsize``,
``predictor``, ``interleave`` ...) pass through to GDAL's GTiff driver unchanged, so a caller's
files keep their exact layout. Scenes larger than memory are streamed instead
(:class:`floodnb.predict.export.StripTiff`).

:func:`gdal_cache_env` is the one place GDAL's block cache is sized: rasterio reads an integer
``GDAL_CACHEMAX`` as **bytes** (``rasterio.Env(GDAL_CACHEMAX=128)`` is a 128-byte cache, which
made decimated reads ~60x slower), so callers give megabytes and it converts.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import rasterio
from rasterio.errors import NotGeoreferencedWarning

from floodnb.io_utils import atomic_path

__all__ = ["gdal_cache_env", "write_geotiff"]


def gdal_cache_env(cache_mb: int, **options) -> rasterio.Env:
    """A ``rasterio.Env`` with GDAL's raster block cache held to ``cache_mb`` megabytes (plus ``options``).

    ``cache_mb`` must be an integer >= 1 (ValueError naming ``gdal_cache_mb`` otherwise); it is
    passed to GDAL in bytes, the unit rasterio uses for an integer ``GDAL_CACHEMAX``.
    """
    if isinstance(cache_mb, bool) or not isinstance(cache_mb, int) or cache_mb < 1:
        raise ValueError(f"gdal_cache_mb must be an integer number of megabytes >= 1, got {cache_mb!r}")
    return rasterio.Env(GDAL_CACHEMAX=cache_mb * 1024 * 1024, **options)


def write_geotiff(path: str | Path, data: np.ndarray, *, crs=None, transform=None, nodata: float | int | None = None,
                  descriptions: Sequence[str] | None = None, tags: Mapping[str, str] | None = None,
                  **creation) -> Path:
    """Write ``data`` (``(H, W)`` = one band, or ``(C, H, W)``; its dtype is the file's) to ``path``.

    ``crs``/``transform``/``nodata``: omitted from the file when None (a file without a CRS or
    transform is written without rasterio's NotGeoreferencedWarning). ``descriptions``: one per
    band. ``tags``: dataset-level metadata. ``creation``: GTiff creation options. Returns ``Path(path)``;
    on error ``path`` is unchanged. Raises ValueError for a 1-D/4-D array or a wrong number of descriptions.
    """
    arr = np.asarray(data)
    arr = arr[None] if arr.ndim == 2 else arr
    if arr.ndim != 3:
        raise ValueError(f"{path}: expected an (H, W) or (C, H, W) array, got shape {np.shape(data)}")
    count, height, width = arr.shape
    if descriptions is not None and len(descriptions) != count:
        raise ValueError(f"{path}: {len(descriptions)} band descriptions for {count} band(s)")
    profile = dict(driver="GTiff", height=height, width=width, count=count, dtype=arr.dtype.name, **creation)
    for key, value in (("crs", crs), ("transform", transform), ("nodata", nodata)):
        if value is not None:
            profile[key] = value
    with atomic_path(path) as tmp, warnings.catch_warnings():
        if crs is None or transform is None:
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(tmp, "w", **profile) as ds:
            ds.write(arr)
            if tags:
                ds.update_tags(**tags)
            for i, d in enumerate(descriptions or (), start=1):
                ds.set_band_description(i, d)
    return Path(path)
