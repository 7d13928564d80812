"""Paired Sentinel-1/Sentinel-2 pools from STAC, written as Sen1Floods11 weak chips.

Cross-modal distillation (Garg et al. 2023, arXiv 2302.08180) needs a large *paired* pool the
Sentinel-2 teacher can label; Sen1Floods11 v1.1 ships no S2 for its weak chips. :func:`build_pool`

1. searches a STAC API or static catalog for S1 and S2 items over ``bbox`` in ``[start, end]``
   (:mod:`floodnb.scale.stac_search`), pairs coincident acquisitions (``max_gap``,
   ``max_cloud`` on ``eo:cloud_cover``);
2. loads each pair lazily with ``odc.stac.load`` (dask chunks of one chip) on one common grid
   (``crs``, ``resolution``; default EPSG:4326 at ~10 m like Sen1Floods11), mosaicking the items
   of one pass;
3. cuts ``chip x chip`` pixel chips (512 like Sen1Floods11; partial edge chips are dropped),
   converts S1 to dB float32 (NaN nodata) and S2 to 13-band L1C-like int16 reflectance x 10000
   (0 nodata; an absent B10 is written as 0 and recorded) (:mod:`floodnb.scale.collections`);
4. writes chips with at least ``min_valid`` valid pixels in both sensors in the weak group of the
   official layout (``v1.1/.../WeaklyLabeled/S1Weak/<chip>_S1Weak.tif`` and the v1.0
   ``S2_NoQC`` folder), merges one feature per pair into ``Sen1Floods11_Metadata.geojson``
   (location = event name, s1_date, s2_date, orbit), and writes ``stac_pool_manifest.csv`` and
   ``stac_pool_skipped.csv`` beside them. :func:`floodnb.data.catalog.build_catalog` then lists
   the chips with ``group == "weak"`` and both ``s1_path`` and ``s2_path``.

Chip ids are ``<prefix><YYYYMMDD><pass>_<n>``, e.g. ``STAC20230301a_5`` (event = S1 date and
pass letter a, b, ... within that day; n = chip index ``row * n_cols + col``). Every file is written
atomically; existing chips are kept (a re-run
resumes) unless ``overwrite=True``. Items missing a required asset are skipped and reported
(``on_missing="skip"``) or raise ``ValueError`` naming the item (``on_missing="error"``).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from floodnb.bands import LAYERS, S1_BANDS, S2_BANDS
from floodnb.data import layout as lay
from floodnb.geotiff import write_geotiff
from floodnb.io_utils import atomic_path, atomic_write_text
from floodnb.scale.collections import (
    DEFAULT_RESOLUTION_DEG,
    DEFAULT_S1_COLLECTION,
    DEFAULT_S2_COLLECTION,
    DEFAULT_STAC_URL,
    resolve_assets,
    s1_to_db,
    s1_units_of,
    s2_dn_transform,
    s2_to_l1c_dn,
)
from floodnb.scale.stac_search import (
    SKIP_COLUMNS,
    Acquisition,
    Pair,
    check_bbox,
    find_pairs,
    group_acquisitions,
    search_items,
)

MANIFEST_FILE = "stac_pool_manifest.csv"
SKIPPED_FILE = "stac_pool_skipped.csv"
MANIFEST_COLUMNS: tuple[str, ...] = (
    "chip_id", "event", "status", "row", "col", "west", "south", "east", "north",
    "s1_items", "s2_items", "s1_datetime", "s2_datetime", "gap_hours", "s2_cloud_cover", "orbit",
    "s1_units", "s2_absent_bands", "s1_valid_fraction", "s2_valid_fraction", "s1_path", "s2_path",
)
STATUSES: tuple[str, ...] = ("written", "existing", "low_valid")


@dataclass(frozen=True)
class PoolResult:
    """What :func:`build_pool` did: one manifest row per chip position, skipped items, pairs."""

    root: Path
    manifest: pd.DataFrame
    skipped: pd.DataFrame
    pairs: tuple[Pair, ...]

    @property
    def written(self) -> pd.DataFrame:
        return self.manifest[self.manifest["status"].isin(("written", "existing"))]


def _check_assets(acqs: Sequence[Acquisition], sensor: str, *, on_missing: str) -> tuple[list[Acquisition], list[dict]]:
    """Drop items missing a required asset (report rows), or raise for ``on_missing="error"``."""
    kept, skipped = [], []
    for a in acqs:
        good = []
        for item in a.items:
            _, _, missing = resolve_assets(item, sensor)
            if not missing:
                good.append(item)
                continue
            href = item.get_self_href() or "(no self link)"
            msg = (f"STAC item {item.id!r} ({item.collection_id}, {href}) has no asset for "
                   f"{sensor.upper()} band(s) {missing}; assets present: {sorted(item.assets)}")
            if on_missing == "error":
                raise ValueError(msg)
            skipped.append({"item_id": item.id, "collection": item.collection_id,
                            "datetime": a.datetime.isoformat(), "reason": f"missing asset(s) for band(s) {missing}"})
            warnings.warn(msg + " -- skipped", stacklevel=3)
        if good:
            kept.append(Acquisition(sensor=a.sensor, collection=a.collection, items=tuple(good), datetime=a.datetime,
                                    cloud_cover=a.cloud_cover, orbit=a.orbit))
    return kept, skipped


def _geobox(bbox: tuple[float, float, float, float], *, crs: str, resolution: float):
    from odc.geo import geom
    from odc.geo.geobox import GeoBox

    poly = geom.box(*bbox, "EPSG:4326")
    if str(crs).upper() != "EPSG:4326":
        poly = poly.to_crs(crs)
    return GeoBox.from_geopolygon(poly, resolution=resolution, crs=crs)


def _load(acq: Acquisition, *, sensor: str, geobox, chip: int, patch_url: Callable | None):
    """Lazy ``odc.stac.load`` of one acquisition: Dataset of asset variables ``(y, x)`` + band keys."""
    import odc.stac

    keys, absent, _ = resolve_assets(acq.items[0], sensor)
    for item in acq.items[1:]:
        k, a, _ = resolve_assets(item, sensor)
        absent = sorted(set(absent) | set(a))
        keys = {b: v for b, v in keys.items() if b not in a}
        if any(k[b] != keys[b] for b in keys if b in k):
            raise ValueError(f"items {acq.item_ids} of one {sensor.upper()} pass name their assets differently")
    ds = odc.stac.load(list(acq.items), bands=sorted(set(keys.values())), geobox=geobox, groupby="solar_day",
                       chunks={"x": chip, "y": chip}, resampling="bilinear" if sensor == "s1" else "nearest",
                       patch_url=patch_url)
    if ds.sizes.get("time", 0) != 1:
        raise ValueError(f"{sensor.upper()} items {acq.item_ids} loaded as {ds.sizes.get('time', 0)} time steps, "
                         "expected one mosaic")
    ds = ds.isel(time=0)
    if "latitude" in ds.dims:  # odc names geographic dims latitude/longitude
        ds = ds.rename({"latitude": "y", "longitude": "x"})
    return ds, keys, absent


def _nodata(var) -> float | None:
    nd = var.attrs.get("nodata")
    return None if nd is None else float(nd)


def _event_names(pairs: Sequence[Pair], prefix: str) -> list[str]:
    names: list[str] = []
    seen: dict[str, int] = {}
    for p in pairs:
        day = p.s1.datetime.strftime("%Y%m%d")
        seen[day] = seen.get(day, 0) + 1
        names.append(f"{prefix}{day}{_letters(seen[day])}")
    return names


def _letters(k: int) -> str:
    """1 -> "a", 26 -> "z", 27 -> "aa" (pass number within a day, kept alphanumeric for event keys)."""
    out = ""
    while k > 0:
        k, r = divmod(k - 1, 26)
        out = chr(ord("a") + r) + out
    return out


def _write_tif(path: Path, data: np.ndarray, *, crs, transform, nodata, descriptions: Sequence[str]) -> None:
    """``(C, H, W)`` -> a deflate-compressed tiled GeoTIFF (blocks of at most 256 px), atomically."""
    write_geotiff(path, data, crs=crs, transform=transform, nodata=nodata, descriptions=descriptions,
                  compress="deflate", tiled=True, blockxsize=min(256, _block(data.shape[2])),
                  blockysize=min(256, _block(data.shape[1])))


def _block(n: int) -> int:
    return max(16, 1 << (max(n, 16).bit_length() - 1)) if n % 16 else n


def build_pool(
    *,
    bbox: Sequence[float],
    start: str | dt.date | dt.datetime,
    end: str | dt.date | dt.datetime,
    out_root: str | Path,
    stac: str = DEFAULT_STAC_URL,
    s1_collection: str = DEFAULT_S1_COLLECTION,
    s2_collection: str = DEFAULT_S2_COLLECTION,
    max_gap_hours: float = 72.0,
    max_cloud: float = 20.0,
    chip: int = 512,
    resolution: float = DEFAULT_RESOLUTION_DEG,
    crs: str = "EPSG:4326",
    min_valid: float = 0.5,
    event_prefix: str = "STAC",
    s1_units: str = "auto",
    on_missing: str = "skip",
    modifier: Callable | None = None,
    patch_url: Callable[[str], str] | None = None,
    max_pairs: int | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> PoolResult:
    """Build a paired S1/S2 pool under ``out_root`` (see the module docstring).

    ``bbox``: (west, south, east, north) degrees. ``start``/``end``: ISO dates (inclusive).
    ``stac``: STAC API or static catalog URL/path (public default: Planetary Computer, whose
    assets need signing: pass ``modifier=planetary_computer.sign_inplace``). ``max_gap_hours``:
    largest |t_S2 - t_S1|; ``max_cloud``: largest ``eo:cloud_cover`` (percent) of an S2 pass.
    ``chip``: chip side in pixels; ``resolution``: pixel size in ``crs`` units (degrees for
    EPSG:4326). ``min_valid``: fraction of valid pixels both sensors need for a chip to be
    written. ``s1_units``: "auto" (from the collection id), "db", "linear" or "amplitude".
    ``on_missing``: "skip" (report) or "error" for items missing a required asset.
    Returns a :class:`PoolResult`; the manifest and skipped report are also written as CSV.
    """
    bbox = check_bbox(bbox)
    _check_pool_arguments(chip=chip, min_valid=min_valid, on_missing=on_missing, event_prefix=event_prefix)
    units = s1_units_of(s1_collection, s1_units)
    root = Path(out_root)
    layout = _pool_layout(root)

    geobox = _geobox(bbox, crs=crs, resolution=resolution)
    ny, nx = geobox.shape[0] // chip, geobox.shape[1] // chip
    if ny == 0 or nx == 0:
        raise ValueError(f"bbox {bbox} is {geobox.shape[0]}x{geobox.shape[1]} pixels at resolution {resolution}; "
                         f"smaller than one {chip}x{chip} chip")
    pairs, skipped = _search_pairs(stac, bbox=bbox, start=start, end=end, s1_collection=s1_collection,
                                   s2_collection=s2_collection, modifier=modifier, on_missing=on_missing,
                                   max_gap_hours=max_gap_hours, max_cloud=max_cloud)
    if max_pairs is not None:
        pairs = pairs[:max_pairs]

    rows: list[dict] = []
    events = _event_names(pairs, event_prefix)
    from tqdm.auto import tqdm

    bar = tqdm(total=len(pairs) * ny * nx, desc="pool chips", unit="chip", disable=not progress)
    try:
        for pair, event in zip(pairs, events, strict=True):
            rows += _write_pair(pair, event, root=root, layout=layout, geobox=geobox, chip=chip, ny=ny, nx=nx,
                                units=units, min_valid=min_valid, patch_url=patch_url, overwrite=overwrite, bar=bar)
    finally:
        bar.close()
    manifest = pd.DataFrame(rows, columns=list(MANIFEST_COLUMNS))
    skipped_df = pd.DataFrame(skipped, columns=list(SKIP_COLUMNS))
    meta_root = root / lay.V11 if layout == "official" else root
    _merge_metadata(lay.metadata_path(root, layout=layout), pairs, events, bbox)
    _merge_csv(meta_root / MANIFEST_FILE, manifest, key="chip_id")
    with atomic_path(meta_root / SKIPPED_FILE) as tmp:
        skipped_df.to_csv(tmp, index=False)
    return PoolResult(root=root, manifest=manifest, skipped=skipped_df, pairs=tuple(pairs))


def _check_pool_arguments(*, chip: int, min_valid: float, on_missing: str, event_prefix: str) -> None:
    """ValueError naming the first bad argument of :func:`build_pool`."""
    if chip < 16:
        raise ValueError(f"chip must be >= 16 pixels, got {chip}")
    if not 0.0 <= min_valid <= 1.0:
        raise ValueError(f"min_valid must be a fraction in [0, 1], got {min_valid}")
    if on_missing not in ("skip", "error"):
        raise ValueError(f"on_missing must be 'skip' or 'error', got {on_missing!r}")
    if not event_prefix.isalnum():
        raise ValueError(f"event_prefix={event_prefix!r}: use letters and digits only (it starts every chip id)")


def _pool_layout(root: Path) -> str:
    """Layout to write the pool in: the root's own, "official" for a new or empty root; ValueError for "short"."""
    layout = lay.detect(root) if root.is_dir() and any(root.iterdir()) else "official"
    if layout == "short":
        raise ValueError(f"out_root {root} holds the short developer layout, which has no weak-chip Sentinel-2 folder; "
                         "write the pool to an official-layout root")
    return layout


