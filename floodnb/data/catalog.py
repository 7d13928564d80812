"""The chip catalog: one row per Sen1Floods11 chip found under a data root.

Sen1Floods11 (Bonafilia et al., CVPR Workshops 2020) stores one GeoTIFF per chip and layer.
:func:`build_catalog` scans the layer folders of a root in any layout
:mod:`floodnb.data.layout` knows ("official" bucket mirror with ``v1.1/`` and ``v1.0/``, a
root that *is* ``v1.1``, or the "short" developer layout), and returns a DataFrame:

* ``chip_id`` (``"<Event>_<id>"``), ``event`` (the chip-name prefix, e.g. ``"Mekong"``),
  ``split`` (train/valid/test/bolivia from the split CSVs; ``"unassigned"`` for a hand chip no
  CSV names; ``"weak"`` for weakly labelled chips), ``group`` ("hand" / "weak");
* ``<role>_path`` for every role in :data:`floodnb.bands.ROLES` — an absolute path string, or
  None where that layer is absent (absence is visible, not an error);
* event metadata joined from ``Sen1Floods11_Metadata.geojson``: ``location``, ``iso_cc``,
  ``s1_date``, ``s2_date`` (ISO strings or None), ``orbit``, ``vh_thresh``; where the optional
  per-chip dates table (``floodnb_chip_dates.csv``, written by floodnb's simulator) lists a chip
  with a date, that date replaces the event's (real Sen1Floods11 has only event dates);
* ``lat``, ``lon``: chip centre in degrees, from the header of the first raster present.

Split CSVs naming chips that are not on disk are normal (a partial download):
:func:`missing_report` lists them. Nothing here reads pixels.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from floodnb.bands import LAYERS, ROLES
from floodnb.chip_ids import decode_split_csv, split_csv_chips
from floodnb.data import layout as lay
from floodnb.data.metadata import chip_event, event_key, raster_center, read_chip_dates, read_event_metadata
from floodnb.io_utils import atomic_path, is_temporary_name

#: Split value of hand chips named by no split CSV.
UNASSIGNED = "unassigned"
WEAK = "weak"
PATH_COLUMNS: tuple[str, ...] = tuple(f"{r}_path" for r in ROLES)
META_COLUMNS: tuple[str, ...] = ("location", "iso_cc", "s1_date", "s2_date", "orbit", "vh_thresh", "lat", "lon")
COLUMNS: tuple[str, ...] = ("chip_id", "event", "split", "group", *PATH_COLUMNS, *META_COLUMNS)
LAYOUTS: tuple[str, ...] = ("official", "v1.1", "short")

#: Layer folders scanned per group (truth layers are simulator output, in either group).
_GROUP_LAYERS: dict[str, tuple[str, ...]] = {
    g: tuple(name for name, spec in LAYERS.items() if spec.group in (g, "truth")) for g in ("hand", "weak")
}


def _layer_folder(root: Path, layer: str, group: str, layout: str) -> Path:
    if LAYERS[layer].group == "truth":
        return lay.truth_dir(root, layer, group, layout=layout)
    return lay.layer_dir(root, layer, layout=layout)


def _chip_id_from_name(name: str, layer: str) -> str | None:
    """Chip id of a file name in ``layer``'s folder, None for files that are not chips."""
    if is_temporary_name(name) or name.startswith("."):
        return None
    suffix = lay.chip_file_name("X", layer)[1:]  # "_<Layer>.tif"
    if name.endswith(suffix) and len(name) > len(suffix) and not name[: -len(suffix)].endswith("_"):
        return name[: -len(suffix)]
    if layer == "S2Weak" and name.lower().endswith((".tif", ".tiff")):
        # v1.0 weak-chip S2 is <chip>_S2.tif in gs://cnn_chips; accept other mirrors' names (<chip>_S2_NoQC.tif):
        # take "<Event>_<id>" from the first two tokens.
        parts = name.rsplit(".", 1)[0].split("_")
        if len(parts) >= 2 and parts[1]:
            return f"{parts[0]}_{parts[1]}"
    return None


