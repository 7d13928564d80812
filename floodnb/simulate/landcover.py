"""Land cover, water classes and the SAR confusion masks of one chip.

Surface classes follow :data:`floodnb.bands.SIM_CLASSES` (0 permanent_water, 1 flood_water,
2 cropland, 3 forest, 4 bare_soil, 5 urban, 6 flooded_vegetation, 7 sand) plus one radiometric
class used internally, :data:`FLOODED_URBAN` (8): urban land under flood water, written to
``SimTruthClass`` as urban (5) with ``SimTruthWater`` = 1.

Physical assumptions:

* Land cover is a mosaic of smooth random patches (forest, towns) over field parcels (cropland
  vs ploughed bare soil), with proportions from the event's climate; steep hills are forest in
  humid climates and bare rock/soil in arid ones. Parcels are organic: Voronoi cells of a
  jittered seed grid, looked up through a smoothly warped coordinate system, so field edges
  curve and meet at varied angles (``organic_parcels=False`` restores the old axis-aligned
  square grid, kept only to show the difference). Each parcel carries two independent values
  (``parcel``, ``parcel2``): crop vigour/type seen by VV and S2, and canopy structure seen by VH.
* Radar-smooth surfaces (sand bars, dry sand, tarmac: class ``sand``) favour river banks.
* Water overrides land cover: permanent water, open flood water, flooded vegetation (emergent
  canopy over flood water; Hess et al. 1990, Richards et al. 1987) and flooded urban land
  (Mason et al. 2014 on double bounce in flooded towns). Towns are partly defended: only a
  settable share of low-lying urban land floods.
* Wind roughening is a property of the water surface at acquisition time (a patchy mask over
  open water), not a class.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from floodnb.simulate.events import Event
from floodnb.simulate.terrain import Terrain, fractal_fields, quantile_mask

PERM, FLOOD, CROP, FOREST, BARE, URBAN, FLOODED_VEG, SAND = range(8)
FLOODED_URBAN: int = 8
N_SURFACES: int = 9
WATER_SURFACES: tuple[int, ...] = (PERM, FLOOD, FLOODED_VEG, FLOODED_URBAN)


@dataclass(frozen=True)
class LandCover:
    """``surface`` uint8 (H, W) in 0..8; ``truth_class`` int16 (SIM_CLASSES index);
    ``truth_water`` bool; ``wind`` bool wind-roughened water; ``parcel`` / ``parcel2`` float32
    in [0, 1] independent per-field values (crop vigour/type; canopy structure);
    ``brightness`` / ``brightness2`` float32 unit-std smooth fields (independent).
    """

    surface: np.ndarray
    truth_class: np.ndarray
    truth_water: np.ndarray
    wind: np.ndarray
    parcel: np.ndarray
    brightness: np.ndarray
    parcel2: np.ndarray
    brightness2: np.ndarray


def parcels(rng: np.random.Generator, n: int, *, organic: bool) -> tuple[np.ndarray, np.ndarray]:
    """Two independent per-parcel values, float32 (n, n) in [0, 1], over field parcels of 12-40 px.

    ``organic``: Voronoi cells of a jittered seed grid, evaluated at coordinates warped by two
    smooth fractal fields (~0.25 cell), so cell edges curve (cells resolved at 2 px); otherwise an axis-aligned
    square grid. The same random draws are made either way.
    """
    cell = int(rng.integers(12, 40))
    g = n // cell + 3
    vals = rng.random((2, g, g), dtype=np.float32)
    jitter = rng.random((2, g, g), dtype=np.float32)
    oy, ox = (int(v) for v in rng.integers(0, cell, size=2))
    m = max(8, n // 8)  # the warp is smooth: drawn on an 8x coarser grid and interpolated
    warp = fractal_fields(rng, m, (3.0, 3.0), max_cycles=min(16.0, m / 2.0))
    if not organic:
        idx = (np.arange(n) + oy) // cell
        jdx = (np.arange(n) + ox) // cell
        return vals[0][idx][:, jdx], vals[1][idx][:, jdx]
    # cells are looked up on a 2x coarser grid (20 m) and repeated: 4x cheaper, edges still curve
    h = -(-n // 2)
    amp = np.float32(0.25)
    wy = ndimage.zoom(warp[0], h / m, order=1, mode="grid-wrap", grid_mode=True)[:h, :h] * amp
    wx = ndimage.zoom(warp[1], h / m, order=1, mode="grid-wrap", grid_mode=True)[:h, :h] * amp
    ramp = np.arange(h, dtype=np.float32) * np.float32(2.0) + np.float32(0.5)
    fy = wy + ((ramp + oy) / np.float32(cell) + np.float32(1.0))[:, None]
    fx = wx + ((ramp + ox) / np.float32(cell) + np.float32(1.0))[None, :]
    iy0 = fy.astype(np.int32)  # fy, fx >= 1 - amp > 0: truncation is floor
    ix0 = fx.astype(np.int32)
    sy = (np.arange(g, dtype=np.float32)[:, None] + jitter[0]).ravel()  # seed positions in cell units
    sx = (np.arange(g, dtype=np.float32)[None, :] + jitter[1]).ravel()
    best = np.full((h, h), np.inf, dtype=np.float32)
    win = np.zeros((h, h), dtype=np.int32)
    for dy in (-1, 0, 1):
        cy = np.clip(iy0 + dy, 0, g - 1) * g
        for dx in (-1, 0, 1):
            flat = cy + np.clip(ix0 + dx, 0, g - 1)
            d = np.square(fy - sy[flat])
            d += np.square(fx - sx[flat])
            closer = d < best
            np.copyto(best, d, where=closer)
            np.copyto(win, flat, where=closer)
    win = np.repeat(np.repeat(win, 2, axis=0), 2, axis=1)[:n, :n]
    return vals[0].ravel()[win], vals[1].ravel()[win]


def make_landcover(rng: np.random.Generator, terrain: Terrain, event: Event, *, smooth_rate: float,
                   flooded_vegetation_rate: float, urban_flood_rate: float, wind_rate: float,
                   organic_parcels: bool = True) -> LandCover:
    """Classify every pixel of ``terrain`` for ``event``; rates and switches as in :class:`SimConfig`.

    The random draws are the same whatever the rates (rates only move quantile thresholds).
    """
    n = terrain.height_m.shape[0]
    urb, fo, sa, fv, wi, br, br2 = fractal_fields(rng, n, (3.0, 3.0, 2.8, 2.8, 3.0, 2.6, 2.6), max_cycles=32.0)
    parcel, parcel2 = parcels(rng, n, organic=organic_parcels)
    humid = event.forest_frac >= event.bare_frac

    surface = np.full((n, n), CROP, dtype=np.uint8)
    urban = quantile_mask(urb, event.urban_frac)
    rest = ~urban
    forest = quantile_mask(fo, event.forest_frac / max(1e-6, 1.0 - event.urban_frac), where=rest)
    rest &= ~forest
    bare_share = event.bare_frac / max(1e-6, 1.0 - event.urban_frac - event.forest_frac)
    bare = rest & (parcel < bare_share)
    surface[bare] = BARE
    surface[forest] = FOREST
    surface[urban] = URBAN
    surface[terrain.hills] = FOREST if humid else BARE

    water_any = terrain.perm | terrain.flood
    dry = ~water_any & ~urban & ~terrain.hills
    bank = np.exp(-np.minimum(terrain.river_dist_px, 1e6) / 40.0).astype(np.float32)
    sand = quantile_mask(sa + 1.5 * bank, smooth_rate, where=dry)
    surface[sand] = SAND

    surface[terrain.perm] = PERM
    flood = terrain.flood
    vegetated = flood & ((surface == CROP) | (surface == FOREST) | (surface == BARE))
    fveg = quantile_mask(fv, min(1.0, flooded_vegetation_rate * event.flooded_veg_mult),
                         where=flood & ((surface == CROP) | (surface == FOREST)))
    urban_low = flood & (surface == URBAN)
    furban = quantile_mask(-urb, urban_flood_rate, where=urban_low)
    surface[(flood & ~(surface == URBAN)) | vegetated] = FLOOD
    surface[fveg] = FLOODED_VEG
    surface[furban] = FLOODED_URBAN
    # defended urban land below the water level stays dry (and stays URBAN)

    truth_water = np.isin(surface, WATER_SURFACES)
    truth_class = surface.astype(np.int16)
    truth_class[surface == FLOODED_URBAN] = URBAN
    open_water = (surface == PERM) | (surface == FLOOD)
    wind = quantile_mask(wi, min(1.0, wind_rate * event.wind_mult), where=open_water)
    return LandCover(surface=surface, truth_class=truth_class, truth_water=truth_water, wind=wind,
                     parcel=parcel, brightness=br, parcel2=parcel2, brightness2=br2)
