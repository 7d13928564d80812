"""Terrain, rivers, permanent water and flood water for one chip (10 m pixels).

Physical assumptions (each a deliberate simplification):

* **Fractal relief.** Natural topography has a power spectrum ~ k^-beta with beta ~ 2-3.5
  (Mandelbrot 1982; Turcotte 1997, *Fractals and chaos in geology and geophysics*). Fields are
  made by shaping white Gaussian noise in the Fourier domain (spectral synthesis), which costs
  one inverse FFT per field; smooth fields draw only their low-frequency coefficients.
* **Rivers and floodplains.** A meandering channel (sine meander plus noise; meander wavelength
  ~10-14 channel widths, Leopold & Wolman 1960) is cut into a valley whose floor rises linearly
  with distance from the channel (the floodplain cross-slope), plus gentle fractal relief.
* **Permanent water** = the channel plus a few ponds/oxbows (also what the JRC Global Surface
  Water layer records, Pekel et al. 2016, at its 30 m resolution).
* **Flood water** follows the "bathtub" model used in rapid flood mapping (e.g. HAND-based
  inundation, Nobre et al. 2011): every pixel below the chip's water level *and* connected to
  permanent water is flooded; chips without permanent water flood only in large depressions
  (pluvial ponding).
* **Steep terrain** (ridged fractal hills) occupies a settable fraction of the chip, away from
  the valley; its slopes drive the radar terrain effects in :mod:`floodnb.simulate.sar`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import scipy.fft
from scipy import ndimage

PIXEL_M: float = 10.0
#: steep-terrain relief (m) per pixel of chip width (hills of ~250 m in a 512 px chip).
HILL_RELIEF_M_PER_PX: float = 0.5
#: unflooded chips (``low_water_chip_rate``) keep this share of the river probability and of ponding.
DRY_CHIP_RIVER_SHARE: float = 0.2
DRY_CHIP_PONDING_SHARE: float = 0.1


@lru_cache(maxsize=8)
def _radial_frequency(size: int) -> np.ndarray:
    ky = np.fft.fftfreq(size).astype(np.float32)[:, None]
    kx = np.fft.rfftfreq(size).astype(np.float32)[None, :]
    k = np.sqrt(kx * kx + ky * ky) * size  # cycles per chip
    k[0, 0] = np.inf
    return k


def fractal_fields(rng: np.random.Generator, size: int, betas: tuple[float, ...], *,
                   max_cycles: float = 48.0) -> np.ndarray:
    """Gaussian random fields with power spectrum ~ k^-beta, one per entry of ``betas``.

    Returns float32 ``(len(betas), size, size)``, each field zero-mean, unit standard deviation,
    periodic. Only frequencies below ``max_cycles`` cycles per chip are drawn (random draws
    scale with ``max_cycles^2``, not ``size^2``): fine for beta >= 2.5, where higher frequencies
    carry almost no power. Deterministic for a given ``rng`` state.
    """
    k = _radial_frequency(size)
    m = int(min(size // 2, max(2, int(np.ceil(max_cycles)))))
    nb = len(betas)
    spec = np.zeros((nb, size, m + 1), dtype=np.complex64)
    rows = np.r_[0:m, size - m:size] if 2 * m < size else np.arange(size)
    kk = k[rows][:, : m + 1]
    for i, beta in enumerate(betas):
        amp = np.where(kk <= max_cycles, kk ** (-beta / 2.0), 0.0).astype(np.float32)
        re = rng.standard_normal(kk.shape, dtype=np.float32)
        im = rng.standard_normal(kk.shape, dtype=np.float32)
        spec[i][np.ix_(rows, np.arange(m + 1))] = (re + 1j * im) * amp
    # inverse transform in two passes: along y only for the m + 1 non-zero x-frequency columns,
    # then along x (irfft zero-pads the missing columns): same as irfft2, cheaper for smooth fields
    cols = scipy.fft.ifft(spec, axis=-2, workers=1)
    f = scipy.fft.irfft(cols, n=size, axis=-1, workers=1).astype(np.float32)
    sub = f[:, ::4, ::4]  # statistics of smooth fields from a 1/16 subsample (exact enough, 16x cheaper)
    f -= sub.mean(axis=(1, 2), keepdims=True)
    f /= np.maximum(sub.std(axis=(1, 2), keepdims=True), 1e-12)
    return f


def rough_field(rng: np.random.Generator, size: int, beta: float = 2.0) -> np.ndarray:
    """One full-band fractal field (all frequencies drawn): float32 (size, size), unit std."""
    return fractal_fields(rng, size, (beta,), max_cycles=float(size))[0]


def quantile_mask(field: np.ndarray, fraction: float, where: np.ndarray | None = None) -> np.ndarray:
    """Boolean mask of the ``fraction`` highest values of ``field`` (among ``where`` pixels).

    The same field with a larger fraction gives a superset mask, so raising a rate only adds
    pixels (the basis of the monotone confusion switches).
    """
    if fraction <= 0.0:
        return np.zeros(field.shape, dtype=bool)
    # threshold from a fixed 1/4 subsample (every other row/column): deterministic, 4x cheaper,
    # and monotone in ``fraction`` (a larger fraction gives a lower threshold, a superset mask)
    f_sub = field[::2, ::2]
    vals = f_sub[where[::2, ::2]] if where is not None else f_sub.ravel()
    if vals.size < 256 and where is not None:
        vals = field[where]
    if vals.size == 0:
        return np.zeros(field.shape, dtype=bool)
    if fraction >= 1.0:
        out = np.ones(field.shape, dtype=bool)
    else:
        k = int((1.0 - fraction) * (vals.size - 1))
        out = field > np.partition(vals, k)[k]
    return out & where if where is not None else out


@dataclass(frozen=True)
class Terrain:
    """Geometry of one chip. All arrays ``(H, W)``.

    ``height_m`` float32 elevation (m, channel bank = 0); ``perm`` / ``flood`` bool permanent
    and flood water (flood excludes permanent); ``hills`` bool steep-terrain area;
    ``river_dist_px`` float32 distance to the channel centre line (inf without river);
    ``water_level_m`` the chip's flood level (m).
    """

    height_m: np.ndarray
    perm: np.ndarray
    flood: np.ndarray
    hills: np.ndarray
    river_dist_px: np.ndarray
    water_level_m: float


def make_terrain(rng: np.random.Generator, size: int, *, relief_m: float, river_prob: float,
                 flood_depth_m: float, shadow_rate: float, fragmentation: float = 0.0,
                 low_water_chip_rate: float = 0.3) -> Terrain:
    """Simulate the terrain and water of one chip (see the module docstring for the physics).

    ``relief_m``: std of the floodplain relief; ``river_prob``: probability of a river;
    ``flood_depth_m``: median water level above the bank; ``shadow_rate``: area fraction of
    steep hills; ``fragmentation`` (0..1): amplitude of the microtopography that makes flood
    edges ragged and leaves islands, and of the ponding share (0 = compact bathtub water);
    ``low_water_chip_rate``: probability that the chip is not flooded (river and small ponds
    only). Random draws do not depend on these settings (only thresholds and amplitudes do).
    """
    n = size
    smooth, hillzone, ponds, tilt = fractal_fields(rng, n, (3.2, 3.0, 3.4, 3.8), max_cycles=24.0)
    ridges = fractal_fields(rng, n, (3.0,), max_cycles=24.0)[0]
    river_u = rng.random()
    theta = rng.uniform(0.0, np.pi)
    offset = rng.uniform(-0.25, 0.25) * n
    meander_amp = rng.uniform(0.03, 0.15) * n
    meander_len = rng.uniform(0.4, 1.2) * n
    phase = rng.uniform(0.0, 2 * np.pi)
    width = rng.uniform(3.0, 14.0)  # channel width (px) = 30-140 m
    cross_slope = rng.uniform(0.002, 0.008)  # floodplain rise per metre
    level_factor = float(rng.lognormal(0.0, 0.6))
    dry_chip = bool(rng.random() < low_water_chip_rate)
    has_river = bool(river_u < river_prob * (DRY_CHIP_RIVER_SHARE if dry_chip else 1.0))
    pond_frac = rng.uniform(0.0, 0.02) if rng.random() < 0.4 else 0.0
    ponding_share = float(rng.uniform(0.02, 0.15))
    emergent_share = float(rng.uniform(0.3, 0.6))
    micro, wet = fractal_fields(rng, n, (1.8, 2.6), max_cycles=float(n) / 4.0)

    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32)
    c = (xx - n / 2) * np.float32(np.cos(theta)) + (yy - n / 2) * np.float32(np.sin(theta))
    u = -(xx - n / 2) * np.float32(np.sin(theta)) + (yy - n / 2) * np.float32(np.cos(theta))
    if has_river:
        w = np.float32(2 * np.pi / meander_len)
        centre = offset + meander_amp * np.sin(w * c + phase)
        dcentre = meander_amp * w * np.cos(w * c + phase)
        dist = np.abs(u - centre) / np.sqrt(1.0 + dcentre * dcentre)
        dist = dist.astype(np.float32)
    else:
        dist = np.full((n, n), np.inf, dtype=np.float32)

    h = relief_m * smooth
    if has_river:
        h = h + cross_slope * PIXEL_M * np.minimum(dist, 0.6 * n) + 0.5
    else:
        h = h + 2.0 * relief_m * tilt + 1.5 * relief_m
    # steep hills away from the valley: ridged noise (1 - |f|) scaled to hundreds of metres
    away = np.ones((n, n), dtype=bool) if not has_river else dist > 0.12 * n
    hills = quantile_mask(hillzone, shadow_rate, where=away)
    if hills.any():
        ramp = ndimage.uniform_filter(hills.astype(np.float32), size=max(3, n // 32))
        # relief scales with the chip so that slopes (not heights) are size-independent:
        # ~0.5 m per pixel of chip width gives 30-60 deg slopes and radar shadow on back-slopes
        h = h + np.float32(HILL_RELIEF_M_PER_PX * n) * ramp * (1.0 - np.abs(ridges)) ** 2
    perm = quantile_mask(ponds, pond_frac) if pond_frac > 0 else np.zeros((n, n), dtype=bool)
    if has_river:
        perm |= dist < width / 2.0
    perm &= ~hills
    h = np.where(perm, np.float32(-1.5), h).astype(np.float32)

    level = 0.0 if dry_chip else float(flood_depth_m * level_factor)
    flood = _flood(h, perm=perm, hills=hills, micro=micro, wet=wet, level=level, fragmentation=fragmentation,
                   relief_m=relief_m, emergent_share=emergent_share, ponding_share=ponding_share, dry_chip=dry_chip)
    return Terrain(height_m=h, perm=perm, flood=flood, hills=hills, river_dist_px=dist,
                   water_level_m=level)


def _flood(h: np.ndarray, *, perm: np.ndarray, hills: np.ndarray, micro: np.ndarray, wet: np.ndarray, level: float,
           fragmentation: float, relief_m: float, emergent_share: float, ponding_share: float,
           dry_chip: bool) -> np.ndarray:
    """Flooded (non-permanent) water ``(n, n)`` bool of terrain ``h`` (m) at water ``level`` (m).

    Connected low ground reached by the water (or, without permanent water, large enough basins),
    made ragged by microtopography ``micro`` and split by emergent ground; with ``fragmentation``
    > 0, pluvial ponds in the wetter low parts (``wet``) away from the main water body.
    """
    # microtopography (field bunds, furrows, levees): ragged flood edges and dry islands
    h_water = h + np.float32(fragmentation * 0.4 * relief_m) * micro if fragmentation > 0 else h
    below = (h_water < level) & ~hills
    flood = np.zeros(h.shape, dtype=bool)
    if level > 0 and below.any():
        lab, nlab = ndimage.label(below | perm)
        if nlab:
            if perm.any():
                keep = np.zeros(nlab + 1, dtype=bool)
                keep[np.unique(lab[perm])] = True
            else:
                sizes = np.bincount(lab.ravel(), minlength=nlab + 1)
                keep = sizes >= max(16, h.size // 400)
            keep[0] = False
            flood = keep[lab] & ~perm
    if fragmentation > 0:
        # emergent ground inside the flood (field bunds, levees, tree lines, roads): removing the
        # highest microtopography near the percolation threshold splits the flood into many bodies
        flood &= ~quantile_mask(micro, fragmentation * emergent_share, where=flood)
        # pluvial ponding and flooded fields away from the main water body: many small water
        # bodies in the wetter (lower) parts of the chip; unflooded chips keep a tenth of it
        share = fragmentation * ponding_share * (DRY_CHIP_PONDING_SHARE if dry_chip else 1.0)
        low = (h - h.mean()) / np.float32(max(float(h.std()), 1e-6))
        flood |= quantile_mask(micro + np.float32(0.6) * wet - np.float32(0.6) * low, share, where=~hills & ~perm)
    return flood
