"""Where Sen1Floods11 files live: the official bucket layout and the short developer layout.

Official bucket (``gs://sen1floods11/``), mirrored locally under a *root*::

    <root>/v1.1/data/flood_events/HandLabeled/<Layer>/<Event>_<id>_<Layer>.tif
    <root>/v1.1/data/flood_events/WeaklyLabeled/<Layer>/<Event>_<id>_<Layer>.tif
    <root>/v1.1/data/perm_water/{S1Perm,JRCPerm}/...
    <root>/v1.1/splits/flood_handlabeled/flood_{train,valid,test,bolivia}_data.csv
    <root>/v1.1/Sen1Floods11_Metadata.geojson
    <root>/v1.0/data/flood_events/WeaklyLabeled/S2_NoQC/<Event>_<id>_S2.tif   (weak-chip S2)

Weak-chip Sentinel-2 is not in ``gs://sen1floods11``: it is the v1.0 release's ``S2_NoQC/`` folder
in the older ``gs://cnn_chips`` bucket, whose objects follow v1.0 naming ``<Event>_<id>_S2.tif``.
The ``v1.0/...`` folder above is where floodnb mirrors it locally; file names are kept as in the bucket.

A root may also *be* the ``v1.1`` folder itself (what ``gsutil rsync gs://sen1floods11/v1.1 .``
gives). The short developer layout (``../shared/data/sen1floods11``) drops the prefixes::

    <root>/HandLabeled/<Layer>/<Event>_<id>_<Layer>.tif
    <root>/splits/flood_*_data.csv
    <root>/Sen1Floods11_Metadata.geojson

Every function here is pure path arithmetic; nothing touches the disk except :func:`detect`.
Writers (the simulator, the downloader) and readers (the catalog) all go through this module,
so a layout change happens in one place.
"""

from __future__ import annotations

from pathlib import Path

from floodnb.bands import LAYERS

V11 = "v1.1"
V10 = "v1.0"
SPLIT_NAMES: tuple[str, ...] = ("train", "valid", "test", "bolivia")
METADATA_FILE = "Sen1Floods11_Metadata.geojson"
#: Optional per-chip dates (chip_id, s1_date, s2_date): floodnb's simulator writes it, Sen1Floods11 has none.
CHIP_DATES_FILE = "floodnb_chip_dates.csv"
#: Folder of weak-chip Sentinel-2 in the v1.0 bucket ``gs://cnn_chips`` (no quality control).
V10_WEAK_S2_FOLDER = "S2_NoQC"
#: v1.0 layer suffix of those files: ``gs://cnn_chips/S2_NoQC/<Event>_<id>_S2.tif``.
V10_WEAK_S2_SUFFIX = "S2"

_GROUP_DIR = {"hand": "HandLabeled", "weak": "WeaklyLabeled"}


def split_csv_name(split: str) -> str:
    """File name of a hand-labelled split CSV, e.g. ``flood_train_data.csv``."""
    if split not in SPLIT_NAMES:
        raise ValueError(f"split must be one of {SPLIT_NAMES}, got {split!r}")
    return f"flood_{split}_data.csv"


def chip_file_name(chip_id: str, layer: str) -> str:
    """``<Event>_<id>_<Layer>.tif`` (v1.1 naming) for a layer in :data:`floodnb.bands.LAYERS`.

    ``S2Weak`` keeps the v1.0 bucket name ``<Event>_<id>_S2.tif``.
    """
    if layer not in LAYERS:
        raise ValueError(f"unknown layer {layer!r}; expected one of {sorted(LAYERS)}")
    if layer == "S2Weak":
        return f"{chip_id}_{V10_WEAK_S2_SUFFIX}.tif"
    return f"{chip_id}_{layer}.tif"


def layer_dir(root: str | Path, layer: str, *, layout: str = "official") -> Path:
    """Folder holding ``layer`` under ``root`` for ``layout`` in {"official", "v1.1", "short"}.

    ``official``: root is the bucket mirror (contains ``v1.1/``); ``v1.1``: root is the v1.1
    folder itself; ``short``: the developer sample layout.
    """
    root = Path(root)
    spec = LAYERS[layer]
    group = "hand" if spec.group == "truth" else spec.group
    if layout == "short":
        return root / _GROUP_DIR[group] / layer
    if layer == "S2Weak":
        base = root / V10 if layout == "official" else root.parent / V10
        return base / "data" / "flood_events" / "WeaklyLabeled" / V10_WEAK_S2_FOLDER
    base = root / V11 if layout == "official" else root
    return base / "data" / "flood_events" / _GROUP_DIR[group] / layer


