"""Wall time of the default evidence experiment (all rows) against the 30-minute target on 2 cores.

Runs :func:`floodnb.experiment.run_experiment` with the default SimSpec and Budget into a fresh
out folder (simulation, packing, every row, the real-chip report and the outputs) and prints,
side by side: total wall time, the set-up time (simulate + pack, before the first row), each
row's wall time and share, and the load average before and after (the machine is shared, so
timings are noisy: read them with the load average). Rows: every name in
``floodnb.experiment.rows.ROWS`` (or ``--rows``).

    python benchmarks/bench_experiment.py [--out-dir runs/bench_experiment] [--fast] [--rows ...]
        [--data-root R]  (reuse a simulated root: times the rows only)
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from pathlib import Path

TARGET_S = 30 * 60


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out-dir", default="runs/bench_experiment")
    ap.add_argument("--fast", action="store_true")
    ap.add_argument("--rows", default=None)
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
                           budget=FAST_BUDGET if args.fast else DEFAULT_BUDGET, rows=args.rows,
                           real_root=args.real_root, progress=False,
                           command="python benchmarks/bench_experiment.py" + (" --fast" if args.fast else ""))
    total = time.perf_counter() - t0
    load1 = os.getloadavg()
    ran = table[table["action"] == "ran"]
    rows_s = float(ran["seconds"].sum())
    budget = FAST_BUDGET if args.fast else DEFAULT_BUDGET
    print(f"\nbudget per trained row: {budget.describe()}")
    print(f"{'row':22s} {'wall s':>8s} {'share':>6s}  test water IoU")
    for _, r in table.iterrows():
        print(f"{r['row']:22s} {float(r['seconds']):8.1f} {float(r['seconds']) / total:6.1%}  "
              f"{float(r['test_water_iou']):.3f}  ({r['action']})")
    print(f"{'set-up + outputs':22s} {total - rows_s:8.1f} {(total - rows_s) / total:6.1%}  (simulate, pack, pool "
          "labelling is inside the rows that need it, report, figure)")
    print(f"{'TOTAL':22s} {total:8.1f}   = {total / 60:.1f} min; target {TARGET_S / 60:.0f} min -> "
          f"{total / TARGET_S:.2f} of the target")
    print(f"load average before {load0[0]:.2f}/{load0[1]:.2f}/{load0[2]:.2f}, after "
          f"{load1[0]:.2f}/{load1[1]:.2f}/{load1[2]:.2f} on {os.cpu_count()} cores (shared machine: noisy)")


if __name__ == "__main__":
    main()
