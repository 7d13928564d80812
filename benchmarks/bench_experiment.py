"""Wall and CPU time of the default evidence experiment (all rows x seeds) against the 45-minute target.

Runs :func:`floodnb.experiment.run_experiment` with the default SimSpec and Budget and ``--seeds``
(default 3) into a fresh out folder (simulation, packing, every row and seed, the real-chip report
and the outputs) and prints, side by side: each row's wall and CPU seconds summed over its seeds,
the total wall time, the set-up time, the load average before and after, and the **idle projection**:
the rows' process CPU seconds (one torch thread: on an idle machine a row's wall time is its CPU
time) plus the set-up wall time, as a ratio of the 45-minute target. On a shared machine the wall
times are noisy (read them with the load average); the CPU seconds much less so.

    python benchmarks/bench_experiment.py [--out-dir runs/bench_experiment] [--fast] [--rows ...] [--seeds 3]
        [--data-root R]  (reuse a simulated root: times the rows only)
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from pathlib import Path

TARGET_S = 45 * 60


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out-dir", default="runs/bench_experiment")
    ap.add_argument("--fast", action="store_true")
    ap.add_argument("--rows", default=None)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--real-root",
                    default=str(Path(__file__).resolve().parents[1].parent / "shared" / "data" / "sen1floods11"))
    ap.add_argument("--keep", action="store_true", help="reuse an existing out dir (times only unfinished rows)")
    args = ap.parse_args()

    from floodnb.experiment import DEFAULT_BUDGET, DEFAULT_SIM, FAST_BUDGET, FAST_SIM, run_experiment

    out = Path(args.out_dir)
    if out.exists() and not args.keep:
        if not (out / "results.csv").exists() and any(out.iterdir()):
            raise SystemExit(f"{out} exists and is not an experiment folder; choose another --out-dir")
        shutil.rmtree(out)
    load0 = os.getloadavg()
    t0 = time.perf_counter()
    table = run_experiment(out, data_root=args.data_root, sim=FAST_SIM if args.fast else DEFAULT_SIM,
                           budget=FAST_BUDGET if args.fast else DEFAULT_BUDGET, rows=args.rows, seeds=args.seeds,
                           real_root=args.real_root, progress=False,
                           command="python benchmarks/bench_experiment.py" + (" --fast" if args.fast else ""))
    total = time.perf_counter() - t0
    load1 = os.getloadavg()
    ran = table[table["action"] == "ran"]
    rows_s, rows_cpu = float(ran["seconds"].sum()), float(ran["cpu_s"].astype(float).sum())
    budget = FAST_BUDGET if args.fast else DEFAULT_BUDGET
    print(f"\nbudget per trained row and seed: {budget.describe()}; seeds {args.seeds}")
    print(f"{'row':22s} {'runs':>4s} {'wall s':>8s} {'CPU s':>7s} {'share':>6s}  test water IoU (mean over seeds)")
    for row, g in table.groupby("row", sort=False):
        w, c = float(g["seconds"].sum()), float(g["cpu_s"].astype(float).sum())
        iou, how = g["test_water_iou"].astype(float).mean(), ", ".join(sorted(set(g["action"])))
        print(f"{row:22s} {len(g):4d} {w:8.1f} {c:7.1f} {w / total:6.1%}  {iou:.3f}  ({how})")
    setup = total - rows_s
    idle = rows_cpu + setup
    print(f"{'set-up + outputs':22s} {'':4s} {setup:8.1f} {'':7s} {setup / total:6.1%}  (simulate, pack, real-chip "
          "report, tables, figure)")
    print(f"{'TOTAL (wall)':22s} {'':4s} {total:8.1f}   = {total / 60:.1f} min; target {TARGET_S / 60:.0f} min -> "
          f"{total / TARGET_S:.2f} of the target under this load")
    print(f"{'IDLE PROJECTION':22s} {'':4s} {idle:8.1f}   = {idle / 60:.1f} min (rows' CPU s {rows_cpu:.0f} + set-up "
          f"wall {setup:.0f}) -> {idle / TARGET_S:.2f} of the target")
    print(f"load average before {load0[0]:.2f}/{load0[1]:.2f}/{load0[2]:.2f}, after "
          f"{load1[0]:.2f}/{load1[1]:.2f}/{load1[2]:.2f} on {os.cpu_count()} cores (shared machine: noisy)")


if __name__ == "__main__":
    main()
