"""Weak water labels computed from imagery alone, the way Sen1Floods11 made them.

Bonafilia et al. (2020), *Sen1Floods11: a georeferenced dataset to train and test deep learning
flood algorithms for Sentinel-1*, CVPR Workshops, pp. 210-211, give the weakly labelled chips two
automatic labels:

* **S1 weak label** (``S1OtsuLabel*``): water where Sentinel-1 VH backscatter (dB) is below a
  threshold found with Otsu's method (Otsu 1979, *IEEE Trans. SMC* 9(1)) on the VH histogram.
  The per-event threshold is recorded in ``Sen1Floods11_Metadata.geojson`` (``VH_thresh``);
  Otsu can also be applied per chip (:func:`otsu_label` without ``threshold``).
* **S2 weak label** (``S2IndexLabelWeak``): a threshold on Sentinel-2 water/vegetation indices
  (the paper uses NDVI and MNDWI) over cloud-masked Level-1C imagery.

Every function is pure numpy on arrays with documented shapes; label outputs are int16
``(H, W)`` in {-1 = no data/cloud, 0 = dry, 1 = water} (:mod:`floodnb.bands`).
Sentinel-2 input is **reflectance** (digital number / 10000, NaN = nodata), bands in
:data:`floodnb.bands.S2_BANDS` order.
"""

from __future__ import annotations

import numpy as np

from floodnb.bands import DRY, LABEL_NODATA, S2_BANDS, WATER

_B = {name: i for i, name in enumerate(S2_BANDS)}
INDICES: tuple[str, ...] = ("mndwi", "ndwi")