def _scan(root: Path, layout: str) -> dict[tuple[str, str], dict[str, str]]:
    """(group, chip_id) -> {role: path} for every chip file under ``root``."""
    found: dict[tuple[str, str], dict[str, str]] = {}
    for group, layers in _GROUP_LAYERS.items():
        for layer in layers:
            folder = _layer_folder(root, layer, group, layout)
            if not folder.is_dir():
                continue
            role = LAYERS[layer].role
            with os.scandir(folder) as it:
                names = sorted(e.name for e in it if e.is_file())
            for name in names:
                cid = _chip_id_from_name(name, layer)
                if cid is None:
                    continue
                paths = found.setdefault((group, cid), {})
                if role in paths:  # two files of one role (e.g. S2 under two names): keep the first
                    continue
                paths[role] = str((folder / name).resolve())
    return found


def read_split_csv(path: str | Path) -> list[str]:
    """Chip ids named in a Sen1Floods11 split CSV (``<chip>_S1Hand.tif,<chip>_LabelHand.tif``, CRLF).

    The first column's file name minus its ``_<Layer>.tif`` suffix is the chip id. Blank lines
    are skipped; raises ValueError naming the file and line for a row that names no chip file,
    and naming the file for a binary (NUL bytes) or non-UTF-8 file.
    """
    path = Path(path)
    return split_csv_chips(decode_split_csv(path.read_bytes(), str(path)), str(path))


def read_splits(root: str | Path, *, layout: str = "auto") -> dict[str, str]:
    """chip_id -> split from the split CSVs present under ``root`` (missing CSVs are skipped).

    Raises ValueError naming both CSVs when one chip is listed in two splits.
    """
    root = Path(root)
    layout = lay.detect(root) if layout == "auto" else layout
    sdir = lay.splits_dir(root, layout=layout)
    out: dict[str, str] = {}
    where: dict[str, Path] = {}
    for split in lay.SPLIT_NAMES:
        csv = sdir / lay.split_csv_name(split)
        if not csv.is_file():
            continue
        for cid in read_split_csv(csv):
            if cid in out and out[cid] != split:
                raise ValueError(f"chip {cid!r} is listed in two splits: {where[cid]} and {csv}")
            out[cid], where[cid] = split, csv
    return out


def build_catalog(root: str | Path, *, layout: str = "auto", with_center: bool = True) -> pd.DataFrame:
    """Scan ``root`` and return the chip catalog (columns :data:`COLUMNS`, one row per chip).

    ``layout``: "auto" (:func:`floodnb.data.layout.detect`) or one of :data:`LAYOUTS`.
    ``with_center``: read each chip's first raster header for ``lat``/``lon`` (NaN otherwise).
    Rows are sorted by group (hand first), split, chip_id. ``df.attrs`` records ``root`` and
    ``layout``. Raises FileNotFoundError for a missing root, ValueError for a root with no
    Sen1Floods11 layout or no chip files (naming the folders searched).
    """
    root = Path(root).resolve()
    if layout == "auto":
        layout = lay.detect(root)
    elif layout not in LAYOUTS:
        raise ValueError(f"layout must be 'auto' or one of {LAYOUTS}, got {layout!r}")
    elif not root.is_dir():
        raise FileNotFoundError(f"data root {str(root)!r} does not exist or is not a folder")
    found = _scan(root, layout)
    if not found:
        searched = sorted({str(_layer_folder(root, layer, g, layout)) for g, ls in _GROUP_LAYERS.items()
                           for layer in ls if LAYERS[layer].group != "truth"})
        raise ValueError(f"no Sen1Floods11 chip files (<Event>_<id>_<Layer>.tif) under {str(root)!r} "
                         f"(layout {layout!r}); looked in: {', '.join(searched)}")
    splits = read_splits(root, layout=layout)
    meta_path = lay.metadata_path(root, layout=layout)
    meta = read_event_metadata(meta_path) if meta_path.is_file() else None
    dates_path = lay.chip_dates_path(root, layout=layout)
    chip_dates = read_chip_dates(dates_path) if dates_path.is_file() else None

    rows = []
    for (group, cid), paths in found.items():
        event = chip_event(cid)
        row: dict[str, object] = {
            "chip_id": cid, "event": event, "group": group,
            "split": (splits.get(cid, UNASSIGNED) if group == "hand" else WEAK),
        }
        for role in ROLES:
            row[f"{role}_path"] = paths.get(role)
        key = event_key(event)
        m = meta.loc[key] if meta is not None and key in meta.index else None
        for col in ("location", "iso_cc", "s1_date", "s2_date", "orbit", "vh_thresh"):
            row[col] = None if m is None else m[col]
        if chip_dates is not None and cid in chip_dates.index:
            for col in ("s1_date", "s2_date"):
                value = chip_dates.at[cid, col]
                if isinstance(value, str):  # an empty cell (None/NaN) keeps the event's date
                    row[col] = value
        lat = lon = np.nan
        if with_center:
            first = next(p for r in ROLES if (p := paths.get(r)) is not None)
            lat, lon = raster_center(first)
        row["lat"], row["lon"] = lat, lon
        rows.append(row)

    df = pd.DataFrame(rows, columns=list(COLUMNS))
    order = {"hand": 0, "weak": 1}
    split_order = {s: i for i, s in enumerate((*lay.SPLIT_NAMES, UNASSIGNED, WEAK))}
    df = df.assign(_g=df["group"].map(order), _s=df["split"].map(split_order))
    df = df.sort_values(["_g", "_s", "chip_id"]).drop(columns=["_g", "_s"]).reset_index(drop=True)
    df = _typed(df)
    if meta is None:
        warnings.warn(f"no event metadata at {meta_path}: s1_date/s2_date/vh_thresh are None", stacklevel=2)
    df.attrs.update(root=str(root), layout=layout)
    return df


