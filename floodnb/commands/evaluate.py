"""``floodnb evaluate CHECKPOINT``: water IoU (global), mIoU, precision/recall and a per-chip table.

Outputs (``--out-dir``) are ``eval_metrics.json`` and ``eval_per_chip.csv``: their own names, so
evaluating into a training run's folder never overwrites the run's ``metrics.json`` /
``per_chip.csv``. Chips of a split that lack the model's inputs are skipped and named; chips the
split CSVs name but that are not on disk are named too (on screen and in ``eval_metrics.json``).

With ``--data-root`` every chip also gets its areas in km² (predicted and reference water, JRC
permanent water and flood = water minus permanent where the data has ``JRCWaterHand``;
:mod:`floodnb.area`), summed per split on screen and in ``eval_metrics.json`` (``areas_km2``).
"""

from __future__ import annotations

import argparse

from floodnb.commands import add_speed_arguments, apply_speed_arguments

#: evaluation outputs: never the names a training run writes (metrics.json, per_chip.csv)
METRICS_FILE = "eval_metrics.json"
PER_CHIP_FILE = "eval_per_chip.csv"
#: missing chips named on screen (all of them go to eval_metrics.json)
_SHOW = 10

HELP = "evaluate a checkpoint on a split (water IoU from a global confusion matrix, per-chip table)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", help="a .safetensors checkpoint or a run folder (its best.safetensors)")
    p.add_argument("--data-root", help="Sen1Floods11-layout data root")
    p.add_argument("--store", default=None, help="packed chip store instead of --data-root")
    p.add_argument("--split", default="test", help="comma-separated splits (default test)")
    p.add_argument("--reference", choices=("label", "truth"), default="label",
                   help="hand labels or the simulator's true water mask")
    p.add_argument("--normalizers", default=None,
                   help="JSON of the data's normalisers (floodnb.data.normalize.save_normalizers); "
                        "default: those recorded in the checkpoint. A mismatch with the checkpoint is an error.")
    p.add_argument("--weak-role", default="s1_otsu", help="weak label layer for label-conditioned teachers")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--out-dir", default=None,
                   help="write eval_metrics.json and eval_per_chip.csv here (a training run's own metrics.json / "
                        "per_chip.csv are never touched)")
    p.add_argument("--s1-units", choices=("auto", "db", "linear", "amplitude"), default="auto",
                   help="units of the S1 GeoTIFFs (default auto: float dB as Sen1Floods11, checked); linear power "
                        "and amplitude are converted to dB")
    p.add_argument("--no-progress", action="store_true")
    add_speed_arguments(p, what="the forward pass")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from floodnb.data.layout import split_csv_name
    from floodnb.data.normalize import load_normalizers
    from floodnb.distill import datasets as ds
    from floodnb.distill.evaluate import evaluate, missing_chips
    from floodnb.io_utils import atomic_path, atomic_write_json
    from floodnb.models import load_checkpoint

    precision, _ = apply_speed_arguments(args)
    model, spec = load_checkpoint(args.checkpoint)
    feed = ds.checkpoint_inputs(spec, weak_role=args.weak_role)  # the checkpoint's normalisers, unless a file says
    if args.normalizers:
        feed["normalizers"] = load_normalizers(args.normalizers)
    source = ds.load_source(args.data_root, store=args.store)
    splits = [s.strip() for s in args.split.split(",") if s.strip()]
    data = {s: ds.split_dataset(source, s, **feed, s1_units=args.s1_units, missing_inputs="skip") for s in splits}
    missing = missing_chips(source, splits) if args.store is None else {}
    reference = "truth_water" if args.reference == "truth" else "label"
    metrics, table = evaluate(model, data, spec=spec, reference=reference, batch_size=args.batch_size,
                              progress=not args.no_progress, chip_info=_area_hook(source), precision=precision)
    areas = _split_areas(table)
    for split, m in metrics.items():
        m["missing_chips"] = missing.get(split, [])
        if split in areas:
            m["areas_km2"] = areas[split]
        print(f"{split:8s} water IoU (global) {m['water_iou']:.4f}   mIoU {m['miou']:.4f}   precision "
              f"{m['water_precision']:.4f}   recall {m['water_recall']:.4f}   mean per-chip water IoU "
              f"{m['mean_chip_water_iou']:.4f}   ({m['chips']} chips, reference {reference})")
        if "areas_km2" in m:
            print(f"{split:8s} {_area_text(m['areas_km2'])}")
        if m["skipped_chips"]:
            print(f"{split:8s} skipped {len(m['skipped_chips'])} chip(s) lacking the model's inputs: "
                  f"{', '.join(m['skipped_chips'])}")
        if m["missing_chips"]:
            shown = m["missing_chips"][:_SHOW]
            more = f" and {len(m['missing_chips']) - _SHOW} more" if len(m["missing_chips"]) > _SHOW else ""
            print(f"{split:8s} {len(m['missing_chips'])} chip(s) named in {split_csv_name(split)} are not on disk: "
                  f"{', '.join(shown)}{more}" + (" (all listed in eval_metrics.json)" if args.out_dir else ""))
    if args.out_dir:
        out = Path(args.out_dir)
        atomic_write_json(out / METRICS_FILE, {"checkpoint": str(args.checkpoint), "reference": reference,
                                               "metric": "water_iou (global confusion matrix, valid pixels)",
                                               "s1_units": args.s1_units, "splits": metrics})
        with atomic_path(out / PER_CHIP_FILE) as tmp:
            table.to_csv(tmp, index=False)
        print(f"wrote {out / METRICS_FILE} and {out / PER_CHIP_FILE}")
    return 0


def _area_hook(source):
    """Per-chip areas (:func:`floodnb.area.catalog_chip_areas`) for a catalog source; None for a store
    (packed chips keep no file paths to take the grid and the JRC layer from).
    """
    import pandas as pd

    if not isinstance(source, pd.DataFrame):
        return None
    from floodnb.area import catalog_chip_areas

    rows = source.drop_duplicates("chip_id").set_index("chip_id", drop=False)
    return lambda cid, pred, ref: catalog_chip_areas(rows.loc[cid], pred, ref)


def _split_areas(table) -> dict:
    """``{split: {area column: km² or None}}`` summed over a per-chip table (empty without areas)."""
    import pandas as pd

    from floodnb.area import AREA_COLUMNS, event_areas

    if "water_km2" not in table.columns or "split" not in table.columns:
        return {}
    sums = event_areas(table, by=("split",)).set_index("split")
    return {str(s): {c: None if pd.isna(r[c]) else float(r[c]) for c in AREA_COLUMNS} for s, r in sums.iterrows()}


def _area_text(a: dict) -> str:
    text = f"water {a['water_km2']:.4f} km² predicted vs {a['ref_water_km2']:.4f} km² reference"
    if a["flood_km2"] is not None:
        text += f"; flood (minus JRC permanent water) {a['flood_km2']:.4f} vs {a['ref_flood_km2']:.4f} km²"
    return text + f" (over {a['valid_km2']:.4f} km² scored)"
