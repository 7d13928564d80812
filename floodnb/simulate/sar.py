"""Sentinel-1 IW GRD backscatter (VV, VH in dB) of one chip.

Physical assumptions and sources:

* **Class backscatter** (sigma0, dB, at 37 deg incidence): calm open water is a specular
  reflector (VV about -21 to -23 dB, VH -28 to -30 dB); crops/grass -10/-16.5; forest (volume
  scattering) -8.5/-14; bare soil -11.5/-17.5; towns -6/-12.5 (dihedral walls); dry sand and
  tarmac are smooth and nearly as dark as water (-20/-27); see :data:`SIGMA0_DB`. Typical C-band values from Ulaby &
  Long (2014, *Microwave Radar and Radiometric Remote Sensing*) and Sentinel-1 flood studies
  (Twele et al. 2016; Bonafilia et al. 2020), then tuned so that simulated water/dry class
  statistics match the real Sen1Floods11 chips (see :mod:`floodnb.simulate.report`).
* **Incidence angle** falls across the IW swath (30-46 deg); sigma0 falls with it, faster for
  water (~-0.3 dB/deg) than for land (~-0.12 dB/deg). One angle per chip (a chip spans 5 km).
* **Soil moisture** raises bare-soil and crop backscatter (up to ~3 dB; Ulaby et al. 1986).
* **Wind** roughens water (Bragg scattering): +6 dB VV, +4.5 dB VH on the wind mask.
* **Double bounce**: flooded vegetation (trunk-water) is bright in VV (-8 dB) with moderate VH;
  flooded towns (wall-water) are brighter than dry towns (Richards et al. 1987; Mason et al. 2014).
* **Terrain**: GRD sigma0 is ellipsoid-normalised, so slopes facing the radar are brighter
  (smaller local incidence, area factor sin(theta)/sin(theta_loc) and cosine law) and slopes
  facing away are darker; where the local incidence reaches 90 deg there is **radar shadow**
  (only thermal noise). The radar looks east on ascending and west on descending passes
  (Sentinel-1 is right-looking).
* **Sensor**: sigma0 blurred by the ~20 m resolution cell, plus noise-equivalent sigma0
  (``nesz_db``), times multiplicative gamma speckle with ``enl`` looks, drawn at the
  resolution cell and shared by 2x2 pixels (10 m spacing), so speckle is spatially correlated
  as in GRDH products (ENL ~4.4, ESA Sentinel-1 Product Definition).
* **Swath edge**: with probability ``s1_nodata_rate`` the chip touches the swath edge and a
  wedge of pixels is NaN (real Sen1Floods11 chips show this, and one is entirely NaN).
"""

from __future__ import annotations

import numpy as np

from floodnb.simulate.landcover import (BARE, CROP, FLOOD, FLOODED_URBAN, FLOODED_VEG, FOREST, N_SURFACES,
                                        PERM, SAND, URBAN, LandCover)
from floodnb.simulate.terrain import PIXEL_M, Terrain

#: surface -> (VV, VH) sigma0 in dB at 37 deg incidence.
SIGMA0_DB: dict[int, tuple[float, float]] = {
    PERM: (-23.0, -30.0),
    FLOOD: (-21.0, -28.0),
    CROP: (-10.0, -16.5),
    FOREST: (-8.5, -14.0),
    BARE: (-11.5, -17.5),
    URBAN: (-6.0, -12.5),
    FLOODED_VEG: (-8.0, -17.0),
    SAND: (-20.0, -27.0),
    FLOODED_URBAN: (0.0, -8.0),
}
#: surface -> sigma0 change per degree of incidence above 37 deg (dB/deg).
INCIDENCE_SLOPE_DB: dict[int, float] = {
    PERM: -0.3, FLOOD: -0.3, CROP: -0.12, FOREST: -0.08, BARE: -0.15, URBAN: -0.05,
    FLOODED_VEG: -0.1, SAND: -0.25, FLOODED_URBAN: -0.05,
}
#: surface -> std (dB) of the spatial texture (parcel/canopy/building variability).
TEXTURE_DB: dict[int, float] = {
    PERM: 0.5, FLOOD: 1.0, CROP: 1.5, FOREST: 0.8, BARE: 1.2, URBAN: 2.5,
    FLOODED_VEG: 2.0, SAND: 1.0, FLOODED_URBAN: 3.0,
}
WIND_DB: tuple[float, float] = (6.0, 4.5)
REFERENCE_INCIDENCE_DEG: float = 37.0


def _table(values: dict[int, float]) -> np.ndarray:
    return np.array([values[i] for i in range(N_SURFACES)], dtype=np.float32)


_VV = _table({k: v[0] for k, v in SIGMA0_DB.items()})
_VH = _table({k: v[1] for k, v in SIGMA0_DB.items()})
_INC = _table(INCIDENCE_SLOPE_DB)
_TEX = _table(TEXTURE_DB)


