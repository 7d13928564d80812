"""``floodnb evaluate CHECKPOINT``: water IoU (global), mIoU, precision/recall and a per-chip table."""

from __future__ import annotations

import argparse

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
    p.add_argument("--out-dir", default=None, help="write metrics.json and per_chip.csv here")
    p.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from floodnb.data.normalize import Normalizer, load_normalizers
    from floodnb.distill import datasets as ds
    from floodnb.distill.evaluate import evaluate
    from floodnb.io_utils import atomic_path, atomic_write_json
    from floodnb.models import load_checkpoint

    model, spec = load_checkpoint(args.checkpoint)
    if args.normalizers:
        normalizers = load_normalizers(args.normalizers)
    else:
        normalizers = {r: Normalizer.from_dict(spec.normalizers[r]) for r in spec.inputs}
    source = ds.load_source(args.data_root, store=args.store)
    splits = [s.strip() for s in args.split.split(",") if s.strip()]
    data = {s: ds.split_dataset(source, s, inputs=spec.inputs, normalizers=normalizers,
                                weak=args.weak_role if spec.label_conditioning else None,
                                with_meta=spec.meta_dim > 0) for s in splits}
    reference = "truth_water" if args.reference == "truth" else "label"
    metrics, table = evaluate(model, data, spec=spec, reference=reference, batch_size=args.batch_size,
                              progress=not args.no_progress)
    for split, m in metrics.items():
        print(f"{split:8s} water IoU (global) {m['water_iou']:.4f}   mIoU {m['miou']:.4f}   precision "
              f"{m['water_precision']:.4f}   recall {m['water_recall']:.4f}   mean per-chip water IoU "
              f"{m['mean_chip_water_iou']:.4f}   ({m['chips']} chips, reference {reference})")
    if args.out_dir:
        out = Path(args.out_dir)
        atomic_write_json(out / "metrics.json", {"checkpoint": str(args.checkpoint), "reference": reference,
                                                 "metric": "water_iou (global confusion matrix, valid pixels)",
                                                 "splits": metrics})
        with atomic_path(out / "per_chip.csv") as tmp:
            table.to_csv(tmp, index=False)
        print(f"wrote {out / 'metrics.json'} and {out / 'per_chip.csv'}")
    return 0
