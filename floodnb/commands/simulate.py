"""``floodnb simulate OUT``: write the simulated Sen1Floods11-format dataset (and a realism report)."""

from __future__ import annotations

import argparse

HELP = "simulate a Sen1Floods11-format dataset with known truth (the embedded default data)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out", help="output root (official bucket layout is written under it)")
    parser.add_argument("--hand", type=int, default=240, help="hand-labelled chips (default 240)")
    parser.add_argument("--weak", type=int, default=1000, help="weakly labelled chips (default 1000)")
    parser.add_argument("--size", type=int, default=512, help="chip size in pixels, 32..4096, multiple of 16")
    parser.add_argument("--seed", type=int, default=0, help="random seed (same seed -> identical files)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--overwrite", action="store_true", help="replace a previous floodnb simulation in OUT")
    parser.add_argument("--report", action="store_true", help="also write the realism report to OUT/realism")
    parser.add_argument("--real-root", default=None, help="real Sen1Floods11 chips to compare with in the report")
    parser.add_argument("--report-only", action="store_true", help="only (re)write the report of an existing OUT")


def run(args: argparse.Namespace) -> int:
    from floodnb.simulate import simulate_dataset
    from floodnb.simulate.report import realism_report

    if not args.report_only:
        root = simulate_dataset(args.out, n_hand=args.hand, n_weak=args.weak, size=args.size, seed=args.seed,
                                workers=args.workers, overwrite=args.overwrite)
        print(f"wrote simulated dataset to {root}")
    if args.report or args.report_only:
        rep = realism_report(args.out, real_root=args.real_root)
        for k, v in rep.summary.items():
            print(f"{k}: {v:.3f}" if isinstance(v, float) else f"{k}: {v}")
        print(f"report: {rep.paths['md']} and {rep.paths['png']}")
    return 0