def _search_pairs(stac: str, *, bbox, start, end, s1_collection: str, s2_collection: str, modifier,
                  on_missing: str, max_gap_hours: float, max_cloud: float) -> tuple[list[Pair], list]:
    """S1/S2 items of the window searched, grouped into acquisitions and paired:
    ``(pairs, skipped rows of SKIP_COLUMNS)``.
    """
    s1_items = search_items(stac, collection=s1_collection, bbox=bbox, start=start, end=end, modifier=modifier)
    s2_items = search_items(stac, collection=s2_collection, bbox=bbox, start=start, end=end, modifier=modifier)
    s1_acq, skipped = _check_assets(group_acquisitions(s1_items, sensor="s1"), "s1", on_missing=on_missing)
    s2_acq, skipped2 = _check_assets(group_acquisitions(s2_items, sensor="s2"), "s2", on_missing=on_missing)
    pairs, skipped3 = find_pairs(s1_acq, s2_acq, max_gap=dt.timedelta(hours=max_gap_hours), max_cloud=max_cloud)
    skipped += skipped2 + skipped3
    return pairs, skipped


def _write_pair(pair: Pair, event: str, *, root: Path, layout: str, geobox, chip: int, ny: int, nx: int, units: str,
                min_valid: float, patch_url, overwrite: bool, bar) -> list[dict]:
    s1_ds, s1_keys, _ = _load(pair.s1, sensor="s1", geobox=geobox, chip=chip, patch_url=patch_url)
    s2_ds, s2_keys, s2_absent = _load(pair.s2, sensor="s2", geobox=geobox, chip=chip, patch_url=patch_url)
    s2_tf = s2_dn_transform(pair.s2.items[0], s2_keys, collection=pair.s2.collection)
    crs = geobox.crs.to_wkt()
    s1_dir, s2_dir = lay.layer_dir(root, "S1Weak", layout=layout), lay.layer_dir(root, "S2Weak", layout=layout)
    base = {
        "event": event, "s1_items": ";".join(pair.s1.item_ids), "s2_items": ";".join(pair.s2.item_ids),
        "s1_datetime": pair.s1.datetime.isoformat(), "s2_datetime": pair.s2.datetime.isoformat(),
        "gap_hours": pair.gap.total_seconds() / 3600.0, "s2_cloud_cover": pair.s2.cloud_cover,
        "orbit": pair.s1.orbit, "s1_units": units, "s2_absent_bands": ";".join(s2_absent),
    }
    rows = []
    for r in range(ny):
        for c in range(nx):
            cid = f"{event}_{r * nx + c}"
            s1_path = s1_dir / lay.chip_file_name(cid, "S1Weak")
            s2_path = s2_dir / lay.chip_file_name(cid, "S2Weak")
            sub = geobox[r * chip:(r + 1) * chip, c * chip:(c + 1) * chip]
            w, s, e, n = sub.extent.to_crs("EPSG:4326").boundingbox
            row = {"chip_id": cid, "row": r, "col": c, "west": w, "south": s, "east": e, "north": n, **base,
                   "s1_path": str(s1_path), "s2_path": str(s2_path)}
            if s1_path.exists() and s2_path.exists() and not overwrite:
                rows.append({**row, "status": "existing", "s1_valid_fraction": math.nan,
                             "s2_valid_fraction": math.nan})
                bar.update(1)
                continue
            ys, xs = slice(r * chip, (r + 1) * chip), slice(c * chip, (c + 1) * chip)
            s1_raw = s1_ds.isel(y=ys, x=xs)
            s1 = np.stack([s1_to_db(s1_raw[s1_keys[b]].values, units=units, nodata=_nodata(s1_raw[s1_keys[b]]))
                           for b in S1_BANDS])
            s2_raw = s2_ds.isel(y=ys, x=xs)
            s2 = np.zeros((len(S2_BANDS), chip, chip), dtype=np.int16)
            for i, b in enumerate(S2_BANDS):
                if b in s2_keys:
                    var = s2_raw[s2_keys[b]]
                    s2[i] = s2_to_l1c_dn(var.values, scale=s2_tf[b][0], offset=s2_tf[b][1], nodata=_nodata(var))
            s1_valid = float(np.isfinite(s1).all(axis=0).mean())
            present = [i for i, b in enumerate(S2_BANDS) if b in s2_keys]
            s2_valid = float((s2[present] != 0).all(axis=0).mean())
            row.update(s1_valid_fraction=s1_valid, s2_valid_fraction=s2_valid)
            if min(s1_valid, s2_valid) < min_valid or (min_valid == 0 and min(s1_valid, s2_valid) == 0):
                rows.append({**row, "status": "low_valid", "s1_path": None, "s2_path": None})
                bar.update(1)
                continue
            _write_tif(s1_path, s1, crs=crs, transform=sub.transform, nodata=float("nan"), descriptions=S1_BANDS)
            _write_tif(s2_path, s2, crs=crs, transform=sub.transform, nodata=LAYERS["S2Weak"].nodata,
                       descriptions=S2_BANDS)
            rows.append({**row, "status": "written"})
            bar.update(1)
    return rows


