"""Water, flood and permanent-water areas in km² from class rasters: per pixel, per chip, per event.

Pixel area from a raster's CRS and affine transform:

* **projected CRS** (linear axis unit, e.g. metre): every pixel has the same area
  ``|det(transform)| * unit²`` (``unit`` = the axis unit in metres, 1 for metre);
* **geographic CRS** (e.g. Sen1Floods11's EPSG:4326, ~8.98e-5° pixels): a pixel is a cell between two
  parallels and two meridians; its area on the CRS's ellipsoid is exact in closed form through the
  authalic function ``q(φ)`` (Snyder 1987, *Map Projections — A Working Manual*, USGS PP 1395,
  eq. 3-12): ``A = a² / 2 · |Δλ| · |q(φ₂) - q(φ₁)|`` with
  ``q(φ) = (1 - e²) [sin φ / (1 - e² sin² φ) - 1 / (2e) · ln((1 - e sin φ) / (1 + e sin φ))]``.
  The cells of one row share their area, so it is computed once per row, vectorised over rows
  (tests check it against ``pyproj.Geod.polygon_area_perimeter`` row by row).

Chip areas (:func:`chip_areas`) use floodnb's class coding (:mod:`floodnb.bands`: 1 water, 0 dry,
-1 nodata) for the prediction, the reference (hand label or simulator truth) and the permanent-water
layer (Sen1Floods11 ``JRCWaterHand``, role ``jrc``: 1 = permanent water in the JRC Global Surface
Water layer, 0 = not; the simulator writes the same coding). Columns (:data:`AREA_COLUMNS`):

* ``valid_km2`` — pixels where the prediction exists and, when a reference is given, the reference
  too (the pixels the water IoU is scored on), so predicted and reference areas compare like for like;
* ``water_km2`` / ``ref_water_km2`` — predicted / reference water within ``valid``;
* ``permanent_km2`` — permanent water (JRC = 1) within ``valid``;
* ``flood_km2`` / ``ref_flood_km2`` — predicted / reference water AND NOT permanent water within
  ``valid`` (JRC nodata counts as not permanent).

Quantities that need a missing layer are NaN (no reference: ``ref_*``; no permanent-water layer:
``permanent_km2``, ``flood_km2``, ``ref_flood_km2``). :func:`event_areas` sums chips per event.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from affine import Affine

from floodnb.bands import WATER

AREA_COLUMNS: tuple[str, ...] = ("water_km2", "ref_water_km2", "permanent_km2", "flood_km2", "ref_flood_km2",
                                 "valid_km2")
#: Definitions, as recorded beside the numbers (stage records, summaries).
AREA_DEFINITIONS: dict[str, str] = {
    "valid_km2": "area where the prediction (and the reference, when given) has data",
    "water_km2": "predicted water within valid_km2",
    "ref_water_km2": "reference water within valid_km2",
    "permanent_km2": "JRC permanent water within valid_km2",
    "flood_km2": "predicted water AND NOT JRC permanent water within valid_km2",
    "ref_flood_km2": "reference water AND NOT JRC permanent water within valid_km2",
}


def _pyproj_crs(crs):
    import pyproj

    if crs is None:
        raise ValueError("raster has no CRS: pixel areas cannot be computed (expected e.g. EPSG:4326 or a "
                         "projected CRS in metres)")
    if isinstance(crs, pyproj.CRS):
        return crs
    return pyproj.CRS.from_user_input(crs.to_wkt() if hasattr(crs, "to_wkt") else crs)


def _authalic_q(phi: np.ndarray, e2: float) -> np.ndarray:
    """Snyder (1987) eq. 3-12 ``q(φ)`` for latitudes ``phi`` (radians) on an ellipsoid of eccentricity² ``e2``."""
    s = np.sin(phi)
    if e2 == 0.0:
        return 2.0 * s
    e = np.sqrt(e2)
    return (1.0 - e2) * (s / (1.0 - e2 * s * s) - np.log((1.0 - e * s) / (1.0 + e * s)) / (2.0 * e))


def row_areas_km2(crs, transform: Affine, height: int) -> np.ndarray:
    """Area in km² of one pixel of each row of a raster: ``(height,)`` float64.

    ``crs``: rasterio/pyproj CRS or anything pyproj accepts; ``transform``: the raster's affine
    transform (pixel corners). Projected CRS: ``|det(transform)|`` times the squared axis unit
    (ValueError for a non-linear unit). Geographic CRS: exact ellipsoidal cell area (module
    docstring); a rotated or sheared geographic transform is a ValueError.
    """
    crs = _pyproj_crs(crs)
    if height < 0:
        raise ValueError(f"height must be >= 0, got {height}")
    if crs.is_geographic:
        if transform.b != 0 or transform.d != 0:
            raise ValueError(f"geographic raster with a rotated transform {tuple(transform)[:6]}: pixel areas need "
                             "north-up pixels")
        geod = crs.get_geod()
        if geod is None:
            raise ValueError(f"CRS {crs.name!r} has no ellipsoid: pixel areas cannot be computed")
        edges = np.radians(transform.f + transform.e * np.arange(height + 1, dtype=np.float64))
        if np.any(np.abs(edges) > np.pi / 2 + 1e-12):
            raise ValueError(f"raster rows reach latitudes beyond ±90° (transform {tuple(transform)[:6]})")
        q = _authalic_q(np.clip(edges, -np.pi / 2, np.pi / 2), float(geod.es))
        dlon = abs(np.radians(transform.a))
        return geod.a ** 2 / 2.0 * dlon * np.abs(np.diff(q)) / 1e6
    unit = crs.axis_info[0] if crs.axis_info else None
    factor = getattr(unit, "unit_conversion_factor", None)
    if unit is None or factor is None or unit.unit_name in ("degree", "radian", "unknown"):
        raise ValueError(f"CRS {crs.name!r}: axis unit {getattr(unit, 'unit_name', None)!r} is not a length; "
                         "expected metres (or another linear unit)")
    px = abs(transform.a * transform.e - transform.b * transform.d) * float(factor) ** 2 / 1e6
    return np.full(height, px, dtype=np.float64)


def pixel_area_km2(crs, transform: Affine, shape: tuple[int, int]) -> np.ndarray:
    """Area of every pixel in km², ``shape`` ``(H, W)`` (a read-only broadcast view of :func:`row_areas_km2`)."""
    h, w = int(shape[0]), int(shape[1])
    return np.broadcast_to(row_areas_km2(crs, transform, h)[:, None], (h, w))


def mask_area_km2(mask: np.ndarray, row_km2: np.ndarray) -> float:
    """Area in km² of the True pixels of ``mask (H, W)`` given per-row pixel areas ``row_km2 (H,)``."""
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 2 or mask.shape[0] != len(row_km2):
        raise ValueError(f"mask shape {mask.shape} does not match {len(row_km2)} row areas")
    return float(np.dot(mask.sum(axis=1, dtype=np.int64), row_km2))


def _class_array(name: str, arr, shape: tuple[int, ...] | None) -> np.ndarray:
    a = np.asarray(arr)
    if a.ndim != 2:
        raise ValueError(f"{name}: expected an (H, W) class array (1 water, 0 dry, -1 nodata), got shape {a.shape}")
    if shape is not None and a.shape != shape:
        raise ValueError(f"{name}: shape {a.shape} differs from the prediction's {shape}")
    return a


def chip_areas(pred, *, row_km2: np.ndarray, ref=None, permanent=None) -> dict[str, float]:
    """Areas (:data:`AREA_COLUMNS`, km²) of one chip or scene.

    ``pred``, ``ref``, ``permanent``: ``(H, W)`` integer arrays in floodnb's class coding (1 water,
    0 dry, -1 nodata; the torch ignore index and any other value but 1 and 0 count as nodata in
    ``pred``/``ref``); ``ref`` and ``permanent`` optional. ``row_km2``: ``(H,)`` per-row pixel areas
    (:func:`row_areas_km2`). Definitions in the module docstring; NaN for what a missing layer hides.
    """
    pred = _class_array("pred", pred, None)
    valid = (pred == WATER) | (pred == 0)
    water = pred == WATER
    refw = None
    if ref is not None:
        ref = _class_array("ref", ref, pred.shape)
        valid &= (ref == WATER) | (ref == 0)
        refw = ref == WATER
    perm = None if permanent is None else _class_array("permanent", permanent, pred.shape) == WATER
    area = lambda m: mask_area_km2(m & valid, row_km2)  # noqa: E731
    nan = float("nan")
    return {
        "water_km2": area(water),
        "ref_water_km2": nan if refw is None else area(refw),
        "permanent_km2": nan if perm is None else area(perm),
        "flood_km2": nan if perm is None else area(water & ~perm),
        "ref_flood_km2": nan if perm is None or refw is None else area(refw & ~perm),
        "valid_km2": area(np.ones_like(valid)),
    }


def raster_grid(path: str | Path) -> tuple[object, Affine, tuple[int, int]]:
    """``(crs, transform, (H, W))`` of a GeoTIFF (header only); FileNotFoundError naming the file."""
    import rasterio

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"raster {p} not found")
    with rasterio.open(p) as ds:
        return ds.crs, ds.transform, (ds.height, ds.width)


def _row_value(row: Mapping, key: str) -> str | None:
    v = row.get(key)
    return None if v is None or (isinstance(v, float) and np.isnan(v)) or str(v) == "" else str(v)


def catalog_chip_areas(row: Mapping, pred, ref=None) -> dict[str, float]:
    """:func:`chip_areas` of one catalog chip: the grid comes from its ``s1_path`` (else ``s2_path``) file,
    the permanent water from its ``jrc_path`` (``JRCWaterHand``) when the catalog has one.

    ``row``: a catalog row (mapping or ``pd.Series``) with ``<role>_path`` entries; ``pred``/``ref``
    ``(H, W)`` on the chip's grid. ValueError when the prediction's shape differs from the grid's.
    """
    from floodnb.data.io import read_arrays

    row = row.to_dict() if isinstance(row, pd.Series) else dict(row)
    grid_path = _row_value(row, "s1_path") or _row_value(row, "s2_path")
    jrc_path = _row_value(row, "jrc_path")
    if grid_path is None and jrc_path is None:
        raise ValueError(f"chip {row.get('chip_id')}: no s1_path, s2_path or jrc_path to take the grid from")
    permanent = None
    if jrc_path is not None:
        arrays, grid = read_arrays({"jrc": jrc_path, "chip_id": row.get("chip_id")}, roles=("jrc",))
        permanent, (crs, transform, shape) = arrays["jrc"], (grid.crs, grid.transform, grid.shape)
    else:
        crs, transform, shape = raster_grid(str(grid_path))
    if np.shape(pred) != tuple(shape):
        raise ValueError(f"chip {row.get('chip_id')}: prediction shape {np.shape(pred)} differs from the chip grid "
                         f"{tuple(shape)}")
    return chip_areas(pred, row_km2=row_areas_km2(crs, transform, shape[0]), ref=ref, permanent=permanent)


def event_areas(table: pd.DataFrame, by: Sequence[str] = ("event",)) -> pd.DataFrame:
    """Per-event (or per ``by`` group) sums of the :data:`AREA_COLUMNS` of a per-chip table, plus ``chips``.

    A group's sum is NaN when every chip of it is NaN (e.g. no permanent-water layer anywhere),
    otherwise the sum over the chips that have the value.
    """
    by = list(by)
    need = [*by, *AREA_COLUMNS]
    missing = [c for c in need if c not in table.columns]
    if missing:
        raise ValueError(f"per-chip table lacks columns {missing}; expected {need}")
    grouped = table.groupby(by, sort=True)
    out = grouped[list(AREA_COLUMNS)].sum(min_count=1)
    out.insert(0, "chips", grouped.size())
    return out.reset_index()


__all__ = ["AREA_COLUMNS", "AREA_DEFINITIONS", "catalog_chip_areas", "chip_areas", "event_areas",
           "mask_area_km2", "pixel_area_km2", "raster_grid", "row_areas_km2"]
