"""From results.csv (one line per row and seed) to the tables a reader compares: seeds and paired tests.

* :func:`seed_summary` — one line per row: the per-seed values, mean, sample std and ``n`` of
  the water IoU and mIoU of every scored split, the teachers used, the pixels scored.
* :func:`comparisons` — each student row (name ``student*``) against :data:`BASELINES`
  (``s1_weak``, ``s1_hand``) on ``test`` and the held-out event: per-seed differences over the
  seeds both finished, their mean, and the paired bootstrap over chips
  (:func:`floodnb.experiment.stats.paired_bootstrap`).
* :func:`headline` — the choice of the best student by *mean validation* water IoU (hand
  labels) and the teacher chosen the same way; test numbers are looked up only after the choice.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from floodnb.experiment.rows import EVAL_SPLITS, SCORED_SPLITS, TEACHER_CHOICES
from floodnb.experiment.stats import DEFAULT_B, DEFAULT_BOOT_SEED, count_cube, mean_std, paired_bootstrap

BASELINES: tuple[str, ...] = ("s1_weak", "s1_hand")
SUMMARY_METRICS: tuple[str, ...] = ("water_iou", "miou")


def is_student(row: str) -> bool:
    """Student rows: S1 models distilled from a teacher (names ``student*``)."""
    return str(row).startswith("student")


def load_counts(out: Path, table: pd.DataFrame) -> dict[tuple[str, int], pd.DataFrame]:
    """``(row, seed) -> chip_counts.csv`` of every finished line of ``table`` (``out/rows/<row>-s<seed>-<hash>``)."""
    from floodnb.experiment.rows import row_dir

    got = {}
    for _, r in table[table["status"] == "done"].iterrows():
        path = row_dir(out, str(r["row"]), int(r["seed"]), str(r["hash"])) / "chip_counts.csv"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: the per-chip counts of row {r['row']} seed {r['seed']} are missing; "
                                    "rerun the row (delete its results.csv line)")
        got[(str(r["row"]), int(r["seed"]))] = pd.read_csv(path, dtype={"chip_id": str, "split": str})
    return got


def seed_summary(table: pd.DataFrame) -> pd.DataFrame:
    """One line per row of ``table`` (results.csv): ``n``, per-seed values, mean and sample std per metric."""
    out = []
    for row, g in table.groupby("row", sort=False):
        done = g[g["status"] == "done"].sort_values("seed")
        rec: dict = {"row": row, "group": g["group"].iloc[0], "description": g["description"].iloc[0],
                     "n": int(len(done)), "seeds": " ".join(str(int(s)) for s in done["seed"]),
                     "status": "done" if len(done) == len(g) else f"{len(g) - len(done)} of {len(g)} failed",
                     "teacher": ", ".join(sorted({str(t) for t in done["teacher"].dropna() if str(t)})),
                     "seconds": float(g["seconds"].astype(float).sum())}
        for s in SCORED_SPLITS:
            for m in SUMMARY_METRICS:
                vals = [float(v) for v in done[f"{s}_{m}"]]
                mean, std, _ = mean_std(vals)
                rec[f"{s}_{m}_mean"], rec[f"{s}_{m}_std"] = mean, std
                rec[f"{s}_{m}_seeds"] = " ".join(f"{v:.3f}" for v in vals)
            px = done[f"{s}_pixels"].dropna()
            rec[f"{s}_pixels"] = int(px.iloc[0]) if len(px) else None
        out.append(rec)
    return pd.DataFrame(out)


def comparisons(table: pd.DataFrame, counts: dict[tuple[str, int], pd.DataFrame], *, n_boot: int = DEFAULT_B,
                boot_seed: int = DEFAULT_BOOT_SEED) -> pd.DataFrame:
    """Each student vs each baseline on each evaluation split (seeds both finished); see the module docstring."""
    cols = ["row", "baseline", "split", "seeds", "n", "per_seed_diff", "mean_diff", "boot_diff", "boot_lo",
            "boot_hi", "n_boot", "boot_seed", "chips"]
    done = table[table["status"] == "done"]
    seeds_of = {r: set(int(s) for s in g["seed"]) for r, g in done.groupby("row")}
    rows = []
    for row in [r for r in dict.fromkeys(done["row"]) if is_student(r)]:
        for base in BASELINES:
            common = sorted(seeds_of.get(row, set()) & seeds_of.get(base, set()))
            if not common:
                continue
            for split in EVAL_SPLITS:
                def part(key: tuple[str, int], split: str = split) -> pd.DataFrame:
                    c = counts[key]
                    return c[c["split"] == split]

                ids = list(part((base, common[0]))["chip_id"])
                a = count_cube([part((row, s)) for s in common], ids)
                b = count_cube([part((base, s)) for s in common], ids)
                bs = paired_bootstrap(a, b, n_boot=n_boot, seed=boot_seed)
                rows.append({"row": row, "baseline": base, "split": split, "seeds": " ".join(map(str, common)),
                             "n": len(common), "per_seed_diff": " ".join(f"{d:+.3f}" for d in bs["per_seed"]),
                             "mean_diff": float(np.mean(bs["per_seed"])), "boot_diff": bs["diff"],
                             "boot_lo": bs["lo"], "boot_hi": bs["hi"], "n_boot": bs["n_boot"],
                             "boot_seed": bs["boot_seed"], "chips": bs["chips"]})
    return pd.DataFrame(rows, columns=cols)


def headline(summary: pd.DataFrame) -> dict:
    """Choices made on validation only: ``teacher`` and ``student`` (row names or None) with their mean
    validation water IoU and ``n``; ties go to the earlier row of the table.
    """
    done = summary[summary["n"] > 0]

    def best(rows: pd.DataFrame):
        if rows.empty or not np.isfinite(rows["valid_water_iou_mean"].astype(float)).any():
            return None
        return rows.loc[rows["valid_water_iou_mean"].astype(float).idxmax()]

    t = best(done[done["row"].isin(TEACHER_CHOICES)])
    s = best(done[done["row"].map(is_student)])
    return {"teacher": None if t is None else t, "student": None if s is None else s}