def _merge_csv(path: Path, new: pd.DataFrame, *, key: str) -> None:
    """Write ``new`` to ``path`` atomically, keeping old rows whose ``key`` ``new`` does not have."""
    if path.exists():
        old = pd.read_csv(path, dtype={key: str})
        new = pd.concat([old[~old[key].isin(new[key])], new], ignore_index=True) if len(old) else new
    with atomic_path(path) as tmp:
        new.to_csv(tmp, index=False)


def _merge_metadata(path: Path, pairs: Sequence[Pair], events: Sequence[str], bbox) -> None:
    """Add/replace one Sen1Floods11-style event feature per pair in the metadata GeoJSON."""
    doc: dict[str, Any] = {"type": "FeatureCollection", "name": "Sen1Floods11_Metadata", "features": []}
    if path.exists():
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: existing event metadata is not valid JSON ({exc}); fix or move it "
                             "before adding a pool") from exc
        if not isinstance(doc.get("features"), list):
            raise ValueError(f"{path}: existing event metadata is not a GeoJSON FeatureCollection")
    new = set(events)
    feats = [f for f in doc["features"] if f.get("properties", {}).get("location") not in new]
    w, s, e, n = bbox
    for pair, event in zip(pairs, events, strict=True):
        orbit = pair.s1.items[0].properties.get("sat:orbit_state")
        rel = pair.s1.items[0].properties.get("sat:relative_orbit")
        feats.append({"type": "Feature", "properties": {
            "location": event, "s1_date": pair.s1.datetime.strftime("%Y/%m/%d"),
            "s2_date": pair.s2.datetime.strftime("%Y/%m/%d"),
            "orbit": None if orbit is None else str(orbit).upper(), "rel_orbit_num": rel,
            "ISO_CC": None, "ID": None, "VH_thresh": None, "source": "floodnb.scale.stac_pool",
            "s1_items": list(pair.s1.item_ids), "s2_items": list(pair.s2.item_ids),
            "eo:cloud_cover": pair.s2.cloud_cover},
            "geometry": {"type": "Polygon", "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]]}})
    doc["features"] = feats
    atomic_write_text(path, json.dumps(doc, indent=1) + "\n")
