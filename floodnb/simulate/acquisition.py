"""Per-chip acquisition metadata: each chip's own date within its event's window and its own place.

Sen1Floods11 (Bonafilia et al. 2020) records dates per *event*, but an event's chips come from
scenes spread over a large area and, for a long flood, over several acquisitions. Bernhard et al.
(ECAI 2024) condition a flood mapper on a chip's date and position because both carry physical
information. Here each chip draws (from its own seed stream, so a chip does not depend on the
other chips of the dataset):

* **date**: ``days_from_peak`` uniform over the integers ``[-days_before_peak, days_after_peak]``
  around the event's flood peak (the event's ``s1_date``); the chip's S1 and S2 dates are the
  event's dates shifted by that many days;
* **position**: the chip centre uniform over a square of ``event_extent_km`` km around the event
  centre (``east_km``, ``north_km``); chips may overlap (each is an independent scene).

and both move the flood physically:

* **recession** (``recession_days``): the flood level decays exponentially with the days away
  from the peak, ``exp(-|days_from_peak| / recession_days)`` (rivers rise to the peak and recede
  over one to a few weeks; e.g. the recession curves of large floodplains, Bates & De Roo 2000);
* **floodplain position** (``floodplain_width_km``): the event's flooding is concentrated in a
  band along its main river, an axis through the event centre at an event-specific angle; with
  ``cross_km`` the chip's distance from that axis the factor is ``exp(-cross_km^2 / (2 w^2))``.

The product of the two factors, divided by its mean over the event's window and area (so an
event's *mean* flood is unchanged and the simulator keeps its calibration), is the chip's
``level_multiplier``: it scales the chip's flood level and the probability that the chip is
flooded at all (:func:`floodnb.simulate.scene.simulate_s1_scene`). A switch set to None (or a
window/extent of 0) removes that effect: ``level_multiplier`` is then 1 for every chip.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd

from floodnb.simulate.config import SimConfig
from floodnb.simulate.events import Event

#: km per degree of latitude (WGS84 mean); a degree of longitude is this times cos(latitude).
KM_PER_DEG: float = 111.32
#: the floodplain axis of event ``k`` makes angle ``k * GOLDEN_ANGLE`` (mod pi) with east: spread, fixed.
GOLDEN_ANGLE: float = math.pi * (3.0 - math.sqrt(5.0))
#: seed-sequence tag of the acquisition stream (0 = chip scene, 1 = pilot scenes).
ACQUISITION_STREAM: int = 2
_GRID: int = 101  # points per side of the grid that averages the position factor over the area


@dataclass(frozen=True)
class Acquisition:
    """Where and when one chip was acquired, and what that does to its flood.

    ``days_from_peak`` int (negative = before the peak); ``east_km``/``north_km`` chip centre
    relative to the event centre (km); ``cross_km`` distance from the event's floodplain axis
    (km, signed); ``lat``/``lon`` chip centre (deg); ``s1_date``/``s2_date`` ``YYYY/MM/DD``;
    ``level_multiplier`` >= 0 (mean 1 over the event's window and area).
    """

    days_from_peak: int
    east_km: float
    north_km: float
    cross_km: float
    lat: float
    lon: float
    s1_date: str
    s2_date: str
    level_multiplier: float


def acquisition_seed(seed: int, event: Event, number: int) -> np.random.SeedSequence:
    """Seed of chip ``number``'s acquisition (a stream separate from its scene's)."""
    return np.random.SeedSequence([int(seed), int(event.event_id), int(number), ACQUISITION_STREAM])


def axis_angle(event: Event) -> float:
    """Angle (rad, from east, in [0, pi)) of the event's floodplain axis through its centre."""
    return (event.event_id * GOLDEN_ANGLE) % math.pi


def recession_factor(days: np.ndarray | int, config: SimConfig) -> np.ndarray:
    """Flood-level factor ``exp(-|days| / recession_days)`` (1 when recession is off), float64."""
    d = np.abs(np.asarray(days, dtype=np.float64))
    if config.recession_days is None:
        return np.ones_like(d)
    return np.exp(-d / config.recession_days)


def position_factor(cross_km: np.ndarray | float, config: SimConfig) -> np.ndarray:
    """Flood factor ``exp(-cross_km^2 / (2 w^2))`` of the distance from the axis (1 when off), float64."""
    c = np.asarray(cross_km, dtype=np.float64)
    if config.floodplain_width_km is None:
        return np.ones_like(c)
    return np.exp(-0.5 * (c / config.floodplain_width_km) ** 2)


@lru_cache(maxsize=64)
def _mean_factor(angle: float, config: SimConfig) -> float:
    """Mean of recession x position factors over the window's days and a grid over the area."""
    days = np.arange(-config.days_before_peak, config.days_after_peak + 1)
    r = float(recession_factor(days, config).mean())
    half = config.event_extent_km / 2.0
    g = np.linspace(-half, half, _GRID)
    east, north = np.meshgrid(g, g)
    p = float(position_factor(-math.sin(angle) * east + math.cos(angle) * north, config).mean())
    return r * p


def _shift(date: str, days: int) -> str:
    return (pd.Timestamp(date.replace("/", "-")) + pd.Timedelta(days=int(days))).strftime("%Y/%m/%d")


def draw_acquisition(seed: int, event: Event, number: int, config: SimConfig) -> Acquisition:
    """The acquisition of chip ``number`` of ``event`` (deterministic for ``seed``; see the module docstring)."""
    rng = np.random.default_rng(acquisition_seed(seed, event, number))
    days = int(rng.integers(-config.days_before_peak, config.days_after_peak + 1))
    half = config.event_extent_km / 2.0
    east, north = (float(v) for v in rng.uniform(-half, half, 2))
    angle = axis_angle(event)
    cross = -math.sin(angle) * east + math.cos(angle) * north
    factor = float(recession_factor(days, config) * position_factor(cross, config))
    lat = event.lat + north / KM_PER_DEG
    lon = event.lon + east / (KM_PER_DEG * math.cos(math.radians(event.lat)))
    return Acquisition(days_from_peak=days, east_km=east, north_km=north, cross_km=cross, lat=lat, lon=lon,
                       s1_date=_shift(event.s1_date, days), s2_date=_shift(event.s2_date, days),
                       level_multiplier=factor / _mean_factor(angle, config))
