"""Display scaling for imagery: percentile stretch (Sentinel-2) and dB windowing (Sentinel-1).

Raw Sentinel-2 Level-1C reflectance (DN / 10000, mostly 0.02..0.3) looks almost black when shown
as is; the usual fix is a per-band linear stretch between low and high percentiles (2 and 98 %)
of the valid pixels. Sentinel-1 backscatter is shown in dB on a fixed window
(:data:`floodnb.bands.S1_DB_RANGE`, -30..5 dB) so chips stay comparable.

All functions are pure numpy, keep NaN (= nodata) as NaN and never modify their input.
"""

from __future__ import annotations

import numpy as np

from floodnb.bands import S1_BANDS, S1_DB_RANGE, S2_BANDS, S2_FALSE_COLOR, S2_RGB


def percentile_stretch(
    image: np.ndarray, *, low: float = 2.0, high: float = 98.0, per_band: bool = True
) -> np.ndarray:
    """Linear stretch of ``image`` to [0, 1] between its ``low`` and ``high`` percentiles.

    ``image``: ``(C, H, W)`` or ``(H, W)`` float array, NaN = nodata. Percentiles are taken over
    finite pixels, per band when ``per_band`` (``(C, H, W)`` input only), else over all bands
    together (keeps colour balance). Values are clipped to [0, 1]; NaN stays NaN. A band with no
    finite pixel stays all NaN; a constant band maps to 0. Returns float32 of the input's shape.
    """
    arr = np.asarray(image, dtype=np.float32)
    if arr.ndim not in (2, 3):
        raise ValueError(f"image must have shape (C, H, W) or (H, W), got {arr.shape}")
    if not (0.0 <= low < high <= 100.0):
        raise ValueError(f"need 0 <= low < high <= 100 for the percentiles, got low={low}, high={high}")
    if arr.ndim == 2 or not per_band:
        return _stretch(arr, low, high)
    return np.stack([_stretch(band, low, high) for band in arr])


def _stretch(arr: np.ndarray, low: float, high: float) -> np.ndarray:
    finite = np.isfinite(arr)
    out = np.full(arr.shape, np.nan, dtype=np.float32)
    if not finite.any():
        return out
    lo, hi = np.percentile(arr[finite], [low, high])
    scale = float(hi - lo)
    if scale <= 0:
        out[finite] = 0.0
        return out
    out[finite] = np.clip((arr[finite] - lo) / scale, 0.0, 1.0)
    return out


def s2_composite(
    s2: np.ndarray, *, bands: tuple[str, str, str] = S2_RGB, low: float = 2.0, high: float = 98.0
) -> np.ndarray:
    """Sentinel-2 composite ``(H, W, 3)`` float32 in [0, 1] ready for ``imshow``.

    ``s2``: ``(13, H, W)`` reflectance (DN / 10000), bands :data:`floodnb.bands.S2_BANDS`,
    NaN = nodata. ``bands`` = (red, green, blue) band names; per-band ``low``-``high`` percentile
    stretch. Pixels with NaN in any of the three bands are NaN in all three.
    """
    s2 = np.asarray(s2)
    if s2.ndim != 3 or s2.shape[0] != len(S2_BANDS):
        raise ValueError(f"s2 must have shape ({len(S2_BANDS)}, H, W) with bands {S2_BANDS}, got {s2.shape}")
    unknown = [b for b in bands if b not in S2_BANDS]
    if unknown or len(bands) != 3:
        raise ValueError(f"bands must be 3 names from {S2_BANDS}, got {bands!r}")
    rgb = percentile_stretch(s2[[S2_BANDS.index(b) for b in bands]], low=low, high=high)
    rgb[:, ~np.all(np.isfinite(rgb), axis=0)] = np.nan
    return np.moveaxis(rgb, 0, -1)


def s2_true_color(s2: np.ndarray, *, low: float = 2.0, high: float = 98.0) -> np.ndarray:
    """True colour (B4, B3, B2) ``(H, W, 3)`` in [0, 1]; see :func:`s2_composite`."""
    return s2_composite(s2, bands=S2_RGB, low=low, high=high)


def s2_false_color(s2: np.ndarray, *, low: float = 2.0, high: float = 98.0) -> np.ndarray:
    """False colour (B12, B8, B4) ``(H, W, 3)`` in [0, 1]: water dark blue/black, vegetation green."""
    return s2_composite(s2, bands=S2_FALSE_COLOR, low=low, high=high)


def s1_db_display(
    s1: np.ndarray, *, band: str = "VV", db_range: tuple[float, float] = S1_DB_RANGE
) -> np.ndarray:
    """One Sentinel-1 band in dB windowed to [0, 1] ``(H, W)`` float32 for a grey display.

    ``s1``: ``(2, H, W)`` backscatter in dB (bands VV, VH), NaN = nodata, or a single ``(H, W)``
    band. ``db_range`` = (black, white) in dB. NaN stays NaN.
    """
    arr = np.asarray(s1, dtype=np.float32)
    if arr.ndim == 3:
        if arr.shape[0] != len(S1_BANDS):
            raise ValueError(f"s1 must have shape (2, H, W) with bands {S1_BANDS}, got {arr.shape}")
        if band not in S1_BANDS:
            raise ValueError(f"band must be one of {S1_BANDS}, got {band!r}")
        arr = arr[S1_BANDS.index(band)]
    elif arr.ndim != 2:
        raise ValueError(f"s1 must have shape (2, H, W) or (H, W), got {arr.shape}")
    lo, hi = float(db_range[0]), float(db_range[1])
    if not hi > lo:
        raise ValueError(f"db_range must be (low, high) with high > low, got {db_range}")
    with np.errstate(invalid="ignore"):
        return np.clip((arr - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)


__all__ = ["percentile_stretch", "s1_db_display", "s2_composite", "s2_false_color", "s2_true_color"]
