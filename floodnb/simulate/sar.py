"""Sentinel-1 IW GRD backscatter (VV, VH in dB) of one chip.

Physical assumptions and sources:

* **Class backscatter** (sigma0, dB, at 37 deg incidence): calm open water is a specular
  reflector (VV about -22 to -24 dB, VH -31 to -33 dB before noise); crops/grass -9.5/-16;
  forest (volume scattering, low VV/VH ratio) -9/-14.5; bare soil (surface scattering, high
  ratio) -10/-18.5; towns -6.5/-13 (dihedral walls); dry sand and tarmac are smooth and nearly as
  dark as water (-18.5/-25.5); see :data:`SIGMA0_DB`. Typical C-band values from Ulaby & Long
  (2014, *Microwave Radar and Radiometric Remote Sensing*) and Sentinel-1 flood studies (Twele et
  al. 2016; Bonafilia et al. 2020), then fitted so that the class statistics of the realism table
  (:mod:`floodnb.simulate.stats`) match the real Sen1Floods11 chips.
* **Two bands, two textures**: VV and VH have their own texture fields (correlation
  ``texture_coupling``) and per-band amplitudes (:data:`TEXTURE_DB`), and VV - VH varies around
  its class gap (:data:`RATIO_SPREAD_DB` x ``ratio_spread``), so a high VV/VH ratio is not a
  water signature (real bare fields reach VV -7..-9 dB with VH -18..-19 dB).
* **Incidence angle** falls across the IW swath (30-46 deg); sigma0 falls with it, faster for
  water (~-0.3 dB/deg) than for land (~-0.12 dB/deg). One angle per chip (a chip spans 5 km).
* **Soil moisture** raises bare-soil and crop backscatter (up to ~3 dB; Ulaby et al. 1986).
* **Wind** roughens water (Bragg scattering): +8 dB VV, +9 dB VH on the wind mask (towards land).
* **Double bounce**: flooded vegetation (trunk-water) is bright in VV (-8 dB) with moderate VH;
  flooded towns (wall-water) are brighter than dry towns (Richards et al. 1987; Mason et al. 2014).
* **Terrain**: GRD sigma0 is ellipsoid-normalised, so slopes facing the radar are brighter
  (smaller local incidence, area factor sin(theta)/sin(theta_loc) and cosine law) and slopes
  facing away are darker; where the local incidence reaches 90 deg there is **radar shadow**
  (only thermal noise). The radar looks east on ascending and west on descending passes
  (Sentinel-1 is right-looking).
* **Sensor**: sigma0 blurred by the ~20 m resolution cell, plus noise-equivalent sigma0
  (``nesz_db``), times multiplicative gamma speckle drawn at the resolution cell and shared by
  2x2 pixels (10 m spacing), so speckle is spatially correlated as in GRDH products; ``enl``
  looks over land, ``water_enl`` over open water.
* **Noise removal** (``noise_floor_db``): GRD thermal-noise removal subtracts the mean noise
  power from one noisy realisation of it, leaving a zero-mean residual n (e - 1), e ~ Exp(1),
  that dominates dark targets: real water VH reaches -37 dB at its 5th percentile and its ENL
  drops to ~2. What is left at or below zero is stored log-uniformly between -50 and -42 dB.
* **Calibration** (``calibration_std_db``): an independent per-chip offset per band, plus a
  shared one of 0.4 dB (domain randomisation over processing and acquisition differences).
* **Swath edge**: with probability ``s1_nodata_rate`` the chip touches the swath edge and a
  wedge of pixels is NaN (real Sen1Floods11 chips show this, and one is entirely NaN).
"""

from __future__ import annotations

import numpy as np

from floodnb.simulate.landcover import (
    BARE,
    CROP,
    FLOOD,
    FLOODED_URBAN,
    FLOODED_VEG,
    FOREST,
    N_SURFACES,
    PERM,
    SAND,
    URBAN,
    LandCover,
)
from floodnb.simulate.terrain import PIXEL_M, Terrain, fractal_fields

