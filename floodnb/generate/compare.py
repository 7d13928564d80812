"""Training comparison of notebook 07: S1-hand vs S1-hand + generated pairs, same budget.

Both models are the S1 student architecture trained with :func:`floodnb.distill.student.train_student`
(hand cross-entropy; with generated pairs, plus soft KD at temperature ``T`` on the generated
pairs only: DAKTer's knowledge transfer, Moon et al., arXiv 2412.08116) for the same epochs,
samples per epoch (``chips_per_epoch``: hand-only draws them all from the hand crops, the other
half hand, half generated), crop, model and seed. Scores: water IoU from a global confusion matrix
over valid pixels (:mod:`floodnb.metrics`) on the ``valid`` and ``test`` hand splits against
``reference`` (the simulator's truth where it exists); pick on validation, never test.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from floodnb.distill.engine import TrainConfig
from floodnb.generate.augment import GeneratedPairs
from floodnb.generate.sample import Generated


def training_comparison(source, generated: Generated, out_dir: str | Path, *, config: TrainConfig, model: str,
                        chips_per_epoch: int, reference: str = "label", temperature: float = 2.0,
                        kd_weight: float = 1.0, model_kw: dict | None = None) -> pd.DataFrame:
    """Train both models into ``out_dir/{s1_hand,s1_hand_gen}`` and return one row per model and split
    (``model``, ``split``, ``water_iou``, ``miou``, ``best_epoch``, ``reference``); also ``comparison.csv``.
    """
    from floodnb.distill.datasets import split_dataset
    from floodnb.distill.student import train_student
    from floodnb.experiment.training import FixedLength
    from floodnb.io_utils import atomic_path

    out = Path(out_dir)
    crop = int(generated.s1.shape[-1])
    hand = split_dataset(source, "train", inputs=("s1",), crop=crop, augment=True, seed=config.seed)
    evals = {s: split_dataset(source, s, inputs=("s1",)) for s in ("valid", "test")}
    n = max(2, int(chips_per_epoch))
    runs: dict[str, dict] = {
        "s1_hand": dict(hand=FixedLength(hand, n, seed=config.seed)),
        "s1_hand_gen": dict(hand=FixedLength(hand, n // 2, seed=config.seed),
                            pool=FixedLength(GeneratedPairs(generated, soft_weight=kd_weight), n - n // 2,
                                             seed=config.seed), distill_weight=kd_weight),
    }
    rows = []
    for name, kw in runs.items():
        run = train_student(out_dir=out / name, valid=evals["valid"], temperature=temperature, model=model,
                            config=config, evaluate_on=evals, reference=reference, model_kw=model_kw, **kw)
        for split, m in run.metrics["splits"].items():
            rows.append({"model": name, "split": split, "water_iou": m["water_iou"], "miou": m["miou"],
                         "best_epoch": run.fit.best_epoch, "reference": reference})
    table = pd.DataFrame(rows)
    with atomic_path(out / "comparison.csv") as tmp:
        table.to_csv(tmp, index=False, float_format="%.4f")
    return table


def student_checkpoint(run_dir: str | Path) -> Path | None:
    """The S1 student checkpoint of run ``run_dir`` (notebook 04's record), or None when it has none."""
    from floodnb.runs.layout import STUDENT
    from floodnb.runs.records import StudentRecord, read_stage_record

    try:
        rec = read_stage_record(run_dir, STUDENT)
    except (FileNotFoundError, ValueError):
        return None
    if not isinstance(rec, StudentRecord):
        return None
    path = rec.file(run_dir, rec.student.checkpoint)
    return path if path.is_file() else None
