"""``floodnb transfer REAL_ROOT``: sim-to-real report — S1 models vs VH thresholds on real hand-labelled chips."""

from __future__ import annotations

import argparse

HELP = ("score Sentinel-1 models (e.g. trained on simulated data) on real hand-labelled Sen1Floods11 chips next "
        "to per-chip Otsu, the metadata event threshold and fixed VH thresholds (water IoU, per-chip table)")


def _checkpoint(text: str) -> tuple[str, str]:
    name, sep, path = text.partition("=")
    if not sep or not name.strip() or not path.strip():
        raise argparse.ArgumentTypeError(
            f"--checkpoint {text!r}: expected NAME=PATH, e.g. student=runs/s/best.safetensors")
    return name.strip(), path.strip()


def _thresholds(text: str) -> tuple[float, ...]:
    try:
        vals = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"--thresholds {text!r}: expected comma-separated dB values, "
                                         "e.g. -20,-22,-24") from None
    if any(not -60.0 <= v <= 10.0 for v in vals):
        raise argparse.ArgumentTypeError(f"--thresholds {text!r}: VH thresholds are in dB, expected -60..10")
    return vals


def add_arguments(p: argparse.ArgumentParser) -> None:
    from floodnb.experiment.real import FIXED_THRESHOLDS_DB

    p.add_argument("real_root", help="real Sen1Floods11 root (any layout floodnb reads) with S1Hand and LabelHand")
    p.add_argument("--checkpoint", action="append", type=_checkpoint, default=[], metavar="NAME=PATH",
                   help="a Sentinel-1 checkpoint to score (repeatable)")
    p.add_argument("--thresholds", type=_thresholds, default=FIXED_THRESHOLDS_DB,
                   help="fixed VH thresholds in dB, comma-separated (default "
                        + ",".join(f"{t:g}" for t in FIXED_THRESHOLDS_DB) + ")")
    p.add_argument("--out-dir", default=None,
                   help="write transfer.csv, transfer_per_chip.csv, transfer_excluded.csv, transfer.md, transfer.png")
    p.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace) -> int:
    from floodnb.experiment.real import transfer_report

    names = [n for n, _ in args.checkpoint]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"--checkpoint: names {dup} given more than once")
    report = transfer_report(args.real_root, checkpoints=dict(args.checkpoint), fixed_thresholds=args.thresholds,
                             progress=not args.no_progress)
    print(report.to_markdown(per_chip=False))
    if args.out_dir:
        paths = report.write(args.out_dir)
        print("wrote " + ", ".join(str(p) for p in paths.values()))
    return 0
