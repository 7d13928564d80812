"""Downloads for the dashboard: a chip's or an event's prediction as GeoTIFF, its flood polygons, a table as CSV.

Each function returns the file's bytes (what a download button serves); nothing is written beside
the run. Inputs are the prediction GeoTIFFs of a run (``05_evaluate/predictions/<chip>_pred.tif``:
int8 class, 1 water, 0 dry, -1 nodata; or ``_prob.tif``), found with :func:`prediction_paths`.

* :func:`prediction_geotiff_bytes` — one chip's raster, or several chips (an event) mosaicked into
  one GeoTIFF with ``rasterio.merge.merge`` (first chip wins where chips overlap; gaps are nodata),
  DEFLATE-compressed, same CRS, pixel size, dtype and nodata as the inputs.
* :func:`polygons_bytes` — water polygons of that mosaic (:func:`floodnb.predict.extent_polygons`)
  with ``kind`` ("flood" | "permanent" when a permanent-water layer such as the chips' ``JRCWaterHand``
  is given, else "water"), ``area_m2`` / ``area_km2`` (geodesic) and ``perimeter_m``; as GeoJSON
  (EPSG:4326, RFC 7946) or GeoPackage (layer ``flood_extent``, the rasters' CRS).
* :func:`table_csv_bytes` — a DataFrame as UTF-8 CSV.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from floodnb.chip_ids import is_chip_id

POLYGON_FORMATS: tuple[str, ...] = ("geojson", "gpkg")
PREDICTION_KINDS: tuple[str, ...] = ("pred", "prob")


def prediction_paths(predictions_dir: str | Path, chip_ids: Iterable[str], *, kind: str = "pred") -> list[Path]:
    """``<predictions_dir>/<chip_id>_<kind>.tif`` for every chip id; FileNotFoundError naming those missing."""
    if kind not in PREDICTION_KINDS:
        raise ValueError(f"kind={kind!r}: expected one of {PREDICTION_KINDS}")
    folder = Path(predictions_dir)
    ids = [str(c) for c in chip_ids]
    bad = [c for c in ids if not is_chip_id(c)]
    if bad:
        raise ValueError(f"chip ids {bad[:5]} are not '<Event>_<id>' names")
    if not ids:
        raise ValueError("no chip id given")
    paths = [folder / f"{c}_{kind}.tif" for c in ids]
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"{folder}: no prediction for {len(missing)} chip(s): {', '.join(missing[:5])}"
                                f"{' ...' if len(missing) > 5 else ''} (only the evaluated chips have one)")
    return paths


def _as_paths(paths, what: str) -> list[Path]:
    items = [paths] if isinstance(paths, (str, Path)) else list(paths)
    if not items:
        raise ValueError(f"{what}: no raster given")
    out = [Path(p) for p in items]
    missing = [str(p) for p in out if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"{what}: raster(s) not found: {', '.join(missing[:5])}")
    return out


def _mosaic(paths: Sequence[Path], what: str, nodata: float | None = None) -> tuple[np.ndarray, dict]:
    """``(array (C, H, W), profile)`` of ``paths`` merged on the first raster's grid; ValueError for mixed CRS/dtype."""
    import rasterio
    from rasterio.merge import merge

    with rasterio.open(paths[0]) as first:
        profile = first.profile.copy()
    srcs = [rasterio.open(p) for p in paths]
    try:
        for p, s in zip(paths, srcs):
            if s.crs != profile["crs"] or s.dtypes[0] != profile["dtype"] or s.count != profile["count"]:
                raise ValueError(f"{what}: {p.name} has CRS {s.crs}, dtype {s.dtypes[0]}, {s.count} band(s); "
                                 f"{paths[0].name} has {profile['crs']}, {profile['dtype']}, {profile['count']}: "
                                 "only rasters of one CRS and dtype can be mosaicked")
        fill = nodata if nodata is not None else profile.get("nodata")
        arr, transform = merge(srcs, nodata=fill)
    finally:
        for s in srcs:
            s.close()
    profile.update(driver="GTiff", height=arr.shape[1], width=arr.shape[2], transform=transform, compress="deflate",
                   tiled=False)
    if fill is not None:
        profile["nodata"] = fill
    for key in ("blockxsize", "blockysize", "interleave"):
        profile.pop(key, None)
    return arr, profile


def _geotiff_bytes(arr: np.ndarray, profile: dict) -> bytes:
    from rasterio.io import MemoryFile

    with MemoryFile() as mem:
        with mem.open(**profile) as ds:
            ds.write(arr)
        return bytes(mem.read())


def prediction_geotiff_bytes(paths: str | Path | Sequence[str | Path]) -> bytes:
    """One GeoTIFF (bytes) of one chip's prediction raster or of several chips' mosaicked (module docstring)."""
    files = _as_paths(paths, "prediction GeoTIFF")
    arr, profile = _mosaic(files, "prediction GeoTIFF")
    return _geotiff_bytes(arr, profile)


def polygons_bytes(paths: str | Path | Sequence[str | Path], fmt: str = "geojson",
                   permanent: str | Path | Sequence[str | Path] | None = None, *, min_area_m2: float = 0.0) -> bytes:
    """Water polygons (bytes of a ``fmt`` file) of one class raster or the mosaic of several.

    ``paths``: class GeoTIFF(s) (1 water, 0 dry, -1 nodata). ``permanent``: permanent-water raster(s)
    in ``JRCWaterHand`` coding (one per chip, or one covering them; aligned or reprojected to the
    mosaic's grid), which split the polygons into kind "flood" / "permanent". ``fmt``: "geojson"
    (EPSG:4326) or "gpkg" (native CRS). An empty layer is a valid file with no feature.
    """
    import pyogrio

    from floodnb.predict.polygons import LAYER, extent_polygons

    fmt = fmt.lower()
    if fmt not in POLYGON_FORMATS:
        raise ValueError(f"fmt={fmt!r}: expected one of {POLYGON_FORMATS}")
    files = _as_paths(paths, "class GeoTIFF")
    arr, profile = _mosaic(files, "class GeoTIFF", nodata=-1)
    with tempfile.TemporaryDirectory(prefix="floodnb-export-") as tmp:
        cls = Path(tmp) / "class.tif"
        cls.write_bytes(_geotiff_bytes(arr, profile))
        perm = None
        if permanent is not None:
            parr, pprofile = _mosaic(_as_paths(permanent, "permanent-water raster"), "permanent-water raster",
                                     nodata=-1)
            perm = Path(tmp) / "permanent.tif"
            perm.write_bytes(_geotiff_bytes(parr, pprofile))
        gdf = extent_polygons(cls, min_area_m2=min_area_m2, permanent=perm)
        out = Path(tmp) / f"polygons.{fmt}"
        if fmt == "geojson":
            pyogrio.write_dataframe(gdf.to_crs(4326), out, driver="GeoJSON", geometry_type="Polygon")
        else:
            pyogrio.write_dataframe(gdf, out, layer=LAYER, driver="GPKG", geometry_type="Polygon")
        return out.read_bytes()


def table_csv_bytes(df: pd.DataFrame) -> bytes:
    """``df`` as UTF-8 CSV bytes (header, no index)."""
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"table_csv_bytes: expected a pandas DataFrame, got {type(df).__name__}")
    return df.to_csv(index=False).encode("utf-8")


__all__ = ["POLYGON_FORMATS", "polygons_bytes", "prediction_geotiff_bytes", "prediction_paths", "table_csv_bytes"]