def otsu_threshold(values: np.ndarray, *, nbins: int = 256) -> float:
    """Otsu (1979) threshold of ``values`` (any shape; NaN/inf ignored), in their unit.

    Builds a ``nbins`` histogram over [min, max] of the finite values and returns the bin
    centre maximising the between-class variance (the same construction as
    ``skimage.filters.threshold_otsu``). Pixels strictly below the threshold form the low class.
    Raises ValueError when there is no finite value; returns that value when all are equal.
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    v = v[np.isfinite(v)]
    if v.size == 0:
        raise ValueError("otsu_threshold: no finite value to threshold (all NaN or empty input)")
    lo, hi = float(v.min()), float(v.max())
    if lo == hi:
        return lo
    hist, edges = np.histogram(v, bins=nbins, range=(lo, hi))
    centres = (edges[:-1] + edges[1:]) / 2.0
    hist = hist.astype(np.float64)
    w0 = np.cumsum(hist)
    w1 = np.cumsum(hist[::-1])[::-1]
    m0 = np.cumsum(hist * centres) / np.maximum(w0, 1e-12)
    m1 = (np.cumsum((hist * centres)[::-1]) / np.maximum(w1[::-1], 1e-12))[::-1]
    between = w0[:-1] * w1[1:] * (m0[:-1] - m1[1:]) ** 2
    return float(centres[:-1][int(np.argmax(between))])


def otsu_label(s1: np.ndarray, *, threshold: float | None = None) -> np.ndarray:
    """S1 weak label: water where VH (dB) < ``threshold`` (Bonafilia et al. 2020).

    ``s1``: ``(2, H, W)`` backscatter in dB, bands (VV, VH), NaN = nodata. ``threshold``: VH
    threshold in dB (e.g. the event's ``VH_thresh``); None computes :func:`otsu_threshold` on
    this chip's finite VH values. Returns int16 ``(H, W)``: 1 water, 0 dry, -1 where VH is not
    finite (or everywhere when the chip has no finite VH and no threshold was given).
    """
    s1 = np.asarray(s1)
    if s1.ndim != 3 or s1.shape[0] != 2:
        raise ValueError(f"otsu_label: s1 must be (2, H, W) dB with bands (VV, VH), got shape {s1.shape}")
    vh = s1[1]
    finite = np.isfinite(vh)
    out = np.full(vh.shape, LABEL_NODATA, dtype=np.int16)
    if threshold is None:
        if not finite.any():
            return out
        threshold = otsu_threshold(vh[finite])
    elif not np.isfinite(threshold):
        raise ValueError(f"otsu_label: threshold must be a finite dB value, got {threshold!r}")
    out[finite] = np.where(vh[finite] < threshold, WATER, DRY).astype(np.int16)
    return out


def _check_s2(s2: np.ndarray, name: str) -> np.ndarray:
    """Validate shape; reject digital numbers (a cheap test on B3). Returns the array unconverted:
    callers convert only the bands they use (``_band``).
    """
    if not hasattr(s2, "shape") or not hasattr(s2, "ndim"):
        s2 = np.asarray(s2, dtype=np.float32)
    if s2.ndim != 3 or s2.shape[0] != len(S2_BANDS):
        raise ValueError(f"{name}: s2 must be ({len(S2_BANDS)}, H, W) reflectance in band order {S2_BANDS}, "
                         f"got shape {s2.shape}")
    green = np.asarray(s2[_B["B3"]], dtype=np.float32)
    if green.size and np.isfinite(green).any() and float(np.nanmax(green)) > 100.0:
        raise ValueError(f"{name}: s2 looks like digital numbers (max B3 {float(np.nanmax(green)):.0f}); "
                         "pass reflectance = DN / floodnb.bands.S2_SCALE with NaN for nodata")
    return s2


def _band(s2: np.ndarray, name: str) -> np.ndarray:
    return np.asarray(s2[_B[name]], dtype=np.float32)


def _normalized_difference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        d = (a - b) / (a + b)
    d[~np.isfinite(d)] = np.nan
    return d.astype(np.float32)


def ndwi(s2: np.ndarray) -> np.ndarray:
    """NDWI = (B3 - B8) / (B3 + B8) (McFeeters 1996, green vs NIR). ``s2`` (13, H, W) reflectance.

    Returns float32 ``(H, W)``; NaN where an input is NaN or the denominator is 0.
    """
    s2 = _check_s2(s2, "ndwi")
    return _normalized_difference(_band(s2, "B3"), _band(s2, "B8"))


def mndwi(s2: np.ndarray) -> np.ndarray:
    """MNDWI = (B3 - B11) / (B3 + B11) (Xu 2006, green vs SWIR1). ``s2`` (13, H, W) reflectance.

    Returns float32 ``(H, W)``; NaN where an input is NaN or the denominator is 0.
    """
    s2 = _check_s2(s2, "mndwi")
    return _normalized_difference(_band(s2, "B3"), _band(s2, "B11"))


def ndvi(s2: np.ndarray) -> np.ndarray:
    """NDVI = (B8 - B4) / (B8 + B4) (Rouse et al. 1974). ``s2`` (13, H, W) reflectance -> (H, W)."""
    s2 = _check_s2(s2, "ndvi")
    return _normalized_difference(_band(s2, "B8"), _band(s2, "B4"))


def s2_cloud_mask(s2: np.ndarray, *, blue_threshold: float = 0.2, cirrus_threshold: float = 0.012) -> np.ndarray:
    """Simple Sentinel-2 L1C cloud test: bright blue (B2) or bright cirrus band (B10).

    Thick clouds are bright and flat in the visible (B2 TOA reflectance > ``blue_threshold``;
    clear land and water are darker than ~0.16 at TOA); thin cirrus shows in the 1375 nm water
    vapour absorption band B10 (> ``cirrus_threshold``), which is dark over clear surfaces.
    These are the first two tests of the ESA L1C/L2A scene classification (Sen2Cor ATBD); the
    threshold test misses thin cloud edges, as simple masks do. ``s2`` (13, H, W) reflectance.
    Returns bool ``(H, W)``: True = cloud. NaN pixels are not cloud (they are nodata).
    """
    s2 = _check_s2(s2, "s2_cloud_mask")
    with np.errstate(invalid="ignore"):
        return (_band(s2, "B2") > blue_threshold) | (_band(s2, "B10") > cirrus_threshold)


def s2_index_label(
    s2: np.ndarray,
    *,
    index: str = "mndwi",
    threshold: float = 0.1,
    ndvi_max: float | None = 0.3,
    cloud_mask: bool = True,
) -> np.ndarray:
    """S2 weak label: water where a water index exceeds ``threshold`` (Bonafilia et al. 2020).

    ``s2``: (13, H, W) Level-1C reflectance (DN / 10000), NaN = nodata. ``index``: "mndwi"
    (Xu 2006, default, robust over built-up land) or "ndwi" (McFeeters 1996). ``ndvi_max``:
    additionally require NDVI below this (vegetation is never open water; None disables) —
    Sen1Floods11 combined NDVI and MNDWI this way. ``cloud_mask``: pixels flagged by
    :func:`s2_cloud_mask` become -1. Returns int16 ``(H, W)`` in {-1, 0, 1}; -1 also where any
    band used is NaN.
    """
    if index not in INDICES:
        raise ValueError(f"s2_index_label: index must be one of {INDICES}, got {index!r}")
    s2 = _check_s2(s2, "s2_index_label")
    idx = mndwi(s2) if index == "mndwi" else ndwi(s2)
    valid = np.isfinite(idx)
    water = np.zeros(idx.shape, dtype=bool)
    with np.errstate(invalid="ignore"):
        water[valid] = idx[valid] > threshold
        if ndvi_max is not None:
            v = ndvi(s2)
            valid &= np.isfinite(v)
            water &= ~(v >= ndvi_max)
    out = np.where(water, WATER, DRY).astype(np.int16)
    if cloud_mask:
        valid &= ~s2_cloud_mask(s2)
    out[~valid] = LABEL_NODATA
    return out