#: surface -> (VV, VH) sigma0 in dB at 37 deg incidence.
SIGMA0_DB: dict[int, tuple[float, float]] = {
    PERM: (-24.0, -33.0),
    FLOOD: (-22.0, -31.0),
    CROP: (-9.5, -16.0),
    FOREST: (-9.0, -14.5),
    BARE: (-10.0, -18.5),
    URBAN: (-6.5, -13.0),
    FLOODED_VEG: (-8.5, -19.0),
    SAND: (-18.5, -25.5),
    FLOODED_URBAN: (-1.0, -11.0),
}
#: surface -> sigma0 change per degree of incidence above 37 deg (dB/deg).
INCIDENCE_SLOPE_DB: dict[int, float] = {
    PERM: -0.3, FLOOD: -0.3, CROP: -0.12, FOREST: -0.08, BARE: -0.15, URBAN: -0.05,
    FLOODED_VEG: -0.1, SAND: -0.25, FLOODED_URBAN: -0.05,
}
#: surface -> (VV, VH) std (dB) of the spatial texture (parcel/canopy/building variability). Over
#: open water the texture is wind and wave modulation, strong in co-polarised VV (Bragg) and weak
#: in VH, which sits near the noise floor.
TEXTURE_DB: dict[int, tuple[float, float]] = {
    PERM: (3.5, 0.8), FLOOD: (4.0, 1.0), CROP: (1.5, 1.5), FOREST: (0.8, 0.8), BARE: (1.2, 1.2),
    URBAN: (2.5, 2.5), FLOODED_VEG: (2.0, 2.0), SAND: (1.0, 1.0), FLOODED_URBAN: (3.0, 3.0),
}
#: surface -> std (dB) of the VV - VH ratio around its class mean (``ratio_spread`` = 1): surface
#: scattering from smooth or wet soil raises the ratio, volume scattering in canopies lowers it.
RATIO_SPREAD_DB: dict[int, float] = {
    PERM: 1.5, FLOOD: 2.0, CROP: 2.0, FOREST: 1.0, BARE: 2.5, URBAN: 2.0,
    FLOODED_VEG: 1.5, SAND: 2.0, FLOODED_URBAN: 2.0,
}
WIND_DB: tuple[float, float] = (8.0, 9.0)
#: linear power range (-50..-42 dB) where pixels that noise removal drove to <= 0 are stored.
FLOOR_LIN: tuple[float, float] = (1e-5, 10.0 ** -4.2)
REFERENCE_INCIDENCE_DEG: float = 37.0


def _table(values: dict[int, float]) -> np.ndarray:
    return np.array([values[i] for i in range(N_SURFACES)], dtype=np.float32)


