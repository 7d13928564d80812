"""Per-chip metadata: the event of a chip, event dates/orbit/threshold, the chip-centre lat/lon.

Sen1Floods11 (Bonafilia et al., CVPR Workshops 2020) ships event-level metadata in
``Sen1Floods11_Metadata.geojson``: one feature per flood event with properties ``ID``,
``location`` (country, e.g. ``"Cambodia"``, ``"Sri-Lanka"``), ``ISO_CC``, ``s1_date`` and
``s2_date`` (``YYYY/MM/DD``), ``orbit``, ``rel_orbit_num``, ``coincident_size``, ``VH_thresh``
(dB threshold of the Otsu weak labels), ``train_chip``, ``val_chip``. Chips are named
``<Event>_<id>``; the event prefix is the location except for the Cambodian event, whose chips
are prefixed ``Mekong`` (:data:`EVENT_ALIASES`).

Sen1Floods11 has no per-chip dates. floodnb's simulator gives every chip its own acquisition
date within its event's window and writes them to the optional ``floodnb_chip_dates.csv``
(columns :data:`CHIP_DATE_COLUMNS`) beside the GeoJSON; :func:`read_chip_dates` reads it and the
catalog prefers it over the event dates, falling back to them for chips it does not list (and
for real data, which has no such file).

Functions here read only what they need: the GeoJSON with :mod:`json` and a raster's header
(not its pixels) for the chip centre.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd

from floodnb.chip_ids import chip_event  # noqa: F401  (re-exported: the event of a chip id)

#: Chip-name event prefix -> metadata ``location`` where the two differ.
EVENT_ALIASES: dict[str, str] = {"Mekong": "Cambodia"}

#: Columns of :func:`read_event_metadata` (besides the index ``event_key``).
EVENT_COLUMNS: tuple[str, ...] = (
    "location", "iso_cc", "event_number", "s1_date", "s2_date", "orbit", "rel_orbit_num", "vh_thresh",
)

#: Columns of the optional per-chip dates table (:func:`read_chip_dates`).
CHIP_DATE_COLUMNS: tuple[str, ...] = ("chip_id", "s1_date", "s2_date")

_PROPERTY_MAP = {  # geojson property -> column
    "location": "location", "ISO_CC": "iso_cc", "ID": "event_number", "s1_date": "s1_date",
    "s2_date": "s2_date", "orbit": "orbit", "rel_orbit_num": "rel_orbit_num", "VH_thresh": "vh_thresh",
}


def event_key(name: str) -> str:
    """Normalised key joining chip events and metadata locations.

    Lower case, only letters and digits, aliases applied: ``"Mekong"`` and ``"Cambodia"`` ->
    ``"cambodia"``, ``"Sri-Lanka"`` / ``"Sri Lanka"`` -> ``"srilanka"``.
    """
    name = EVENT_ALIASES.get(name, name)
    return re.sub(r"[^0-9a-z]", "", name.lower())


def iso_date(value: object, *, source: str = "metadata") -> str | None:
    """``YYYY/MM/DD`` or ``YYYY-MM-DD`` (optionally with a time) -> ``"YYYY-MM-DD"``; None for empty.

    Raises ValueError naming ``source`` for anything else.
    """
    if value is None or (isinstance(value, float) and np.isnan(value)) or value == "":
        return None
    m = re.match(r"^\s*(\d{4})[/-](\d{1,2})[/-](\d{1,2})", str(value))
    if not m:
        raise ValueError(f"{source}: date {value!r} is not of the form YYYY/MM/DD or YYYY-MM-DD")
    y, mo, d = (int(g) for g in m.groups())
    try:
        return pd.Timestamp(year=y, month=mo, day=d).strftime("%Y-%m-%d")
    except ValueError as exc:
        raise ValueError(f"{source}: date {value!r} is not a calendar date ({exc})") from exc


def read_event_metadata(path: str | Path) -> pd.DataFrame:
    """Read ``Sen1Floods11_Metadata.geojson`` into a DataFrame indexed by :func:`event_key`.

    Columns :data:`EVENT_COLUMNS`; dates as ISO strings; properties a file lacks are None.
    Raises FileNotFoundError naming the file when it is missing, ValueError when it is not a
    GeoJSON FeatureCollection with a ``location`` per feature.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"event metadata {str(path)!r} not found")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not valid JSON ({exc}); expected the Sen1Floods11 event GeoJSON") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("features"), list):
        raise ValueError(f"{path}: expected a GeoJSON FeatureCollection with a 'features' list")
    rows = []
    for i, feat in enumerate(doc["features"]):
        props = feat.get("properties") if isinstance(feat, dict) else None
        if not isinstance(props, dict) or not props.get("location"):
            raise ValueError(f"{path}: feature {i} has no 'location' property")
        row = {col: props[key] if key in props else None for key, col in _PROPERTY_MAP.items()}
        location = str(row["location"])
        row["location"] = location
        for col in ("s1_date", "s2_date"):
            row[col] = iso_date(row[col], source=f"{path} feature {i} {col}")
        for col in ("vh_thresh", "rel_orbit_num"):
            value = row[col]
            row[col] = None if value is None else float(value)
        row["event_key"] = event_key(location)
        rows.append(row)
    df = pd.DataFrame(rows, columns=["event_key", *EVENT_COLUMNS]).astype(object)
    df = df.drop_duplicates("event_key", keep="first").set_index("event_key")
    return df


