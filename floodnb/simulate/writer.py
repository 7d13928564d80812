"""Write a whole simulated dataset in the official Sen1Floods11 bucket layout, streamed to disk.

Layout (all paths from :mod:`floodnb.data.layout`)::

    <out>/v1.1/data/flood_events/HandLabeled/{S1Hand,S2Hand,LabelHand,S1OtsuLabelHand,JRCWaterHand}/
    <out>/v1.1/data/flood_events/HandLabeled/{SimTruthWater,SimTruthClass}/        (truth, not labels)
    <out>/v1.1/data/flood_events/WeaklyLabeled/{S1Weak,S1OtsuLabelWeak,S2IndexLabelWeak}/
    <out>/v1.1/data/flood_events/WeaklyLabeled/{SimTruthWater,SimTruthClass}/
    <out>/v1.0/data/flood_events/WeaklyLabeled/S2_NoQC/<chip>_S2_NoQC.tif        (weak-chip S2)
    <out>/v1.1/splits/flood_handlabeled/flood_{train,valid,test,bolivia}_data.csv
    <out>/v1.1/Sen1Floods11_Metadata.geojson
    <out>/v1.1/floodnb_chip_dates.csv  (per chip S1/S2 dates: floodnb's optional per-chip metadata)
    <out>/floodnb_simulation.json      (seed, configuration, counts, per-event VH thresholds)
    <out>/floodnb_simulation_chips.csv (per chip: split, acquisition (dates, days from the flood
                                        peak, position, level multiplier), water/cloud fractions,
                                        weak-label confusion counts against the truth)

Each chip has its own acquisition date and position (:mod:`floodnb.simulate.acquisition`): the
GeoTIFFs are georeferenced at the chip's position and its dates go to ``floodnb_chip_dates.csv``,
which :func:`floodnb.data.catalog.build_catalog` prefers over the event dates of the GeoJSON.

Chips are generated and written one at a time per worker process (bounded memory), in a
``spawn`` process pool; every chip depends only on its own seed, and the tables are sorted
before writing, so the bytes do not depend on the number of workers or their timing.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from floodnb.bands import S1_BANDS, S2_BANDS
from floodnb.data import layout
from floodnb.data.metadata import CHIP_DATE_COLUMNS
from floodnb.io_utils import atomic_path, atomic_write_text
from floodnb.simulate.acquisition import draw_acquisition
from floodnb.simulate.config import SIM_VERSION, SimConfig
from floodnb.simulate.events import EVENTS, event_by_name, heldout_event, training_events
from floodnb.simulate.geotiff import PIXEL_DEG, chip_transform, write_geotiff
from floodnb.simulate.scene import Chip, chip_seed, event_vh_threshold, simulate_chip

MANIFEST = "floodnb_simulation.json"
#: Written before the first chip and removed after the manifest: marks floodnb's own unfinished output.
INCOMPLETE = ".floodnb_simulation.incomplete"
CHIP_TABLE = "floodnb_simulation_chips.csv"
#: real Sen1Floods11 hand split sizes train/valid/test (252/89/90), used as proportions.
SPLIT_WEIGHTS: tuple[tuple[str, int], ...] = (("train", 252), ("valid", 89), ("test", 90))
WEAK_ID_OFFSET: int = 500000
HAND_ID_OFFSET: int = 100000

HAND_LAYERS = ("S1Hand", "S2Hand", "LabelHand", "S1OtsuLabelHand", "JRCWaterHand")
WEAK_LAYERS = ("S1Weak", "S2Weak", "S1OtsuLabelWeak", "S2IndexLabelWeak")
TRUTH_LAYERS = ("SimTruthWater", "SimTruthClass")


def plan_chips(*, n_hand: int, n_weak: int, seed: int, heldout_fraction: float) -> list[dict]:
    """The chips to write: dicts with chip_id, event, group ("hand"/"weak"), number, split.

    Hand chips: ``round(n_hand * heldout_fraction)`` (at least 1 when n_hand >= 2) from the
    held-out event (split "bolivia"), the rest round-robin over the training events and split
    train/valid/test in Sen1Floods11's proportions by a seeded shuffle. Weak chips: round-robin
    over the training events (the held-out event stays unseen), split "weak".
    """
    if n_hand < 0 or n_weak < 0:
        raise ValueError(f"n_hand and n_weak must be >= 0, got {n_hand}, {n_weak}")
    held = heldout_event()
    train_ev = training_events()
    n_held = int(round(n_hand * heldout_fraction))
    if n_hand >= 2 and heldout_fraction > 0:
        n_held = max(1, n_held)
    chips: list[dict] = []
    for i in range(n_held):
        chips.append(dict(event=held.name, group="hand", number=i, split="bolivia"))
    hand_train = []
    for i in range(n_hand - n_held):
        ev = train_ev[i % len(train_ev)]
        hand_train.append(dict(event=ev.name, group="hand", number=n_held + i, split=None))
    order = np.random.default_rng(np.random.SeedSequence([int(seed), 7])).permutation(len(hand_train))
    total = sum(w for _, w in SPLIT_WEIGHTS)
    cuts = np.cumsum([w for _, w in SPLIT_WEIGHTS]) / total * len(hand_train)
    for rank, j in enumerate(order):
        hand_train[j]["split"] = next(name for (name, _), c in zip(SPLIT_WEIGHTS, cuts) if rank < round(c))
    chips.extend(hand_train)
    for i in range(n_weak):
        ev = train_ev[i % len(train_ev)]
        chips.append(dict(event=ev.name, group="weak", number=WEAK_ID_OFFSET + i, split="weak"))
    for c in chips:
        c["chip_id"] = f"{c['event']}_{(HAND_ID_OFFSET if c['group'] == 'hand' else 0) + c['number']}"
    return chips


def chip_origin(lon: float, lat: float, size: int) -> tuple[float, float]:
    """(lon_west, lat_north) of a ``size`` px chip centred on (lon, lat) degrees."""
    half = size * PIXEL_DEG / 2
    return lon - half, lat + half


def _confusion(pred: np.ndarray, truth: np.ndarray) -> tuple[int, int, int, int]:
    m = pred >= 0
    p = pred[m] == 1
    t = truth[m] == 1
    tp = int(np.count_nonzero(p & t))
    fp = int(np.count_nonzero(p & ~t))
    fn = int(np.count_nonzero(~p & t))
    return tp, fp, fn, int(m.sum()) - tp - fp - fn


def _write_chip(root: Path, item: dict, chip: Chip, transform, compress: str) -> None:
    def w(layer: str, arr: np.ndarray) -> None:
        spec_nodata = {"S1Hand": np.nan, "S1Weak": np.nan, "S2Hand": 0, "S2Weak": 0}.get(layer)
        desc = None
        if arr.ndim == 3:
            desc = S1_BANDS if layer.startswith("S1") else S2_BANDS if layer.startswith("S2") else None
        folder = (layout.truth_dir(root, layer, item["group"]) if layer in TRUTH_LAYERS
                  else layout.layer_dir(root, layer))
        write_geotiff(folder / layout.chip_file_name(item["chip_id"], layer), arr, transform=transform,
                      nodata=spec_nodata, descriptions=desc, compress=compress)

    if item["group"] == "hand":
        w("S1Hand", chip.s1)
        w("S2Hand", chip.s2)
        w("LabelHand", chip.label)
        w("S1OtsuLabelHand", chip.s1_otsu)
        w("JRCWaterHand", chip.jrc)
    else:
        w("S1Weak", chip.s1)
        w("S2Weak", chip.s2)
        w("S1OtsuLabelWeak", chip.s1_otsu)
        w("S2IndexLabelWeak", chip.s2_index)
    w("SimTruthWater", chip.truth_water)
    w("SimTruthClass", chip.truth_class)


def _chip_task(args: tuple) -> dict:
    root, item, config, seed, thresholds = args
    event = event_by_name(item["event"])
    acq = draw_acquisition(seed, event, item["number"], config)
    chip = simulate_chip(chip_id=item["chip_id"], event=event, seq=chip_seed(seed, event, item["number"]),
                         config=config, vh_threshold=thresholds[event.name] if config.otsu_scope == "event" else None,
                         level_multiplier=acq.level_multiplier)
    west, north = chip_origin(acq.lon, acq.lat, config.size)
    _write_chip(Path(root), item, chip, chip_transform(west, north), config.compress)
    row = dict(chip_id=item["chip_id"], event=item["event"], group=item["group"], split=item["split"],
               lon=west + config.size * PIXEL_DEG / 2, lat=north - config.size * PIXEL_DEG / 2,
               s1_date=acq.s1_date, s2_date=acq.s2_date, days_from_peak=acq.days_from_peak,
               cross_km=round(acq.cross_km, 3), level_multiplier=round(acq.level_multiplier, 4),
               incidence_deg=round(chip.incidence_deg, 3), water_level_m=round(chip.water_level_m, 3),
               truth_water_fraction=round(float(chip.truth_water.mean()), 6),
               cloud_fraction=round(chip.cloud_fraction, 6),
               s1_nodata_fraction=round(float(np.isnan(chip.s1[1]).mean()), 6))
    for name, pred in (("s1_otsu", chip.s1_otsu), ("s2_index", chip.s2_index), ("label", chip.label)):
        if name == "label" and item["group"] != "hand":
            continue
        tp, fp, fn, tn = _confusion(pred, chip.truth_water)
        row.update({f"{name}_tp": tp, f"{name}_fp": fp, f"{name}_fn": fn, f"{name}_tn": tn})
    return row


def _threshold_task(args: tuple) -> tuple[str, float]:
    name, config, seed = args
    return name, event_vh_threshold(event_by_name(name), config, seed=seed)


def _metadata(rows: list[dict], thresholds: dict[str, float], size: int) -> dict:
    """The event GeoJSON: one feature per event, its polygon the bounding box of its chips (``rows``:
    chip-table rows with centre ``lon``/``lat``), its dates the event's (peak) dates.
    """
    feats = []
    span = size * PIXEL_DEG
    for ev in sorted(EVENTS, key=lambda e: e.name):
        mine = [c for c in rows if c["event"] == ev.name]
        if mine:
            w = min(c["lon"] for c in mine) - span / 2
            e = max(c["lon"] for c in mine) + span / 2
            n = max(c["lat"] for c in mine) + span / 2
            s = min(c["lat"] for c in mine) - span / 2
        else:
            w, e, s, n = ev.lon - span, ev.lon + span, ev.lat - span, ev.lat + span
        ring = [[w, s], [e, s], [e, n], [w, n], [w, s]]
        props = {
            "coincident_size": float(len(mine)),
            "location": ev.name,
            "orbit": ev.orbit,
            "rel_orbit_num": float(ev.rel_orbit),
            "s1_date": ev.s1_date,
            "s2_date": ev.s2_date,
            "ID": ev.event_id,
            "ISO_CC": ev.iso,
            "VH_thresh": thresholds[ev.name],
            "train_chip": sum(1 for c in mine if c["group"] == "weak"),
            "val_chip": sum(1 for c in mine if c["group"] == "hand"),
        }
        feats.append({"type": "Feature", "properties": props, "geometry": {"type": "Polygon", "coordinates": [ring]}})
    return {"type": "FeatureCollection", "name": "Sen1Floods11_Metadata", "features": feats}


def _prepare_root(root: Path, *, overwrite: bool) -> None:
    """Make ``root`` ready for a simulation: remove the official-layout folders of an unfinished
    or (with ``overwrite``) a finished previous floodnb simulation. Raises NotADirectoryError /
    FileExistsError for a file, a foreign layout, or a dataset floodnb did not simulate.
    """
    if root.exists() and not root.is_dir():
        raise NotADirectoryError(f"simulate_dataset: output {str(root)!r} exists and is not a folder")
    foreign = [name for name in layout.present_layouts(root) if name != "official"] if root.is_dir() else []
    if foreign:  # floodnb only writes the official layout: anything else there is someone's dataset
        raise FileExistsError(f"simulate_dataset: {str(root)!r} holds a Sen1Floods11 layout floodnb did not write "
                              f"({', '.join(repr(f) for f in foreign)}: {layout.describe_layout(foreign[0])}); "
                              "simulating beside it would hide one dataset from the catalog. Choose an empty folder")
    existing = [p for p in (root / layout.V11, root / layout.V10) if p.exists()]
    unfinished = (root / INCOMPLETE).exists() and not (root / MANIFEST).exists()
    if existing and unfinished:  # an interrupted floodnb simulation: its own partial output is redone
        import shutil

        print(f"simulate_dataset: {str(root)!r} holds an unfinished simulation; simulating it again",
              file=sys.stderr)
        for p in existing:
            shutil.rmtree(p)
    elif existing:
        if not overwrite:
            raise FileExistsError(f"simulate_dataset: {str(root)!r} already holds a dataset ({existing[0].name}/); "
                                  "choose an empty folder or pass overwrite=True for a previous simulation")
        if not (root / MANIFEST).exists():
            raise FileExistsError(f"simulate_dataset: {str(root)!r} holds a Sen1Floods11 layout that floodnb did "
                                  f"not simulate (no {MANIFEST}); refusing to overwrite it")
        import shutil
        for p in existing:
            shutil.rmtree(p)


def _simulate_chips(root: Path, chips: list[dict], cfg: SimConfig, *, seed: int, workers: int,
                    progress: bool) -> tuple[list[dict], dict[str, float]]:
    """Event VH thresholds, then every chip written (``workers`` spawned processes, or this one):
    ``(chip table rows, {event: VH threshold dB})``.
    """
    from tqdm.auto import tqdm

    ctx = mp.get_context("spawn")
    pool = ctx.Pool(workers) if workers > 1 else None
    try:
        imap = pool.imap_unordered if pool is not None else map
        thresholds = dict(imap(_threshold_task, [(e.name, cfg, seed) for e in EVENTS]))
        tasks = [(str(root), c, cfg, seed, thresholds) for c in chips]
        rows = []
        it = pool.imap_unordered(_chip_task, tasks, chunksize=2) if pool is not None else map(_chip_task, tasks)
        for row in tqdm(it, total=len(tasks), desc="simulate", unit="chip", disable=not progress):
            rows.append(row)
    finally:
        if pool is not None:
            pool.close()
            pool.join()
    return rows, thresholds


def simulate_dataset(out: str | Path, *, n_hand: int = 240, n_weak: int = 1000, size: int = 512, seed: int = 0,
                     workers: int = 2, config: SimConfig | None = None, overwrite: bool = False,
                     progress: bool = True) -> Path:
    """Simulate and write a Sen1Floods11-format dataset under ``out``; returns ``out`` (the root).

    ``n_hand`` hand-labelled chips (train/valid/test + the held-out event) and ``n_weak`` weak
    chips of ``size`` px (overrides ``config.size``), seeded by ``seed``; ``workers`` processes
    (1 = in this process). ``config``: physics and output settings (:class:`SimConfig`).
    Refuses to write into a folder holding a layout floodnb never writes (the short developer
    layout, or a folder that is ``v1.1`` itself), whatever ``overwrite`` says, and into a folder
    that already holds the official layout unless
    ``overwrite`` is True *and* that folder is a previous floodnb simulation (its
    ``floodnb_simulation.json`` is present); other files are never touched.
    Read it with :func:`floodnb.data.catalog.build_catalog` like the real dataset.
    """
    import pandas as pd

    from floodnb import __version__

    cfg = replace(config or SimConfig(), size=int(size))
    if not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be an int >= 1, got {workers!r}")
    root = Path(out)
    _prepare_root(root, overwrite=overwrite)
    root.mkdir(parents=True, exist_ok=True)
    (root / MANIFEST).unlink(missing_ok=True)  # only reached when replacing a previous floodnb simulation
    atomic_write_text(root / INCOMPLETE, json.dumps({"seed": int(seed), "n_hand": int(n_hand), "n_weak": int(n_weak)}))
    chips = plan_chips(n_hand=n_hand, n_weak=n_weak, seed=seed, heldout_fraction=cfg.heldout_fraction)
    groups = {c["group"] for c in chips}
    for layer in (HAND_LAYERS if "hand" in groups else ()) + (WEAK_LAYERS if "weak" in groups else ()):
        layout.layer_dir(root, layer).mkdir(parents=True, exist_ok=True)
    for g in groups:
        for layer in TRUTH_LAYERS:
            layout.truth_dir(root, layer, g).mkdir(parents=True, exist_ok=True)
    layout.splits_dir(root).mkdir(parents=True, exist_ok=True)

    rows, thresholds = _simulate_chips(root, chips, cfg, seed=seed, workers=workers, progress=progress)
    sdir = layout.splits_dir(root)
    for split in layout.SPLIT_NAMES:
        ids = sorted(c["chip_id"] for c in chips if c["split"] == split)
        text = "".join(f"{layout.chip_file_name(i, 'S1Hand')},{layout.chip_file_name(i, 'LabelHand')}\r\n" for i in ids)
        atomic_write_text(sdir / layout.split_csv_name(split), text)
    atomic_write_text(layout.metadata_path(root), json.dumps(_metadata(rows, thresholds, cfg.size), indent=1))
    table = pd.DataFrame(rows).sort_values("chip_id", kind="stable").reset_index(drop=True)
    with atomic_path(layout.chip_dates_path(root)) as tmp:
        table[list(CHIP_DATE_COLUMNS)].to_csv(tmp, index=False)
    with atomic_path(root / CHIP_TABLE) as tmp:
        table.to_csv(tmp, index=False)
    manifest = {
        "generator": "floodnb.simulate", "floodnb_version": __version__, "sim_version": SIM_VERSION,
        "simulated": True, "seed": int(seed),
        "n_hand": int(n_hand), "n_weak": int(n_weak), "config": cfg.to_dict(),
        "vh_thresholds_db": {k: thresholds[k] for k in sorted(thresholds)},
        "heldout_event": heldout_event().name,
        "truth_layers": {"SimTruthWater": "true water mask (int16 0/1), not a label",
                         "SimTruthClass": "true surface class (int16, floodnb.bands.SIM_CLASSES)"},
    }
    atomic_write_text(root / MANIFEST, json.dumps(manifest, indent=1, sort_keys=True))
    (root / INCOMPLETE).unlink()
    return root