_VV = _table({k: v[0] for k, v in SIGMA0_DB.items()})
_VH = _table({k: v[1] for k, v in SIGMA0_DB.items()})
_INC = _table(INCIDENCE_SLOPE_DB)
_TEX = _table({k: v[0] for k, v in TEXTURE_DB.items()})
_TEX_VH = _table({k: v[1] for k, v in TEXTURE_DB.items()})
_RSP = _table(RATIO_SPREAD_DB)


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
            soil_moisture_db: float, enl: float, nesz_db: float, swath_edge: bool, water_enl: float | None = None,
            texture_coupling: float = 1.0, ratio_spread: float = 0.0, noise_floor_db: float | None = None,
            calibration_std_db: float = 0.0) -> np.ndarray:
    """Simulate S1 (2, H, W) float32 backscatter in dB (VV, VH), NaN = nodata (swath edge).

    ``water_enl``: looks of the speckle over open water (None = ``enl``); ``texture_coupling``:
    correlation of the VV and VH texture fields (1 = one shared texture); ``ratio_spread``:
    multiplier of the per-class VV - VH spread :data:`RATIO_SPREAD_DB` (0 = a fixed gap per class);
    ``noise_floor_db``: level of the thermal noise removed from the product (None = no residual);
    ``calibration_std_db``: std of an independent per-chip, per-band calibration offset.
    Scene draws happen whatever the inputs; speckle and noise come last (deterministic per ``rng`` state).
    """
    n = lc.surface.shape[0]
    s = lc.surface
    moist_chip = np.float32(rng.uniform(0.3, 1.0) * soil_moisture_db)
    calib = np.float32(rng.normal(0.0, 0.4))
    wedge = rng.uniform(-1.0, 1.0, size=3)
    calib_band = rng.normal(0.0, 1.0, size=2).astype(np.float32) * np.float32(calibration_std_db)
    f_vh, f_ratio = fractal_fields(rng, n, (2.6, 2.6), max_cycles=32.0)
    # speckle (Gamma with L/4 shape per resolution cell; open water with its own looks), drawn
    # after every scene draw so that the looks and the noise settings change nothing else
    k_land = np.float32(0.25 * enl)
    k_water = np.float32(0.25 * (enl if water_enl is None else water_enl))
    speckle = rng.standard_gamma(k_land, size=(2, n + 1, n + 1), dtype=np.float32)
    sp = np.pad(s, ((0, 1), (0, 1)), mode="edge")
    wcell = (sp == PERM) | (sp == FLOOD)
    nw = int(np.count_nonzero(wcell))
    if nw:
        speckle[:, wcell] = rng.standard_gamma(k_water, size=(2, nw), dtype=np.float32)
    k = np.where(wcell, k_water, k_land)

    dinc = np.float32(incidence_deg - REFERENCE_INCIDENCE_DEG)
    base_shift = _INC[s] * dinc + calib
    field_class = (s == CROP) | (s == BARE)
    unit_vv = np.where(field_class, (lc.parcel - np.float32(0.5)) * np.float32(3.4), lc.brightness)
    unit_own = np.where(field_class, (lc.parcel2 - np.float32(0.5)) * np.float32(3.4), f_vh)
    rho = np.float32(texture_coupling)
    unit_vh = rho * unit_vv + np.float32(np.sqrt(max(0.0, 1.0 - texture_coupling ** 2))) * unit_own
    moist = np.where(field_class, moist_chip, np.float32(0.0))
    gain, shadow = terrain_gain_db(terrain.height_m, incidence_deg=incidence_deg, looks_east=looks_east)
    common = base_shift + moist + gain
    vv = _VV[s] + common + _TEX[s] * unit_vv + calib_band[0]
    vh = _VH[s] + common + _TEX_VH[s] * unit_vh + calib_band[1]
    if ratio_spread > 0:
        vh = vh - np.float32(ratio_spread) * _RSP[s] * f_ratio
    if lc.wind.any():
        vv = vv + np.where(lc.wind, np.float32(WIND_DB[0]), np.float32(0.0))
        vh = vh + np.where(lc.wind, np.float32(WIND_DB[1]), np.float32(0.0))
    db = np.stack([vv, vh]).astype(np.float32)
    lin = np.exp(db * np.float32(np.log(10.0) / 10.0))
    lin[:, shadow] = 0.0
    lin = _blur121(lin) + np.float32(10.0 ** (nesz_db / 10.0))
    spk = (speckle[:, :-1, :-1] + speckle[:, 1:, :-1] + speckle[:, :-1, 1:] + speckle[:, 1:, 1:])
    ksum = k[:-1, :-1] + k[1:, :-1] + k[:-1, 1:] + k[1:, 1:]
    spk /= ksum  # mean of 4 Gamma(L/4)/(L/4) = Gamma(L)/L, mean 1
    power = lin * spk
    if noise_floor_db is not None:
        # the product's thermal-noise removal subtracts the mean noise power from one noisy
        # realisation of it: a zero-mean residual n (e - 1), e ~ Exp(1), that dominates dark targets
        thermal = rng.standard_exponential((2, n, n), dtype=np.float32)
        thermal -= np.float32(1.0)
        thermal *= np.float32(10.0 ** (noise_floor_db / 10.0))
        power += thermal
    low = power <= np.float32(FLOOR_LIN[1])
    nlow = int(np.count_nonzero(low))
    if nlow:  # what removal leaves at or below the floor is stored log-uniformly in -50..-42 dB
        u = rng.random(nlow, dtype=np.float32)
        power[low] = np.float32(FLOOR_LIN[0]) * np.float32(FLOOR_LIN[1] / FLOOR_LIN[0]) ** u
    out = (np.float32(10.0 / np.log(10.0)) * np.log(power)).astype(np.float32)
    if swath_edge:
        yy, xx = np.mgrid[0:n, 0:n].astype(np.float32) / np.float32(n)
        cut = (wedge[0] * xx + wedge[1] * yy) > (0.6 + 0.3 * abs(wedge[2]))
        out[:, cut] = np.nan
    return out