def read_chip_dates(path: str | Path) -> pd.DataFrame:
    """Per-chip ``s1_date``/``s2_date`` (ISO strings or None) indexed by ``chip_id``, from a CSV.

    The file (``floodnb_chip_dates.csv``, :data:`CHIP_DATE_COLUMNS`) lists a chip once; empty
    cells mean unknown (the event date is used). Raises FileNotFoundError naming a missing
    file, ValueError naming the file for missing columns, duplicate chips or malformed dates.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"chip dates {str(path)!r} not found")
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not a CSV table ({exc}); expected columns {list(CHIP_DATE_COLUMNS)}") from exc
    missing = [c for c in CHIP_DATE_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{path}: missing columns {missing}; expected {list(CHIP_DATE_COLUMNS)}")
    dup = df["chip_id"][df["chip_id"].duplicated()].unique().tolist()
    if dup:
        raise ValueError(f"{path}: chips listed more than once: {dup[:10]}")
    out = df[list(CHIP_DATE_COLUMNS)].copy()
    for col in ("s1_date", "s2_date"):
        out[col] = [iso_date(v or None, source=f"{path} chip {c} {col}") for c, v in zip(out["chip_id"], out[col])]
    return out.set_index("chip_id").astype(object)


def raster_center(path: str | Path) -> tuple[float, float]:
    """Centre ``(lat, lon)`` in degrees (EPSG:4326) of a raster, reading only its header.

    Rasters in another CRS are transformed; raises ValueError naming the file when it has no
    CRS or cannot be opened.
    """
    import rasterio
    from rasterio.warp import transform as warp_transform

    try:
        with rasterio.open(path) as ds:
            b, crs = ds.bounds, ds.crs
    except rasterio.errors.RasterioError as exc:
        raise ValueError(f"{path}: cannot read the raster header ({exc}); expected a GeoTIFF") from exc
    if crs is None:
        raise ValueError(f"{path}: raster has no CRS; expected EPSG:4326 like Sen1Floods11")
    x, y = (b.left + b.right) / 2, (b.bottom + b.top) / 2
    if crs.to_epsg() != 4326:
        xs, ys = warp_transform(crs, "EPSG:4326", [x], [y])
        x, y = xs[0], ys[0]
    return float(y), float(x)


def day_of_year(date: str | None) -> int | None:
    """Day of year (1..366) of an ISO date string, None for None."""
    if date is None or (isinstance(date, float) and np.isnan(date)):
        return None
    return int(pd.Timestamp(date).day_of_year)


def meta_vector(*, date: str | None, lat: float | None, lon: float | None) -> np.ndarray:
    """Teacher-only metadata encoding, float32 (5,).

    ``[sin doy, cos doy, cos lat cos lon, cos lat sin lon, sin lat]`` with ``doy`` the day of
    year mapped to an angle ``2 pi (doy - 1) / 365.25`` and lat/lon as a point on the unit
    sphere — the cyclic date and 3-D position encoding of the spatiotemporal metadata used by
    Bernhard et al. (ECAI 2024). Unknown parts are 0 (date unknown -> first two entries 0;
    position unknown -> last three 0), a point that no real date/position maps to.
    """
    out = np.zeros(5, dtype=np.float32)
    doy = day_of_year(date)
    if doy is not None:
        ang = 2.0 * np.pi * (doy - 1) / 365.25
        out[0], out[1] = np.sin(ang), np.cos(ang)
    if lat is not None and lon is not None and np.isfinite(lat) and np.isfinite(lon):
        la, lo = np.deg2rad(lat), np.deg2rad(lon)
        out[2], out[3], out[4] = np.cos(la) * np.cos(lo), np.cos(la) * np.sin(lo), np.sin(la)
    return out
