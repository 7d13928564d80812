"""A tiny finished ``floodnb run`` directory for the dashboard tests and benchmark.

Writes a data root in the official Sen1Floods11 layout (hand-labelled chips: S1Hand, S2Hand,
LabelHand, S1OtsuLabelHand, split CSVs, event metadata) and, beside it, a run directory with
the files ``floodnb run`` leaves (run.json, noise table and maps, per-chip metrics,
metrics.json, the student's prediction GeoTIFFs in ``predictions/`` and the teacher's (compact
uint8 probability) in ``predictions/teacher/``, as notebook 05 writes them). The noise table
carries the columns the noise stage adds (``valid_pixels``, simulator-only ``true_noise_rate``,
``noise_score``) so the dashboard's column clean-up is exercised; ``areas=True`` adds per-chip
km² columns as :mod:`floodnb.area` does. Each chip holds a round lake whose size and position
differ per chip, and the prediction misses a chip-dependent share of it, so chips have
distinct water IoUs and images.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import rasterio
from rasterio.transform import from_origin

from floodnb.bands import S2_BANDS, S2_SCALE
from floodnb.data import layout
from floodnb.metrics import ConfusionAccumulator

PIX = 8.983152841195215e-05  # Sen1Floods11 pixel size in degrees (~10 m)
EVENTS = {"Spain": (41.60, -1.10, "2019/09/17", "2019/09/18"), "USA": (30.10, -93.70, "2019/05/22", "2019/05/22")}


def _write(path: Path, data: np.ndarray, transform, *, nodata=None, descriptions=None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = data if data.ndim == 3 else data[None]
    with rasterio.open(path, "w", driver="GTiff", height=data.shape[1], width=data.shape[2],
                       count=data.shape[0], dtype=data.dtype, crs="EPSG:4326", transform=transform,
                       nodata=nodata) as ds:
        ds.write(data)
        if descriptions:
            ds.descriptions = tuple(descriptions)


def make_run_dir(base: Path, *, n_chips: int = 4, size: int = 64, seed: int = 0,
                 noise_maps: bool = True, areas: bool = False) -> Path:
    """Write ``base/data`` (data root) and ``base/runs/demo`` (the run); return the run dir."""
    rng = np.random.default_rng(seed)
    root = Path(base) / "data"
    run_dir = Path(base) / "runs" / "demo"
    events = list(EVENTS)
    chips, splits = [], {"train": [], "valid": [], "test": [], "bolivia": []}
    acc = ConfusionAccumulator()
    noise_rows = []
    area_rows: dict[str, dict[str, float]] = {}
    yy, xx = np.mgrid[0:size, 0:size]
    for i in range(n_chips):
        event = events[i % len(events)]
        cid = f"{event}_{1000 + i}"
        lat0, lon0, _, _ = EVENTS[event]
        transform = from_origin(lon0 + i * size * PIX * 1.2, lat0 + size * PIX, PIX, PIX)
        cy, cx = size * (0.3 + 0.4 * rng.random()), size * (0.3 + 0.4 * rng.random())
        radius = size * (0.15 + 0.1 * i / max(1, n_chips - 1))
        water = (yy - cy) ** 2 + (xx - cx) ** 2 < radius ** 2
        label = water.astype(np.int16)
        label[:, : size // 10] = -1  # a cloud strip without label
        vv = np.where(water, -22.0, -9.0) + rng.normal(0, 1.5, water.shape)
        vh = np.where(water, -28.0, -16.0) + rng.normal(0, 1.5, water.shape)
        s1 = np.stack([vv, vh]).astype(np.float32)
        s1[:, -2:, -5:] = np.nan  # a few nodata pixels
        refl = np.empty((len(S2_BANDS), size, size), np.float32)
        for b, name in enumerate(S2_BANDS):
            land = {"B2": 0.06, "B3": 0.09, "B4": 0.08, "B8": 0.30, "B11": 0.22, "B12": 0.14}.get(name, 0.12)
            wet = {"B2": 0.07, "B3": 0.06, "B4": 0.04, "B8": 0.02, "B11": 0.01, "B12": 0.01}.get(name, 0.03)
            refl[b] = np.where(water, wet, land) + rng.normal(0, 0.01, water.shape)
        s2 = np.clip(np.round(refl * S2_SCALE), 1, 10000).astype(np.int16)
        otsu = (vh < -22).astype(np.int16)
        for lay, arr, nod, desc in (("S1Hand", s1, None, ("VV", "VH")), ("S2Hand", s2, 0, S2_BANDS),
                                    ("LabelHand", label, None, None), ("S1OtsuLabelHand", otsu, None, None)):
            _write(layout.layer_dir(root, lay) / layout.chip_file_name(cid, lay), arr, transform,
                   nodata=nod, descriptions=desc)
        split = ("train", "valid", "test", "bolivia")[i % 4] if i < 4 else "test"
        splits[split].append(cid)
        # prediction: the lake shifted right by a chip-dependent amount -> distinct IoUs
        shift = 1 + 3 * i
        pred = np.roll(water, shift, axis=1).astype(np.int8)  # as compare.write_chip_prediction: int8, -1 nodata
        prob = np.where(pred == 1, 0.9, 0.1).astype(np.float32)
        pdir = run_dir / "05_evaluate" / "predictions"
        _write(pdir / f"{cid}_pred.tif", pred, transform, nodata=-1)
        _write(pdir / f"{cid}_prob.tif", prob, transform)
        tpred = np.roll(water, 1, axis=0).astype(np.int8)  # the teacher: shifted down one row instead
        _write(pdir / "teacher" / f"{cid}_pred.tif", tpred, transform, nodata=-1)
        _write(pdir / "teacher" / f"{cid}_prob.tif", np.where(tpred == 1, 95, 5).astype(np.uint8), transform,
               nodata=255)
        area_rows[cid] = {"water_km2": 1e-4 * pred.sum(), "ref_water_km2": 1e-4 * (label == 1).sum(),
                          "permanent_km2": 1e-5 * pred.sum(), "flood_km2": 0.9e-4 * pred.sum()}
        acc.update(pred.astype(np.int16), label, chip_id=cid, event=event, split=split, method="student")
        disagree = (otsu != label) & (label >= 0)
        score = np.clip(disagree * 0.8 + rng.random(water.shape) * 0.15, 0, 1).astype(np.float32)
        if noise_maps:
            _write(run_dir / "02_weak_labels_and_noise" / "noise_maps" / f"{cid}_noise.tif", score, transform)
        noise_rows.append({"chip_id": cid, "event": event, "split": split,
                           "noise_rate": float(disagree.sum() / max(1, (label >= 0).sum())),
                           "cromss_confidence": float(1 - score.mean()), "valid_pixels": int((label >= 0).sum()),
                           "true_noise_rate": float(disagree.mean()), "noise_score": "disagree_s2_index"})
        chips.append(cid)
    sdir = layout.splits_dir(root)
    sdir.mkdir(parents=True, exist_ok=True)
    for split, ids in splits.items():
        (sdir / layout.split_csv_name(split)).write_bytes(
            "".join(f"{c}_S1Hand.tif,{c}_LabelHand.tif\r\n" for c in ids).encode())
    feats = [{"type": "Feature", "geometry": {"type": "Point", "coordinates": [lon, lat]},
              "properties": {"location": ev, "s1_date": s1d, "s2_date": s2d, "VH_thresh": -22.0, "ID": k}}
             for k, (ev, (lat, lon, s1d, s2d)) in enumerate(EVENTS.items())]
    layout.metadata_path(root).write_text(json.dumps({"type": "FeatureCollection", "features": feats}))

    per_chip = pd.DataFrame(acc.rows)
    if areas:  # km² per chip, 10 m pixels = 1e-4 km²; a made-up permanent share of a tenth
        for col in ("water_km2", "ref_water_km2", "permanent_km2", "flood_km2"):
            per_chip[col] = per_chip["chip_id"].map(lambda c, k=col: area_rows[c][k])
    teacher = per_chip.copy()
    teacher["method"] = "teacher"
    teacher["water_iou"] = np.clip(teacher["water_iou"] + 0.05, 0, 1)
    (run_dir / "05_evaluate").mkdir(parents=True, exist_ok=True)
    pd.concat([per_chip, teacher]).to_csv(run_dir / "05_evaluate" / "per_chip.csv", index=False)
    noise = pd.DataFrame(noise_rows).sort_values("noise_rate", ascending=False)
    noise["rank"] = np.arange(1, len(noise) + 1)
    (run_dir / "02_weak_labels_and_noise").mkdir(parents=True, exist_ok=True)
    noise.to_csv(run_dir / "02_weak_labels_and_noise" / "noise_chips.csv", index=False)
    summary = acc.summary()
    metrics = {"student": {"test": {"water_iou": summary["water_iou"], "miou": summary["miou"]}},
               "teacher": {"test": {"water_iou": min(1.0, summary["water_iou"] + 0.05), "miou": summary["miou"]}},
               "definitions": {"water_iou": "IoU of the water class from the global confusion matrix"}}
    (run_dir / "05_evaluate" / "metrics.json").write_text(json.dumps(metrics))
    (run_dir / "run.json").write_text(json.dumps({
        "name": "demo", "data_root": str(root.resolve()), "params": {"seed": seed, "fast": True},
        "notebooks": [{"name": "05_evaluate", "status": "done", "seconds": 1.0}]}))
    return run_dir
