"""Cloud-masked pool targets: the teacher's quality clear vs cloud, and the student with and without the mask.

Runs the experiment's ``student_soft`` row (and the teachers it needs) twice on the same simulated
data, budget and seed — pool targets cloud-masked (``Budget.pool_cloud_mask=True``, the default)
and not — and prints, per setting: the distillation teacher's water IoU vs the simulator's truth
in clear and cloud-masked pool pixels (``pool_probs.quality.csv``, global confusion matrix per
pixel set), the share of pool pixels masked, and the student's test / held-out water IoU.

    python benchmarks/bench_pool_clouds.py --out-dir /tmp/bench_pool [--n-weak 200] [--epochs 3]
        [--steps-per-epoch 50]
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import pandas as pd

from floodnb.experiment.config import DEFAULT_BUDGET, DEFAULT_SIM
from floodnb.experiment.run import run_experiment


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out-dir", required=True)
    ap.add_argument("--n-weak", type=int, default=200, help="pool chips to simulate")
    ap.add_argument("--epochs", type=int, default=DEFAULT_BUDGET.epochs)
    ap.add_argument("--steps-per-epoch", type=int, default=DEFAULT_BUDGET.steps_per_epoch)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    out = Path(args.out_dir)
    sim = replace(DEFAULT_SIM, n_weak=args.n_weak)
    print(f"data: {sim}; seed {args.seed}")
    for mask in (True, False):
        budget = replace(DEFAULT_BUDGET, pool_cloud_mask=mask, epochs=args.epochs,
                         steps_per_epoch=args.steps_per_epoch)
        table = run_experiment(out, sim=sim, budget=budget, seed=args.seed, seeds=1, rows=["student_soft"],
                               progress=False)
        rows = table.set_index("row")
        teacher = str(rows.loc["student_soft", "teacher"])
        tdir = Path(str(rows.loc[teacher, "checkpoint"])).parent
        cloud = json.loads((tdir / "pool_probs.json").read_text())["cloud_mask"]
        q = pd.read_csv(tdir / "pool_probs.quality.csv").set_index("pixel_set")
        print(f"pool_cloud_mask={mask} | budget: {budget.describe()} | teacher {teacher}: water IoU clear "
              f"{q.loc['clear', 'water_iou']:.3f} ({q.loc['clear', 'pixels']} px), cloud "
              f"{q.loc['cloud', 'water_iou']:.3f} ({q.loc['cloud', 'pixels']} px), all {q.loc['all', 'water_iou']:.3f}"
              f" | masked {cloud['masked_fraction']:.1%} of pool pixels | student_soft test water IoU "
              f"{float(rows.loc['student_soft', 'test_water_iou']):.3f}, bolivia "
              f"{float(rows.loc['student_soft', 'bolivia_water_iou']):.3f}", flush=True)


if __name__ == "__main__":
    main()
