"""Find coincident Sentinel-1 / Sentinel-2 acquisitions in a STAC API or static catalog.

Garg et al. 2023 (arXiv 2302.08180) gain from a large *unlabelled paired* S1/S2 pool; Sen1Floods11
pairs each S1 scene with an S2 scene of (nearly) the same day. :func:`search_items` queries a
STAC API (pystac-client ``/search``) or walks a static catalog (pystac), filtering by
collection, bounding box and date window. :func:`group_acquisitions` merges the items of one
sensor pass (same solar day, same orbit) into an :class:`Acquisition` (a mosaic), and
:func:`find_pairs` pairs every S1 acquisition with the nearest S2 acquisition within
``max_gap`` whose ``eo:cloud_cover`` (the worst of its items) is at most ``max_cloud``.
Everything not paired is returned as a report row naming the item(s) and the reason.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import pystac

#: Columns of the skipped-items report.
SKIP_COLUMNS: tuple[str, ...] = ("item_id", "collection", "datetime", "reason")


@dataclass(frozen=True)
class Acquisition:
    """The STAC items of one sensor pass over the area: same collection, solar day and orbit.

    ``datetime``: mean acquisition time (UTC); ``cloud_cover``: the largest ``eo:cloud_cover`` of
    the items in percent (None when an item has none, e.g. Sentinel-1).
    """

    sensor: str
    collection: str
    items: tuple[pystac.Item, ...]
    datetime: dt.datetime
    cloud_cover: float | None
    orbit: str | None

    @property
    def item_ids(self) -> tuple[str, ...]:
        return tuple(i.id for i in self.items)


@dataclass(frozen=True)
class Pair:
    """A Sentinel-1 acquisition and its coincident Sentinel-2 acquisition."""

    s1: Acquisition
    s2: Acquisition

    @property
    def gap(self) -> dt.timedelta:
        """``|t_S2 - t_S1|``."""
        return abs(self.s2.datetime - self.s1.datetime)


def _utc(value: str | dt.date | dt.datetime, *, end: bool, what: str) -> dt.datetime:
    if isinstance(value, dt.datetime):
        t = value
    elif isinstance(value, dt.date):
        t = dt.datetime.combine(value, dt.time.max if end else dt.time.min)
    else:
        try:
            t = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError as exc:
            raise ValueError(f"{what}={value!r}: expected an ISO date or datetime, e.g. 2023-01-31") from exc
        if len(str(value)) == 10 and end:
            t = dt.datetime.combine(t.date(), dt.time.max)
    return t.replace(tzinfo=dt.timezone.utc) if t.tzinfo is None else t.astimezone(dt.timezone.utc)


def check_bbox(bbox: Sequence[float]) -> tuple[float, float, float, float]:
    """``(west, south, east, north)`` in degrees, validated."""
    try:
        w, s, e, n = (float(v) for v in bbox)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"bbox={bbox!r}: expected 4 numbers (west, south, east, north) in degrees") from exc
    if not (-180 <= w < e <= 180 and -90 <= s < n <= 90):
        raise ValueError(f"bbox={bbox!r}: expected west < east in [-180, 180] and south < north in [-90, 90]")
    return w, s, e, n


def time_window(start, end) -> tuple[dt.datetime, dt.datetime]:
    """UTC ``(start, end)``; a date-only ``end`` covers that whole day."""
    t0, t1 = _utc(start, end=False, what="start"), _utc(end, end=True, what="end")
    if t1 < t0:
        raise ValueError(f"end={end!r} is before start={start!r}")
    return t0, t1


def item_time(item: pystac.Item) -> dt.datetime:
    """Acquisition time of ``item`` (``datetime``, else the middle of start/end), UTC."""
    t = item.datetime
    if t is None:
        p = item.properties
        if "start_datetime" not in p or "end_datetime" not in p:
            raise ValueError(f"STAC item {item.id!r} has neither 'datetime' nor 'start_datetime'/'end_datetime'")
        t0 = _utc(p["start_datetime"], end=False, what="start_datetime")
        t1 = _utc(p["end_datetime"], end=False, what="end_datetime")
        t = t0 + (t1 - t0) / 2
    return t.replace(tzinfo=dt.timezone.utc) if t.tzinfo is None else t.astimezone(dt.timezone.utc)


def _intersects(a: Sequence[float], b: Sequence[float]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def open_stac(stac, *, modifier: Callable | None = None, timeout: float = 30.0):
    """Open ``stac`` (URL/path of a STAC API or static catalog, or a pystac Catalog/Client).

    Returns a pystac-client ``Client`` for an API with item search, else a ``pystac.Catalog``.
    ``modifier``: pystac-client item modifier (e.g. ``planetary_computer.sign_inplace``).
    Raises ValueError naming ``stac`` when it cannot be read.
    """
    if isinstance(stac, pystac.Catalog):
        return stac
    url = str(stac)
    try:
        root = pystac.read_file(url)
    except Exception as exc:  # network, JSON, not-a-catalog: say what was being opened
        raise ValueError(f"STAC {url!r} could not be opened as a STAC API or static catalog: "
                         f"{type(exc).__name__}: {exc}") from exc
    if not isinstance(root, pystac.Catalog):
        raise ValueError(f"STAC {url!r} is a {type(root).__name__}, expected a catalog or STAC API landing page")
    if any(link.rel == "search" for link in root.links):
        import pystac_client

        return pystac_client.Client.open(url, modifier=modifier, timeout=timeout)
    return root


def search_items(stac, *, collection: str, bbox: Sequence[float], start, end,
                 modifier: Callable | None = None, max_items: int | None = None) -> list[pystac.Item]:
    """Items of ``collection`` intersecting ``bbox`` (degrees) acquired in ``[start, end]``.

    A STAC API is queried with ``/search``; a static catalog is walked (all child catalogs and
    collections) and filtered here. Items are sorted by time, then id.
    """
    bbox = check_bbox(bbox)
    t0, t1 = time_window(start, end)
    cat = open_stac(stac, modifier=modifier)
    import pystac_client

    if isinstance(cat, pystac_client.Client):
        search = cat.search(collections=[collection], bbox=bbox, datetime=(t0, t1), max_items=max_items)
        items = list(search.items())
    else:
        items = []
        for item in cat.get_items(recursive=True):
            if item.collection_id != collection:
                continue
            if item.bbox is not None and not _intersects(item.bbox, bbox):
                continue
            if not t0 <= item_time(item) <= t1:
                continue
            if modifier is not None:
                modifier(item)
            items.append(item)
            if max_items is not None and len(items) >= max_items:
                break
    return sorted(items, key=lambda i: (item_time(i), i.id))


def _solar_day(item: pystac.Item) -> dt.date:
    t = item_time(item)
    lon = 0.0 if item.bbox is None else (item.bbox[0] + item.bbox[2]) / 2
    return (t + dt.timedelta(hours=lon / 15.0)).date()


def group_acquisitions(items: Iterable[pystac.Item], *, sensor: str) -> list[Acquisition]:
    """Merge items by (collection, solar day, orbit state / relative orbit) into acquisitions."""
    groups: dict[tuple, list[pystac.Item]] = {}
    for item in items:
        p = item.properties
        orbit = p.get("sat:orbit_state")
        rel = p.get("sat:relative_orbit")
        key = (item.collection_id, _solar_day(item), orbit, rel)
        groups.setdefault(key, []).append(item)
    out = []
    for (collection, _, orbit, rel), members in groups.items():
        times = [item_time(i) for i in members]
        mean = times[0] + sum((t - times[0] for t in times), dt.timedelta()) / len(times)
        clouds = [i.properties.get("eo:cloud_cover") for i in members]
        known = [c for c in clouds if c is not None]
        cloud = float(max(known)) if len(known) == len(clouds) else None
        orbit_s = None if orbit is None and rel is None else "/".join(str(v) for v in (orbit, rel) if v is not None)
        out.append(Acquisition(sensor=sensor, collection=str(collection), items=tuple(members), datetime=mean,
                               cloud_cover=cloud, orbit=orbit_s))
    return sorted(out, key=lambda a: (a.datetime, a.item_ids))


def find_pairs(s1: Sequence[Acquisition], s2: Sequence[Acquisition], *, max_gap: dt.timedelta,
               max_cloud: float) -> tuple[list[Pair], list[dict]]:
    """Pair each S1 acquisition with the nearest S2 acquisition within ``max_gap`` and cloud cover
    <= ``max_cloud`` percent (ties: lower cloud cover). Returns ``(pairs, skipped rows)``; skipped
    rows (:data:`SKIP_COLUMNS`) name the items and why (too cloudy, no cloud cover, no S2 in time).
    """
    if max_gap < dt.timedelta(0):
        raise ValueError(f"max_gap must be >= 0, got {max_gap}")
    if not 0 <= max_cloud <= 100:
        raise ValueError(f"max_cloud must be a percentage in [0, 100], got {max_cloud}")
    skipped: list[dict] = []
    usable: list[Acquisition] = []
    for a in s2:
        if a.cloud_cover is None and max_cloud < 100:
            reason = f"no eo:cloud_cover (needed for max_cloud={max_cloud:g})"
        elif a.cloud_cover is not None and a.cloud_cover > max_cloud:
            reason = f"eo:cloud_cover {a.cloud_cover:g} > max_cloud {max_cloud:g}"
        else:
            usable.append(a)
            continue
        skipped += [_skip_row(i, reason) for i in a.items]
    pairs: list[Pair] = []
    used: set[tuple[str, ...]] = set()
    for a in s1:
        cands = [b for b in usable if abs(b.datetime - a.datetime) <= max_gap]
        if not cands:
            skipped += [_skip_row(i, f"no usable Sentinel-2 within {max_gap} of this Sentinel-1 acquisition")
                        for i in a.items]
            continue
        best = min(cands, key=lambda b: (abs(b.datetime - a.datetime), b.cloud_cover or 0.0, b.item_ids))
        used.add(best.item_ids)
        pairs.append(Pair(s1=a, s2=best))
    for b in usable:
        if b.item_ids not in used:
            skipped += [_skip_row(i, f"no Sentinel-1 within {max_gap} of this Sentinel-2 acquisition") for i in b.items]
    return pairs, skipped


def _skip_row(item: pystac.Item, reason: str) -> dict:
    return {"item_id": item.id, "collection": item.collection_id, "datetime": item_time(item).isoformat(),
            "reason": reason}
