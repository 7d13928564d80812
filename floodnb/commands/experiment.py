"""``floodnb experiment``: the evidence table (see :mod:`floodnb.experiment`)."""

from __future__ import annotations

import argparse
import shlex
import sys

HELP = ("compare Otsu, S1 baselines, teachers, distilled students and CromSS options under one budget "
        "on the simulated dataset (water IoU vs truth on test and the held-out event)")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-root", default=None,
                   help="simulated Sen1Floods11-layout root with truth layers (default: simulate into OUT/data)")
    p.add_argument("--out-dir", default="runs/experiment", help="results folder (default: runs/experiment)")
    p.add_argument("--fast", action="store_true", help="tiny data and a few steps per row (smoke run)")
    p.add_argument("--rows", default=None, help="comma-separated rows to run (their dependencies run too); "
                                                "default: all")
    p.add_argument("--seed", type=int, default=0, help="first training seed (default 0)")
    p.add_argument("--seeds", type=int, default=3,
                   help="training seeds per trained row: SEED .. SEED+SEEDS-1 (default 3); the simulated data stay "
                        "the same; the table shows mean ± std, per-seed values and paired comparisons")
    p.add_argument("--bootstrap", type=int, default=2000, metavar="B",
                   help="bootstrap draws over test chips of the paired comparisons (default 2000)")
    p.add_argument("--epochs", type=int, default=None, help="override the budget's epochs")
    p.add_argument("--steps-per-epoch", type=int, default=None, help="override the budget's steps per epoch")
    p.add_argument("--real-root", default=None, help="real Sen1Floods11 chips: report Otsu and the best student")
    p.add_argument("--readme", default=None,
                   help="README whose <!-- experiment:start --> ... <!-- experiment:end --> block gets the table")
    p.add_argument("--threads", type=int, default=0,
                   help="torch threads (default 0: $FLOODNB_THREADS, else the CPUs available; 1 is robust on cores "
                        "shared with other heavy jobs)")
    p.add_argument("--list-rows", action="store_true", help="print the rows and exit")
    p.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from floodnb.experiment.config import DEFAULT_BUDGET, DEFAULT_SIM, FAST_BUDGET, FAST_SIM
    from floodnb.experiment.rows import ROWS

    if args.list_rows:
        for r in ROWS.values():
            deps = f"  (needs {', '.join(r.deps)})" if r.deps else ""
            print(f"{r.name:22s} {r.group:9s} {r.description}{deps}")
        return 0
    from floodnb.experiment.run import run_experiment

    budget = FAST_BUDGET if args.fast else DEFAULT_BUDGET
    if args.epochs is not None:
        budget = replace(budget, epochs=args.epochs)
    if args.steps_per_epoch is not None:
        budget = replace(budget, steps_per_epoch=args.steps_per_epoch)
    table = run_experiment(args.out_dir, data_root=args.data_root, sim=FAST_SIM if args.fast else DEFAULT_SIM,
                           budget=budget, seed=args.seed, seeds=args.seeds, n_boot=args.bootstrap, rows=args.rows,
                           real_root=args.real_root, readme=args.readme, progress=not args.no_progress,
                           threads=args.threads,
                           command="floodnb experiment " + " ".join(shlex.quote(a) for a in sys.argv[2:])
                           if len(sys.argv) > 1 and sys.argv[1] == "experiment" else "floodnb experiment")
    cols = ["row", "seed", "status", "action", "test_water_iou", "bolivia_water_iou", "seconds"]
    print(table[cols].to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"results in {args.out_dir}/results.md")
    failed = table[(table["status"] != "done") & (table["action"] != "earlier run")]
    if len(failed):
        for _, r in failed.iterrows():
            print(f"row {r['row']} seed {r['seed']} failed: {r['error']}", file=sys.stderr)
        return 1
    return 0
