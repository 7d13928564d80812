"""Permanent water on a prediction's grid, and a scene's water / flood / permanent-water km².

A permanent-water raster is coded as Sen1Floods11's ``JRCWaterHand`` (from the JRC Global Surface
Water layer, Pekel et al., Nature 2016): 1 = permanent water, 0 = not, -1 or the file's nodata tag =
unknown. :func:`read_permanent` returns it on a target grid (CRS, transform, shape): read directly
when the grids are the same, otherwise reprojected with nearest-neighbour resampling
(``rasterio.warp.reproject``); pixels it does not cover are -1. A raster that does not overlap the
target, has no CRS, or holds other values (e.g. the GSW *occurrence* percentages: threshold them
into 0/1 first) is a ValueError naming the file and what was expected.

:func:`scene_areas` measures a class map (1 water, 0 dry, -1 nodata) strip by strip with the pixel
areas of :mod:`floodnb.area`; memory is one strip, whatever the scene's size.
"""

from __future__ import annotations

import contextlib
import math
from pathlib import Path

import numpy as np
from affine import Affine

from floodnb.area import AREA_COLUMNS, chip_areas, row_areas_km2

#: Rows measured per step by :func:`scene_areas`.
STRIP_ROWS: int = 1024
_EXPECTED = ("expected 1 = permanent water, 0 = not, -1/nodata = unknown (as Sen1Floods11 JRCWaterHand; threshold "
             "a JRC occurrence layer, e.g. occurrence >= 90 -> 1, first)")


def _aligned_window(src, crs, transform: Affine):
    """The source window whose pixels coincide with the target grid's (same CRS and pixel size, integer
    offset), or None when the target needs resampling.
    """
    from rasterio.windows import Window

    if src.crs != crs:
        return None
    s, t = src.transform, transform
    px = max(abs(t.a), abs(t.e))
    if any(abs(x - y) > 1e-6 * px for x, y in ((s.a, t.a), (s.b, t.b), (s.d, t.d), (s.e, t.e))) or s.b or s.d:
        return None
    col, row = ~s * (t.c, t.f)
    if abs(col - round(col)) > 1e-3 or abs(row - round(row)) > 1e-3:
        return None
    return Window(round(col), round(row), 0, 0)


def _check_overlap(src, path: Path, crs, transform: Affine, shape: tuple[int, int]) -> None:
    from rasterio.transform import array_bounds
    from rasterio.warp import transform_bounds

    if src.crs is None:
        raise ValueError(f"permanent-water raster {path} has no CRS; expected a georeferenced GeoTIFF")
    west, south, east, north = array_bounds(shape[0], shape[1], transform)
    w, s, e, n = transform_bounds(src.crs, crs, *src.bounds)
    if w >= east or e <= west or s >= north or n <= south:
        raise ValueError(f"permanent-water raster {path} (bounds {tuple(round(v, 6) for v in src.bounds)} in "
                         f"{src.crs}) does not overlap the prediction grid (bounds "
                         f"{tuple(round(v, 6) for v in (west, south, east, north))} in {crs})")


def _coded(raw: np.ndarray, bad: np.ndarray, path: Path) -> np.ndarray:
    """``raw`` values -> int8 {-1, 0, 1} with ``bad`` (nodata, NaN, outside) -> -1; other values: ValueError."""
    bad = bad | np.isnan(raw) if raw.dtype.kind == "f" else bad
    extra = np.setdiff1d(np.unique(raw[~bad]), [-1, 0, 1])
    if extra.size:
        raise ValueError(f"permanent-water raster {path} holds values {extra[:8].tolist()}; {_EXPECTED}")
    return np.where(bad, -1, raw).astype(np.int8)


