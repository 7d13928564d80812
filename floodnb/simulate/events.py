"""Flood events of the simulated dataset: place, dates, orbit, climate and flood severity.

The eleven events mirror the places, dates and orbits of the Sen1Floods11 events (Bonafilia et
al. 2020, ``Sen1Floods11_Metadata.geojson``) so that metadata-conditioned models (Bernhard et al.
2024) see realistic latitude/longitude/day-of-year, but every pixel is simulated. An event's dates
are its flood peak; each chip's own date and position around it come from :mod:`.acquisition`.
Events differ in:

* **climate** -> land-cover mix (forest/bare/urban fractions), crop vigour (NDVI), soil
  moisture (wet soil raises C-band backscatter by up to ~3 dB; Ulaby et al. 1986) and cloud
  cover (monsoon and tropical events are cloudier);
* **flood severity** -> water level above the river bank (m) and the share of chips with a
  river, which set the flood fraction;
* **wind** and **flooded vegetation** multipliers on the global confusion rates.

``Bolivia`` plays the held-out event (as in Sen1Floods11): a lowland tropical savanna floodplain
with more flooded vegetation, deeper floods, calmer water and a different season and orbit than
the others — so "generalises to an unseen event" is a real test.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Event:
    """One flood event. Dates are ``YYYY/MM/DD`` as in the Sen1Floods11 metadata."""

    name: str  # chip-id prefix and metadata ``location``
    iso: str
    event_id: int
    lat: float
    lon: float
    s1_date: str
    s2_date: str
    orbit: str  # "ASCENDING" | "DESCENDING": radar looks east / west
    rel_orbit: int
    climate: str
    flood_depth_m: float  # median water level above the bank (m)
    river_prob: float  # share of chips crossed by a river
    relief_m: float  # std of the gentle floodplain relief (m)
    forest_frac: float
    bare_frac: float
    urban_frac: float
    crop_vigour: float  # 0 = senescent/bare-like, 1 = lush
    soil_moisture_db: float  # extra backscatter of wet soil/crops (dB)
    cloud_cover: float  # mean S2 cloud fraction
    wind_mult: float
    flooded_veg_mult: float
    heldout: bool = False


EVENTS: tuple[Event, ...] = (
    Event("Bolivia", "BOL", 1, -14.2, -65.0, "2018/02/15", "2018/02/15", "DESCENDING", 156,
          "tropical savanna", 1.6, 0.85, 0.8, 0.30, 0.05, 0.02, 0.9, 2.0, 0.10, 0.4, 2.0, True),
    Event("Ghana", "GHA", 2, 10.3, -1.6, "2018/09/18", "2018/09/19", "ASCENDING", 147,
          "savanna", 0.9, 0.55, 1.5, 0.20, 0.15, 0.03, 0.6, 1.0, 0.12, 1.0, 1.0),
    Event("India", "IND", 3, 26.3, 92.2, "2016/08/12", "2016/08/12", "DESCENDING", 77,
          "monsoon", 1.2, 0.70, 1.2, 0.25, 0.05, 0.06, 0.9, 2.0, 0.20, 0.8, 1.2),
    Event("Mekong", "KHM", 4, 10.9, 106.4, "2018/08/05", "2018/08/04", "ASCENDING", 26,
          "tropical delta", 1.1, 0.60, 0.6, 0.10, 0.05, 0.08, 0.9, 2.5, 0.18, 1.0, 1.3),
    Event("Nigeria", "NGA", 5, 10.5, 6.6, "2018/09/21", "2018/09/20", "ASCENDING", 103,
          "savanna", 0.8, 0.50, 1.5, 0.15, 0.20, 0.04, 0.6, 1.0, 0.10, 1.0, 0.8),
    Event("Pakistan", "PAK", 6, 28.0, 71.1, "2017/06/28", "2017/06/28", "DESCENDING", 5,
          "arid", 0.7, 0.50, 1.0, 0.02, 0.45, 0.05, 0.4, 0.0, 0.05, 1.3, 0.5),
    Event("Paraguay", "PRY", 7, -27.3, -55.5, "2018/10/31", "2018/10/31", "DESCENDING", 68,
          "subtropical", 1.0, 0.60, 1.8, 0.25, 0.10, 0.04, 0.8, 1.5, 0.12, 1.0, 1.0),
    Event("Somalia", "SOM", 8, 4.7, 45.2, "2018/05/07", "2018/05/05", "ASCENDING", 116,
          "arid", 0.8, 0.55, 1.0, 0.05, 0.45, 0.05, 0.35, 0.5, 0.08, 1.2, 0.6),
    Event("Spain", "ESP", 9, 38.1, -0.8, "2019/09/17", "2019/09/18", "DESCENDING", 110,
          "mediterranean", 0.5, 0.35, 2.5, 0.10, 0.30, 0.10, 0.5, 0.5, 0.05, 1.2, 0.5),
    Event("Sri-Lanka", "LKA", 10, 9.6, 80.4, "2017/05/30", "2017/05/28", "DESCENDING", 19,
          "tropical", 0.9, 0.55, 1.5, 0.35, 0.05, 0.05, 0.9, 2.0, 0.20, 0.9, 1.3),
    Event("USA", "USA", 11, 38.3, -95.6, "2019/05/22", "2019/05/22", "ASCENDING", 136,
          "temperate", 1.0, 0.60, 1.5, 0.20, 0.15, 0.08, 0.7, 1.5, 0.08, 1.1, 0.8),
)


def event_by_name(name: str) -> Event:
    """The :class:`Event` called ``name`` (its chip-id prefix); ValueError lists the known ones."""
    for ev in EVENTS:
        if ev.name == name:
            return ev
    raise ValueError(f"unknown simulated event {name!r}; expected one of {[e.name for e in EVENTS]}")


def heldout_event() -> Event:
    """The one held-out event (the Bolivia role)."""
    return next(e for e in EVENTS if e.heldout)


def training_events() -> tuple[Event, ...]:
    """Events whose chips go to train/valid/test and to the weak pool."""
    return tuple(e for e in EVENTS if not e.heldout)
