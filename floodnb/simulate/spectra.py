"""Sentinel-2 Level-1C top-of-atmosphere reflectance (13 bands) of one chip, with clouds and shadows.

Physical assumptions and sources:

* **Class spectra** (:data:`SPECTRA`): TOA reflectance per band for each surface, from typical
  library shapes (USGS spectral library; clear water absorbs in NIR/SWIR, turbid flood water is
  brighter in the visible; green vegetation has the red edge and a high NIR plateau; soils and
  sand rise smoothly to the SWIR; towns are flat and moderately bright) plus a Rayleigh/aerosol
  path term that lifts the blue bands (L1C is not atmospherically corrected). B9 (945 nm water
  vapour) and B10 (1375 nm cirrus) are strongly absorbed: dark over clear surfaces. Checked
  against class means of the real Sen1Floods11 S2Hand chips (:mod:`floodnb.simulate.report`).
* **Flooded vegetation** mixes canopy and water (NDVI still ~0.4, MNDWI ~0: optical indices
  miss it, as they do in reality); **flooded towns** mix water and roofs.
* **Within-class variability**: crop parcels differ in vigour (mixing towards bare soil by the
  event's crop vigour), flood water in turbidity, land in brightness (smooth fractal field).
* **Haze**: a per-chip aerosol term scaled by a random optical thickness.
* **Clouds**: a fractal cloud field thresholded at the chip's cloud cover; opacity ramps over
  the cloud edges (thin cloud), cloud spectrum is bright and flat with a cirrus signal in B10.
* **Cloud shadows**: the opacity field shifted along the sun direction by cloud height x
  tan(solar zenith); shadows remove direct sunlight but keep blue-rich diffuse skylight, so
  they darken the SWIR more than the blue (which raises water indices: a classic false water).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from floodnb.simulate.landcover import (
    BARE,
    CROP,
    FLOOD,
    FLOODED_URBAN,
    FLOODED_VEG,
    FOREST,
    N_SURFACES,
    PERM,  # noqa: F401
    SAND,
    URBAN,
    LandCover,
)
from floodnb.simulate.terrain import fractal_fields

#: surface -> TOA reflectance in band order B1..B12 with B8A (floodnb.bands.S2_BANDS).
SPECTRA: dict[int, tuple[float, ...]] = {
    PERM: (0.120, 0.095, 0.080, 0.060, 0.050, 0.035, 0.032, 0.028, 0.025, 0.008, 0.0008, 0.012, 0.008),
    FLOOD: (0.130, 0.110, 0.110, 0.100, 0.090, 0.060, 0.055, 0.050, 0.045, 0.014, 0.0009, 0.030, 0.020),
    CROP: (0.130, 0.105, 0.100, 0.080, 0.130, 0.250, 0.300, 0.310, 0.330, 0.060, 0.0012, 0.200, 0.110),
    FOREST: (0.120, 0.090, 0.080, 0.060, 0.100, 0.220, 0.270, 0.280, 0.300, 0.050, 0.0010, 0.150, 0.070),
    BARE: (0.150, 0.130, 0.140, 0.160, 0.190, 0.220, 0.240, 0.250, 0.270, 0.050, 0.0012, 0.320, 0.250),
    URBAN: (0.160, 0.145, 0.140, 0.145, 0.160, 0.180, 0.190, 0.200, 0.210, 0.040, 0.0012, 0.220, 0.190),
    FLOODED_VEG: (0.120, 0.095, 0.090, 0.070, 0.090, 0.150, 0.170, 0.170, 0.180, 0.030, 0.0010, 0.090, 0.050),
    SAND: (0.170, 0.155, 0.180, 0.210, 0.240, 0.260, 0.270, 0.280, 0.300, 0.060, 0.0015, 0.360, 0.290),
    FLOODED_URBAN: (0.140, 0.120, 0.120, 0.110, 0.110, 0.100, 0.100, 0.100, 0.100, 0.020, 0.0010, 0.080, 0.070),
}
#: aerosol/Rayleigh path reflectance per band at optical thickness 1.
PATH: tuple[float, ...] = (0.060, 0.050, 0.035, 0.022, 0.017, 0.012, 0.010, 0.008, 0.007, 0.003, 0.0, 0.001, 0.0005)
CLOUD: tuple[float, ...] = (0.45, 0.44, 0.43, 0.43, 0.44, 0.45, 0.46, 0.46, 0.46, 0.20, 0.030, 0.33, 0.22)
#: share of the signal removed in full shadow, per band (diffuse skylight is blue-rich).
SHADOW_DEPTH: tuple[float, ...] = (0.50, 0.55, 0.62, 0.68, 0.72, 0.76, 0.78, 0.80, 0.80, 0.82, 0.85, 0.86, 0.87)
NOISE: tuple[float, ...] = (0.004, 0.003, 0.003, 0.003, 0.003, 0.003, 0.003, 0.003, 0.003, 0.002, 0.0002, 0.003, 0.003)

_SPEC = np.array([SPECTRA[i] for i in range(N_SURFACES)], dtype=np.float32).T  # (13, N_SURFACES)
_V = lambda t: np.asarray(t, dtype=np.float32)[:, None, None]  # noqa: E731


@dataclass(frozen=True)
class S2Scene:
    """``reflectance`` float32 (13, H, W); ``cloud`` float32 (H, W) opacity in [0, 1];
    ``shadow`` float32 (H, W) shadow strength in [0, 1].
    """

    reflectance: np.ndarray
    cloud: np.ndarray
    shadow: np.ndarray


def make_s2(rng: np.random.Generator, lc: LandCover, *, cloud_cover: float, crop_vigour: float) -> S2Scene:
    """Simulate Sentinel-2 L1C reflectance for land cover ``lc``.

    ``cloud_cover``: mean cloud fraction of this chip's event (x the config's cloud scale);
    ``crop_vigour``: 0..1 (1 = lush crops). All random draws happen whatever the inputs.
    """
    n = lc.surface.shape[0]
    s = lc.surface
    cloud_f, turb = fractal_fields(rng, n, (2.4, 3.0), max_cycles=64.0)
    clear_chip = rng.random() < 0.35
    cover = 0.0 if clear_chip else float(min(0.85, cloud_cover * rng.exponential(1.0)))
    aot = np.float32(rng.uniform(0.1, 0.6))
    height_px = rng.uniform(0.05, 0.25) * n
    sun_az = rng.uniform(0.0, 2 * np.pi)
    cloud_gain = np.float32(rng.uniform(0.8, 1.2))
    noise = rng.standard_normal((n, n), dtype=np.float32)

    # per-pixel modifiers shared by all bands, then one fused pass per band (cache-friendly)
    crop = s == CROP
    mix = np.where(crop, np.float32(1.15 - crop_vigour) * lc.parcel, np.float32(0.0))
    turbid = np.where(s == FLOOD, np.float32(0.35) * turb, np.float32(0.0))
    land = ~np.isin(s, (PERM, FLOOD, FLOODED_VEG, FLOODED_URBAN))
    bright = np.where(land, np.float32(1.0) + np.float32(0.07) * lc.brightness, np.float32(1.0))
    if cover > 0:
        k = int((1 - cover) * (n * n - 1))
        thr = np.partition(cloud_f[::2, ::2].ravel(), int((1 - cover) * (cloud_f[::2, ::2].size - 1)))[
            int((1 - cover) * (cloud_f[::2, ::2].size - 1))] if k else cloud_f.min()
        alpha = np.clip((cloud_f - thr) / np.float32(0.8) + np.float32(0.35), 0.0, 1.0).astype(np.float32)
        dy = int(round(height_px * np.sin(sun_az)))
        dx = int(round(height_px * np.cos(sun_az)))
        shadow = (np.roll(alpha, (dy, dx), axis=(0, 1)) * (1.0 - alpha)).astype(np.float32)
        clear = np.float32(1.0) - alpha
    else:
        alpha = np.zeros((n, n), dtype=np.float32)
        shadow = alpha
        clear = None
    refl = np.empty((len(PATH), n, n), dtype=np.float32)
    d_bare = np.asarray(SPECTRA[BARE], np.float32) - np.asarray(SPECTRA[CROP], np.float32)
    d_turb = np.asarray(SPECTRA[FLOOD], np.float32) - np.asarray(SPECTRA[PERM], np.float32)
    for b in range(len(PATH)):
        r = _SPEC[b][s]
        r += d_bare[b] * mix
        r += d_turb[b] * turbid
        r *= bright
        r += np.float32(PATH[b]) * aot + np.float32(NOISE[b]) * noise
        if clear is not None:
            r *= np.float32(1.0) - np.float32(SHADOW_DEPTH[b]) * shadow
            r *= clear
            r += np.float32(CLOUD[b]) * cloud_gain * alpha
        np.clip(r, 0.0001, 3.2767, out=r)
        refl[b] = r
    return S2Scene(reflectance=refl, cloud=alpha, shadow=shadow)