def _typed(df: pd.DataFrame) -> pd.DataFrame:
    """Object columns keep None for missing strings; lat/lon/vh_thresh float."""
    df = df.copy()
    for col in df.columns:
        if col in ("lat", "lon", "vh_thresh"):
            df[col] = pd.to_numeric(df[col], errors="raise").astype("float64")
        else:
            vals = [None if (v is None or (isinstance(v, float) and np.isnan(v))) else str(v) for v in df[col]]
            df[col] = pd.Series(vals, index=df.index, dtype=object)
    return df


def missing_report(root: str | Path, *, layout: str = "auto", catalog: pd.DataFrame | None = None) -> pd.DataFrame:
    """Chips named by the split CSVs whose S1Hand and/or LabelHand file is not on disk.

    Columns ``chip_id``, ``split``, ``missing`` (comma-separated layer names). A partial
    download (e.g. the 8-of-446 developer sample) is normal; this only reports it.
    """
    root = Path(root)
    layout = lay.detect(root) if layout == "auto" else layout
    if catalog is None:
        catalog = build_catalog(root, layout=layout, with_center=False)
    hand = catalog[catalog["group"] == "hand"].set_index("chip_id")
    rows = []
    for cid, split in read_splits(root, layout=layout).items():
        missing = []
        for role, layer in (("s1", "S1Hand"), ("label", "LabelHand")):
            if cid not in hand.index or hand.at[cid, f"{role}_path"] is None:
                missing.append(layer)
        if missing:
            rows.append({"chip_id": cid, "split": split, "missing": ",".join(missing)})
    return pd.DataFrame(rows, columns=["chip_id", "split", "missing"]).astype(object)


def summarize(catalog: pd.DataFrame) -> pd.DataFrame:
    """Chip counts per (split, group) and per layer role present; one row per (split, group)."""
    cols = [c for c in PATH_COLUMNS if c in catalog.columns]
    present = catalog[cols].notna().astype(int)
    present.columns = [c[: -len("_path")] for c in cols]
    table = pd.concat([catalog[["split", "group"]], present], axis=1)
    out = table.groupby(["split", "group"], sort=False).sum()
    out.insert(0, "chips", table.groupby(["split", "group"], sort=False).size())
    return out.reset_index()


def write_catalog(catalog: pd.DataFrame, path: str | Path) -> Path:
    """Write the catalog as CSV atomically (None -> empty cell); returns ``Path(path)``."""
    path = Path(path)
    with atomic_path(path) as tmp:
        catalog.to_csv(tmp, index=False)
    return path


def read_catalog(path: str | Path) -> pd.DataFrame:
    """Read a catalog CSV written by :func:`write_catalog`; empty cells become None.

    Raises ValueError naming the file when a column of :data:`COLUMNS` is missing.
    """
    path = Path(path)
    df = pd.read_csv(path, dtype=object, keep_default_na=False, na_values=[""])
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{path}: not a floodnb catalog, missing columns {missing}")
    return _typed(df)