def truth_dir(root: str | Path, layer: str, group: str, *, layout: str = "official") -> Path:
    """Folder of a simulator truth layer for chips of ``group`` ("hand" or "weak")."""
    root = Path(root)
    if layout == "short":
        return root / _GROUP_DIR[group] / layer
    base = root / V11 if layout == "official" else root
    return base / "data" / "flood_events" / _GROUP_DIR[group] / layer


def splits_dir(root: str | Path, *, layout: str = "official") -> Path:
    root = Path(root)
    if layout == "short":
        return root / "splits"
    base = root / V11 if layout == "official" else root
    return base / "splits" / "flood_handlabeled"


def metadata_path(root: str | Path, *, layout: str = "official") -> Path:
    root = Path(root)
    if layout == "short":
        return root / METADATA_FILE
    base = root / V11 if layout == "official" else root
    return base / METADATA_FILE


def chip_dates_path(root: str | Path, *, layout: str = "official") -> Path:
    """Optional per-chip dates table (:data:`CHIP_DATES_FILE`) beside the event metadata GeoJSON.

    Not part of Sen1Floods11 (whose dates are per event): floodnb's simulator writes it, and
    :func:`floodnb.data.catalog.build_catalog` uses it where present.
    """
    return metadata_path(root, layout=layout).with_name(CHIP_DATES_FILE)


#: layout name -> (marker folders relative to a root, how a message describes them); any marker present
#: means the root holds that layout.
_MARKERS: dict[str, tuple[tuple[str, ...], str]] = {
    "official": ((f"{V11}/data", f"{V11}/splits"), f"'{V11}/data' or '{V11}/splits' (official bucket mirror)"),
    "v1.1": (("data/flood_events", "splits/flood_handlabeled"),
             "'data/flood_events' or 'splits/flood_handlabeled' (a root that is the v1.1 folder)"),
    "short": (("HandLabeled", "WeaklyLabeled", "splits"),
              "'HandLabeled/', 'WeaklyLabeled/' or 'splits/' (short layout)"),
}


def describe_layout(name: str) -> str:
    """The marker folders of layout ``name`` in words (for messages)."""
    return _MARKERS[name][1]


def present_layouts(root: str | Path) -> list[str]:
    """Every layout whose marker folders exist under ``root`` (in :data:`_MARKERS` order; may be empty).

    A ``splits/`` folder holding ``flood_handlabeled/`` counts for the "v1.1" layout only.
    """
    root = Path(root)
    found = []
    for name, (markers, _) in _MARKERS.items():
        hits = [m for m in markers if (root / m).is_dir()]
        if name == "short" and hits == ["splits"] and (root / "splits" / "flood_handlabeled").is_dir():
            continue  # the v1.1 layout's splits/ folder, not a short-layout one
        if hits:
            found.append(name)
    return found


def detect(root: str | Path) -> str:
    """The layout of an existing root: "official", "v1.1" or "short".

    Raises FileNotFoundError naming the root when it is missing, ValueError when it holds
    none of the known layouts, and ValueError naming the folder and every layout found when it
    holds more than one (e.g. a simulation written beside a real short-layout dataset): the
    catalog would otherwise show the chips of one layout only, silently.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"data root {str(root)!r} does not exist or is not a folder")
    found = present_layouts(root)
    if len(found) > 1:
        what = "; ".join(f"{name!r}: {_MARKERS[name][1]}" for name in found)
        raise ValueError(f"data root {str(root)!r} holds more than one Sen1Floods11 layout ({what}); "
                         "a catalog would show only one of them. Keep one dataset per folder (move the other "
                         "one out) or pass layout= explicitly")
    if found:
        return found[0]
    raise ValueError(
        f"data root {str(root)!r} holds no Sen1Floods11 layout: expected 'v1.1/data/flood_events', "
        "'data/flood_events' or 'HandLabeled/' inside it"
    )
