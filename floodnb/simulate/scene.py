"""One simulated chip: every Sen1Floods11 layer plus the known truth, as numpy arrays.

Pipeline (each step documented in its module): terrain and water (:mod:`.terrain`) -> land cover
and confusion masks (:mod:`.landcover`) -> Sentinel-1 (:mod:`.sar`) and Sentinel-2
(:mod:`.spectra`) -> labels:

* ``label`` (LabelHand): what a careful annotator draws from the imagery — the true water mask
  with slightly uncertain edges (blurred by ``hand_edge_px`` and thresholded at a level that
  wanders smoothly, moving edges by about a pixel and dropping the thinnest slivers) and
  clouds (opacity > 0.35) marked -1, as Sen1Floods11's hand labels do (Bonafilia et al. 2020).
* ``s1_otsu`` / ``s2_index``: :mod:`floodnb.labels.weak` applied to the simulated imagery,
  exactly as Sen1Floods11 made its weak labels, so their errors come from the physics.
* ``jrc``: permanent water at the 30 m resolution of the JRC Global Surface Water layer.

Each chip draws from its own seed (``numpy.random.SeedSequence`` of the dataset seed, the event
and the chip number), split into independent streams per component, so a chip is identical
whatever the worker, the order or the other chips, and changing a confusion rate changes only
the pixels that rate governs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from floodnb.bands import LABEL_NODATA, S2_SCALE
from floodnb.labels.weak import otsu_label, s2_index_label
from floodnb.simulate.config import SimConfig
from floodnb.simulate.events import Event
from floodnb.simulate.landcover import make_landcover
from floodnb.simulate.sar import make_s1
from floodnb.simulate.spectra import make_s2
from floodnb.simulate.terrain import fractal_fields, make_terrain

CLOUD_LABEL_OPACITY: float = 0.35


@dataclass(frozen=True)
class Chip:
    """All layers of one chip, each ``(H, W)`` unless noted.

    ``s1`` float32 (2, H, W) dB, NaN nodata; ``s2`` int16 (13, H, W) DN (reflectance x 10000,
    0 = nodata); ``label``, ``s1_otsu``, ``s2_index``, ``jrc``, ``truth_water``,
    ``truth_class`` int16; ``incidence_deg``, ``water_level_m``, ``cloud_fraction`` scalars.
    """

    chip_id: str
    event: str
    s1: np.ndarray
    s2: np.ndarray
    label: np.ndarray
    s1_otsu: np.ndarray
    s2_index: np.ndarray
    jrc: np.ndarray
    truth_water: np.ndarray
    truth_class: np.ndarray
    incidence_deg: float
    water_level_m: float
    cloud_fraction: float


def chip_seed(seed: int, event: Event, number: int, *, pilot: bool = False) -> np.random.SeedSequence:
    """Seed of chip ``number`` of ``event`` (pilot chips use a separate stream)."""
    return np.random.SeedSequence([int(seed), int(event.event_id), int(number), 1 if pilot else 0])


def _jrc(perm: np.ndarray) -> np.ndarray:
    n = perm.shape[0]
    m = -(-n // 3) * 3
    p = np.zeros((m, m), dtype=np.float32)
    p[:n, :n] = perm
    coarse = p.reshape(m // 3, 3, m // 3, 3).mean(axis=(1, 3)) >= 0.5
    return np.repeat(np.repeat(coarse, 3, axis=0), 3, axis=1)[:n, :n].astype(np.int16)


def flooded_chip_rate(config: SimConfig, level_multiplier: float) -> float:
    """Probability that a chip is flooded: ``(1 - low_water_chip_rate) * level_multiplier``, at most 1."""
    return min(1.0, (1.0 - config.low_water_chip_rate) * float(level_multiplier))


def simulate_s1_scene(seq: np.random.SeedSequence, event: Event, config: SimConfig, size: int, *,
                      level_multiplier: float = 1.0):
    """Terrain, land cover and S1 of one chip: ``(terrain, landcover, s1, incidence_deg, streams)``.

    ``level_multiplier`` (>= 0, :class:`floodnb.simulate.acquisition.Acquisition`) scales the
    event's flood level and the probability that the chip is flooded (:func:`flooded_chip_rate`);
    1 = the event's own flood. It changes thresholds only, never the random draws.
    """
    if not level_multiplier >= 0:
        raise ValueError(f"level_multiplier must be >= 0, got {level_multiplier!r}")
    r_terrain, r_lc, r_s1, r_s2, r_label = (np.random.default_rng(s) for s in seq.spawn(5))
    terrain = make_terrain(r_terrain, size, relief_m=event.relief_m, river_prob=event.river_prob,
                           flood_depth_m=event.flood_depth_m * float(level_multiplier),
                           shadow_rate=config.shadow_rate, fragmentation=config.fragmentation,
                           low_water_chip_rate=1.0 - flooded_chip_rate(config, level_multiplier))
    lc = make_landcover(r_lc, terrain, event, smooth_rate=config.smooth_rate,
                        flooded_vegetation_rate=config.flooded_vegetation_rate,
                        urban_flood_rate=config.urban_flood_rate, wind_rate=config.wind_rate,
                        organic_parcels=config.organic_parcels)
    incidence = float(r_s1.uniform(30.0, 46.0))
    swath_edge = bool(r_s1.random() < config.s1_nodata_rate)
    s1 = make_s1(r_s1, terrain, lc, incidence_deg=incidence, looks_east=event.orbit == "ASCENDING",
                 soil_moisture_db=event.soil_moisture_db, enl=config.enl, nesz_db=config.nesz_db,
                 swath_edge=swath_edge, water_enl=config.water_enl, texture_coupling=config.texture_coupling,
                 ratio_spread=config.ratio_spread, noise_floor_db=config.noise_floor_db,
                 calibration_std_db=config.calibration_std_db)
    return terrain, lc, s1, incidence, (r_s2, r_label)


def simulate_chip(*, chip_id: str, event: Event, seq: np.random.SeedSequence, config: SimConfig,
                  vh_threshold: float | None, level_multiplier: float = 1.0) -> Chip:
    """Simulate every layer of one ``config.size`` px chip.

    ``vh_threshold``: VH threshold (dB) of the S1 Otsu weak label — the event threshold; None
    runs Otsu on this chip's own VH histogram. ``level_multiplier``: the chip's acquisition
    effect on its flood (:func:`simulate_s1_scene`).
    """
    size = config.size
    terrain, lc, s1, incidence, (r_s2, r_label) = simulate_s1_scene(seq, event, config, size,
                                                                    level_multiplier=level_multiplier)
    s2 = make_s2(r_s2, lc, cloud_cover=event.cloud_cover * config.cloud_scale, crop_vigour=event.crop_vigour)
    jitter = fractal_fields(r_label, size, (3.0,), max_cycles=32.0)[0]

    truth = lc.truth_water
    soft = truth.astype(np.float32)
    if config.hand_edge_px > 0:
        soft = ndimage.gaussian_filter(soft, sigma=config.hand_edge_px, mode="nearest")
    label = (soft > 0.5 + 0.2 * np.tanh(jitter)).astype(np.int16)
    label[s2.cloud > CLOUD_LABEL_OPACITY] = LABEL_NODATA

    refl = s2.reflectance
    dn = np.rint(refl * np.float32(S2_SCALE))
    np.clip(dn, 1, 32767, out=dn)
    s1_otsu = otsu_label(s1, threshold=vh_threshold) if np.isfinite(s1[1]).any() or vh_threshold is not None \
        else np.full(truth.shape, LABEL_NODATA, dtype=np.int16)
    return Chip(
        chip_id=chip_id, event=event.name, s1=s1, s2=dn.astype(np.int16), label=label,
        s1_otsu=s1_otsu, s2_index=s2_index_label(refl), jrc=_jrc(terrain.perm),
        truth_water=truth.astype(np.int16), truth_class=lc.truth_class,
        incidence_deg=incidence, water_level_m=terrain.water_level_m,
        cloud_fraction=float((s2.cloud > CLOUD_LABEL_OPACITY).mean()),
    )


def event_vh_threshold(event: Event, config: SimConfig, *, seed: int, n_pilot: int = 6) -> float:
    """Otsu VH threshold (dB) over pilot scenes of ``event`` — the simulated ``VH_thresh``.

    Sen1Floods11 records one VH threshold per event, found by Otsu over the event's S1 imagery;
    here the event's imagery is represented by ``n_pilot`` pilot chips (at most 256 px) drawn
    from a separate seed stream, so the threshold does not depend on how many chips are written.
    Pilots are always flooded (``low_water_chip_rate`` = 0): the threshold is found over the flooded
    scene, as the event's was, not over the mostly dry chips a random draw would give.
    """
    from dataclasses import replace

    from floodnb.labels.weak import otsu_threshold

    config = replace(config, low_water_chip_rate=0.0)
    size = min(config.size, 256)
    values = []
    for k in range(n_pilot):
        _, _, s1, _, _ = simulate_s1_scene(chip_seed(seed, event, k, pilot=True), event, config, size)
        vh = s1[1]
        values.append(vh[np.isfinite(vh)])
    return round(otsu_threshold(np.concatenate(values)), 2)