def _blur121(a: np.ndarray) -> np.ndarray:
    """Separable [1, 2, 1] / 4 blur over the last two axes (edge pixels replicated)."""
    p = np.pad(a, [(0, 0)] * (a.ndim - 2) + [(1, 1), (1, 1)], mode="edge")
    v = (p[..., :-2, :] + 2 * p[..., 1:-1, :] + p[..., 2:, :]) * np.float32(0.25)
    return (v[..., :-2] + 2 * v[..., 1:-1] + v[..., 2:]) * np.float32(0.25)


def terrain_gain_db(height_m: np.ndarray, *, incidence_deg: float, looks_east: bool) -> tuple[np.ndarray, np.ndarray]:
    """Terrain radiometry: (gain in dB (H, W) float32, shadow bool (H, W)).

    Local incidence theta_loc = theta - atan(dh/dr), r the ground range (away from the radar).
    Gain = 10 log10(cos(theta_loc) sin(theta) / (cos(theta) sin(theta_loc))) clipped to
    [-15, +10] dB; shadow where theta_loc >= 90 deg; foreshortening/layover capped at +10 dB.
    """
    dhdx = np.gradient(height_m, axis=1) / np.float32(PIXEL_M)
    dhdr = dhdx if looks_east else -dhdx
    th = np.deg2rad(incidence_deg)
    # gentle slopes (|dh/dr| < 0.05, i.e. < 3 deg): first-order expansion of the gain
    k = np.float32(10.0 / np.log(10.0) * (np.tan(th) + 1.0 / np.tan(th)))
    gain = (k * dhdr).astype(np.float32)
    shadow = np.zeros(height_m.shape, dtype=bool)
    steep = np.abs(dhdr) >= 0.05
    if steep.any():
        loc = th - np.arctan(dhdr[steep])
        shadow[steep] = loc >= np.deg2rad(89.0)
        locc = np.clip(loc, np.deg2rad(5.0), np.deg2rad(89.0))
        gain[steep] = 10.0 * np.log10((np.cos(locc) * np.sin(th)) / (np.cos(th) * np.sin(locc)))
    return np.clip(gain, -15.0, 10.0), shadow


def make_s1(rng: np.random.Generator, terrain: Terrain, lc: LandCover, *, incidence_deg: float, looks_east: bool,
            soil_moisture_db: float, enl: float, nesz_db: float, swath_edge: bool) -> np.ndarray:
    """Simulate S1 (2, H, W) float32 backscatter in dB (VV, VH), NaN = nodata (swath edge).

    All random draws happen whatever the inputs (deterministic per ``rng`` state).
    """
    n = lc.surface.shape[0]
    s = lc.surface
    tex_field = lc.brightness
    parcel = lc.parcel - np.float32(0.5)
    speckle = rng.standard_gamma(enl / 4.0, size=(2, n + 1, n + 1), dtype=np.float32)
    moist_chip = np.float32(rng.uniform(0.3, 1.0) * soil_moisture_db)
    calib = np.float32(rng.normal(0.0, 0.4))
    wedge = rng.uniform(-1.0, 1.0, size=3)

    dinc = np.float32(incidence_deg - REFERENCE_INCIDENCE_DEG)
    base_shift = _INC[s] * dinc + calib
    tex = _TEX[s] * np.where((s == CROP) | (s == BARE), parcel * np.float32(3.4), tex_field)
    moist = np.where((s == CROP) | (s == BARE), moist_chip, np.float32(0.0))
    gain, shadow = terrain_gain_db(terrain.height_m, incidence_deg=incidence_deg, looks_east=looks_east)
    common = base_shift + tex + moist + gain
    vv = _VV[s] + common
    vh = _VH[s] + common
    if lc.wind.any():
        vv = vv + np.where(lc.wind, np.float32(WIND_DB[0]), np.float32(0.0))
        vh = vh + np.where(lc.wind, np.float32(WIND_DB[1]), np.float32(0.0))
    db = np.stack([vv, vh]).astype(np.float32)
    lin = np.exp(db * np.float32(np.log(10.0) / 10.0))
    lin[:, shadow] = 0.0
    lin = _blur121(lin) + np.float32(10.0 ** (nesz_db / 10.0))
    spk = (speckle[:, :-1, :-1] + speckle[:, 1:, :-1] + speckle[:, :-1, 1:] + speckle[:, 1:, 1:])
    spk *= np.float32(1.0 / enl)  # mean of 4 Gamma(enl/4)/(enl/4) = Gamma(enl)/enl, mean 1
    out = (np.float32(10.0 / np.log(10.0)) * np.log(lin * spk)).astype(np.float32)
    if swath_edge:
        yy, xx = np.mgrid[0:n, 0:n].astype(np.float32) / np.float32(n)
        cut = (wedge[0] * xx + wedge[1] * yy) > (0.6 + 0.3 * abs(wedge[2]))
        out[:, cut] = np.nan
    return out