def _read_on_grid(src, path: Path, crs, transform: Affine, shape: tuple[int, int]) -> np.ndarray:
    """``src`` band 1 on the target grid as int8 {-1, 0, 1}: a window read when the pixels coincide,
    else nearest-neighbour reprojection of the source pixels covering the target; outside: -1.
    """
    from rasterio.errors import WindowError
    from rasterio.transform import array_bounds
    from rasterio.warp import Resampling, reproject, transform_bounds
    from rasterio.windows import Window, from_bounds

    h, w = int(shape[0]), int(shape[1])
    win = _aligned_window(src, crs, transform)
    if win is not None:
        raw = src.read(1, window=Window(win.col_off, win.row_off, w, h), boundless=True, masked=True)
        return _coded(np.ma.getdata(raw), np.ma.getmaskarray(raw), path)
    west, south, east, north = array_bounds(h, w, transform)
    b = transform_bounds(crs, src.crs, west, south, east, north, densify_pts=21)
    full = Window(0, 0, src.width, src.height)
    try:
        f = from_bounds(*b, transform=src.transform)
        c0, r0 = math.floor(f.col_off) - 1, math.floor(f.row_off) - 1
        c1, r1 = math.ceil(f.col_off + f.width) + 1, math.ceil(f.row_off + f.height) + 1
        sw = Window(c0, r0, c1 - c0, r1 - r0).intersection(full)
    except WindowError:  # the target lies outside the source
        return np.full((h, w), -1, np.int8)
    raw = src.read(1, window=sw, masked=True)
    coded = _coded(np.ma.getdata(raw), np.ma.getmaskarray(raw), path).astype(np.int16)
    dst = np.full((h, w), -1, dtype=np.int16)
    reproject(coded, dst, src_transform=src.window_transform(sw), src_crs=src.crs, src_nodata=-1,
              dst_transform=transform, dst_crs=crs, dst_nodata=-1, resampling=Resampling.nearest)
    return dst.astype(np.int8)


def _open_permanent(path: str | Path, crs, transform: Affine, shape: tuple[int, int]):
    import rasterio

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"permanent-water raster {path} not found")
    src = rasterio.open(path)
    try:
        if src.count != 1:
            raise ValueError(f"permanent-water raster {path} has {src.count} bands; expected 1 ({_EXPECTED})")
        _check_overlap(src, path, crs, transform, shape)
    except BaseException:
        src.close()
        raise
    return src


def check_permanent(path: str | Path, *, crs, transform: Affine, shape: tuple[int, int]) -> None:
    """Fail early (FileNotFoundError / ValueError naming ``path``) when ``path`` cannot give permanent
    water on the grid: missing, not one band, no CRS, no overlap. Values are checked when read.
    """
    _open_permanent(path, crs, transform, shape).close()


def read_permanent(path: str | Path, *, crs, transform: Affine, shape: tuple[int, int]) -> np.ndarray:
    """Permanent water ``(H, W)`` int8 in {-1, 0, 1} on the grid ``crs``/``transform``/``shape``.

    Coinciding pixels: read as is; another grid: reprojected (nearest neighbour); uncovered pixels -1.
    FileNotFoundError / ValueError name ``path`` (module docstring).
    """
    with _open_permanent(path, crs, transform, shape) as src:
        return _read_on_grid(src, Path(path), crs, transform, shape)


def scene_areas(class_path: str | Path, *, permanent: str | Path | None = None, strip_rows: int = STRIP_ROWS,
                progress: bool = False) -> dict[str, float]:
    """:data:`floodnb.area.AREA_COLUMNS` (km²) of a class-map GeoTIFF (band 1: 1 water, 0 dry, -1 nodata),
    with flood/permanent areas when a ``permanent`` raster is given (:func:`read_permanent`).

    No reference: ``ref_*`` are NaN. Read ``strip_rows`` rows at a time (tqdm bar with ``progress``).
    """
    import rasterio
    from rasterio.windows import Window
    from tqdm.auto import tqdm

    class_path = Path(class_path)
    if not class_path.is_file():
        raise FileNotFoundError(f"class map {class_path} not found")
    nan = float("nan")
    total = {"water_km2": 0.0, "ref_water_km2": nan, "permanent_km2": nan if permanent is None else 0.0,
             "flood_km2": nan if permanent is None else 0.0, "ref_flood_km2": nan, "valid_km2": 0.0}
    with contextlib.ExitStack() as stack:
        ds = stack.enter_context(rasterio.open(class_path))
        src = None if permanent is None else stack.enter_context(
            _open_permanent(permanent, ds.crs, ds.transform, (ds.height, ds.width)))
        rows_km2 = row_areas_km2(ds.crs, ds.transform, ds.height)
        for r0 in tqdm(range(0, ds.height, strip_rows), desc="areas", unit="strip", disable=not progress,
                       leave=False):
            win = Window(0, r0, ds.width, min(strip_rows, ds.height - r0))
            perm = None if src is None else _read_on_grid(src, Path(str(permanent)), ds.crs,
                                                            ds.window_transform(win), (int(win.height), ds.width))
            part = chip_areas(ds.read(1, window=win), row_km2=rows_km2[r0:r0 + int(win.height)], permanent=perm)
            total = {k: total[k] + part[k] for k in AREA_COLUMNS}
    return total


__all__ = ["STRIP_ROWS", "check_permanent", "read_permanent", "scene_areas"]
