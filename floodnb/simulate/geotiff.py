"""Atomic, deterministic GeoTIFF writing in the Sen1Floods11 conventions.

Conventions copied from the real files (inspected with rasterio): EPSG:4326, pixel
8.983152841195215e-05 deg (~10 m), band-interleaved, tags ``AREA_OR_POINT=Area`` and
``OVR_RESAMPLING_ALG=NEAREST``; S1 float32 with band descriptions VV, VH and nodata NaN; S2
int16 with descriptions B1..B12 (B8A) and nodata 0; label layers int16 without descriptions
and without a nodata tag (-1 is a value). GDAL writes no timestamp, so the same array gives the
same bytes. Each file is written atomically by :func:`floodnb.geotiff.write_geotiff`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from rasterio.transform import Affine

from floodnb.geotiff import write_geotiff as write_any

PIXEL_DEG: float = 8.983152841195215e-05
TAGS: dict[str, str] = {"OVR_RESAMPLING_ALG": "NEAREST"}


def chip_transform(lon_west: float, lat_north: float) -> Affine:
    """Affine transform of a chip whose upper-left corner is (lon_west, lat_north)."""
    return Affine(PIXEL_DEG, 0.0, float(lon_west), 0.0, -PIXEL_DEG, float(lat_north))


def write_geotiff(path: str | Path, data: np.ndarray, *, transform: Affine, nodata: float | int | None,
                  descriptions: tuple[str, ...] | None, compress: str) -> Path:
    """Write ``data`` ((C, H, W) or (H, W)) to ``path`` atomically; returns ``path``.

    ``compress``: "zstd" | "deflate" | "lzw" | "none" (level 1 and a predictor for speed;
    256 px tiles when the chip is at least 256 px).
    """
    arr = data[None] if data.ndim == 2 else data
    creation: dict = {"interleave": "band"}
    if compress != "none":
        creation["compress"] = compress
        creation["predictor"] = 3 if arr.dtype.kind == "f" else 2
        if compress == "zstd":
            creation["zstd_level"] = 1
        elif compress == "deflate":
            creation["zlevel"] = 1
    if arr.shape[1] >= 256 and arr.shape[2] >= 256:
        creation.update(tiled=True, blockxsize=256, blockysize=256)
    return write_any(path, arr, crs="EPSG:4326", transform=transform, nodata=nodata, descriptions=descriptions,
                     tags=TAGS, **creation)
