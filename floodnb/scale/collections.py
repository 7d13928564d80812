"""STAC collections -> Sen1Floods11 bands: asset names, units, and the conversions between them.

Sen1Floods11 (Bonafilia et al., CVPR Workshops 2020) stores Sentinel-1 as ``(VV, VH)`` backscatter
in dB (float32, NaN = nodata) and Sentinel-2 as the 13 Level-1C bands B1..B12 with B8A,
reflectance x 10000 (int16, 0 = nodata). Public STAC collections name and scale these
differently:

* Sentinel-1: Microsoft Planetary Computer ``sentinel-1-rtc`` holds terrain-corrected gamma0 as
  *linear power* (assets ``vv``/``vh``, float32, nodata -32768); converted with ``10 log10``.
  Amplitude products convert with ``20 log10``; collections already in dB pass through.
* Sentinel-2: Planetary Computer names assets ``B01``..``B12``/``B8A`` (digital numbers; from
  processing baseline 04.00 on, L2A carries a +1000 DN offset, ``BOA_ADD_OFFSET``), Element84
  earth-search v1 names them ``coastal``, ``blue``, ..., ``swir22`` with ``raster:bands``
  scale/offset. Level-2A has no B10 (cirrus): :func:`resolve_assets` reports it as an absent
  band, and the pool writes it as 0 (nodata) and records that.

Asset keys are resolved per item from :data:`ASSET_CANDIDATES` (first key present wins), so the
same code reads either provider and both processing levels.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from floodnb.bands import S1_BANDS, S2_BANDS, S2_SCALE

#: Public STAC APIs (used only as defaults outside tests).
PLANETARY_COMPUTER_URL = "https://planetarycomputer.microsoft.com/api/stac/v1"
EARTH_SEARCH_URL = "https://earth-search.aws.element84.com/v1"
DEFAULT_STAC_URL = PLANETARY_COMPUTER_URL
DEFAULT_S1_COLLECTION = "sentinel-1-rtc"
DEFAULT_S2_COLLECTION = "sentinel-2-l2a"
#: ~10 m at the equator in degrees, the Sen1Floods11 pixel size.
DEFAULT_RESOLUTION_DEG = 8.983152841195215e-05

#: Sen1Floods11 band -> candidate asset keys (Planetary Computer, Element84 earth-search, plain).
ASSET_CANDIDATES: dict[str, tuple[str, ...]] = {
    "VV": ("vv", "VV"), "VH": ("vh", "VH"),
    "B1": ("B01", "coastal", "B1"), "B2": ("B02", "blue", "B2"), "B3": ("B03", "green", "B3"),
    "B4": ("B04", "red", "B4"), "B5": ("B05", "rededge1", "B5"), "B6": ("B06", "rededge2", "B6"),
    "B7": ("B07", "rededge3", "B7"), "B8": ("B08", "nir", "B8"), "B8A": ("B8A", "nir08", "B08A"),
    "B9": ("B09", "nir09", "B9"), "B10": ("B10", "cirrus"), "B11": ("B11", "swir16"),
    "B12": ("B12", "swir22"),
}
#: Bands a collection may lack by design (Level-2A drops the B10 cirrus band).
OPTIONAL_BANDS: frozenset[str] = frozenset({"B10"})
S1_UNITS: tuple[str, ...] = ("db", "linear", "amplitude")
#: Collection id fragments whose Sentinel-1 values are linear power (gamma0/sigma0 RTC).
_LINEAR_POWER_IDS: tuple[str, ...] = ("sentinel-1-rtc", "opera-rtc", "s1-rtc")
#: Planetary Computer L2A: DN offset added from processing baseline 04.00 (25 January 2022).
BOA_ADD_OFFSET_DN = 1000.0


def sensor_bands(sensor: str) -> tuple[str, ...]:
    """Sen1Floods11 band names of ``sensor`` ("s1" or "s2")."""
    if sensor == "s1":
        return S1_BANDS
    if sensor == "s2":
        return S2_BANDS
    raise ValueError(f"sensor must be 's1' or 's2', got {sensor!r}")


def resolve_assets(item, sensor: str, *, overrides: Mapping[str, str] | None = None
                   ) -> tuple[dict[str, str], list[str], list[str]]:
    """Map Sen1Floods11 bands of ``sensor`` to the asset keys of one STAC item.

    ``overrides``: band -> asset key given by the user (checked like the candidates).
    Returns ``(band -> asset key, absent optional bands, missing required bands)``. An asset
    without an ``href`` counts as missing.
    """
    keys: dict[str, str] = {}
    absent: list[str] = []
    missing: list[str] = []
    assets = item.assets
    for band in sensor_bands(sensor):
        cands = (overrides[band],) if overrides and band in overrides else ASSET_CANDIDATES[band]
        key = next((k for k in cands if k in assets and assets[k].href), None)
        if key is not None:
            keys[band] = key
        elif band in OPTIONAL_BANDS:
            absent.append(band)
        else:
            missing.append(band)
    return keys, absent, missing


def s1_units_of(collection: str, units: str) -> str:
    """Units of a Sentinel-1 collection: ``units`` when not "auto", else from the collection id.

    Raises ValueError naming the collection when "auto" cannot tell (pass ``s1_units=``).
    """
    if units != "auto":
        if units not in S1_UNITS:
            raise ValueError(f"s1_units must be 'auto' or one of {S1_UNITS}, got {units!r}")
        return units
    if any(frag in collection.lower() for frag in _LINEAR_POWER_IDS):
        return "linear"
    if collection.lower().endswith(("-db", "_db")):
        return "db"
    raise ValueError(f"Sentinel-1 collection {collection!r}: cannot tell whether its values are dB, linear power "
                     f"or amplitude; pass s1_units= one of {S1_UNITS} (uncalibrated GRD digital numbers are not "
                     "backscatter and cannot be used)")


def s1_to_db(values: np.ndarray, *, units: str, nodata: float | None) -> np.ndarray:
    """Sentinel-1 values ``(..., H, W)`` in ``units`` -> float32 dB with NaN = nodata.

    linear power: ``10 log10(x)``; amplitude: ``20 log10(x)``; dB: unchanged. Non-finite values,
    ``nodata`` and (for linear/amplitude) values <= 0 become NaN.
    """
    x = np.asarray(values, dtype=np.float32).copy()
    bad = ~np.isfinite(x)
    if nodata is not None and not math.isnan(nodata):
        bad |= x == np.float32(nodata)
    if units in ("linear", "amplitude"):
        bad |= x <= 0
        x[bad] = 1.0
        with np.errstate(divide="ignore", invalid="ignore"):
            x = (10.0 if units == "linear" else 20.0) * np.log10(x)
    elif units != "db":
        raise ValueError(f"units must be one of {S1_UNITS}, got {units!r}")
    x[bad] = np.nan
    return x.astype(np.float32, copy=False)


def s2_dn_transform(item, keys: Mapping[str, str], *, collection: str) -> dict[str, tuple[float, float]]:
    """Per band ``(scale, offset)`` turning stored values into reflectance x 10000 (L1C-like DN).

    From the asset's ``raster:bands`` scale/offset when present (reflectance = DN * scale +
    offset); otherwise DN are reflectance x 10000, less :data:`BOA_ADD_OFFSET_DN` for Level-2A
    items of processing baseline >= 04.00 (Planetary Computer's unharmonised L2A).
    """
    baseline = item.properties.get("s2:processing_baseline")
    l2a = "l2a" in collection.lower() or str(item.properties.get("s2:product_type", "")).upper().endswith("2A")
    shifted = l2a and baseline is not None and _baseline_ge(str(baseline), (4, 0))
    out: dict[str, tuple[float, float]] = {}
    for band, key in keys.items():
        rb = item.assets[key].extra_fields.get("raster:bands")
        info = rb[0] if isinstance(rb, Sequence) and rb and isinstance(rb[0], Mapping) else {}
        if "scale" in info or "offset" in info:
            scale = float(info["scale"]) if "scale" in info else 1.0
            offset = float(info["offset"]) if "offset" in info else 0.0
            out[band] = (scale * S2_SCALE, offset * S2_SCALE)
        else:
            out[band] = (1.0, -BOA_ADD_OFFSET_DN if shifted else 0.0)
    return out


def _baseline_ge(text: str, ref: tuple[int, int]) -> bool:
    try:
        major, minor = (int(p) for p in text.split(".")[:2])
    except ValueError:
        return False
    return (major, minor) >= ref


def s2_to_l1c_dn(values: np.ndarray, *, scale: float, offset: float, nodata: float | None) -> np.ndarray:
    """One Sentinel-2 band ``(H, W)`` -> int16 reflectance x 10000 with 0 = nodata.

    ``out = round(values * scale + offset)``; source nodata / non-finite become 0, valid pixels
    are clipped to ``[1, 32767]`` so that no valid pixel reads as nodata.
    """
    x = np.asarray(values, dtype=np.float64)
    bad = ~np.isfinite(x)
    if nodata is not None and not math.isnan(nodata):
        bad |= x == nodata
    y = np.rint(np.where(bad, 0.0, x) * scale + offset)
    y = np.clip(y, 1, 32767)
    y[bad] = 0
    return y.astype(np.int16)
