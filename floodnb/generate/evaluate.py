"""Evaluation of the generator itself: realism statistics and label consistency.

* Realism: the statistics of the simulator's realism report (:mod:`floodnb.simulate.stats`:
  class-conditional dB levels, VV-VH correlation, looks, water texture, water-body shape) on the
  generated chips (label: ``p_water > 0.5``) vs the chips the generator was trained on (its
  training crops: hand label, valid pixels), side by side with the report's tolerances
  (:func:`realism_table`, column ``generated`` instead of ``simulated``).
* Label consistency: does a radar segmenter see the water the generator says is there? Water IoU
  (global confusion matrix over all generated pixels, :mod:`floodnb.metrics`) of (a) a per-chip
  Otsu VH threshold (:func:`floodnb.labels.weak.otsu_label`) and (b) optionally a trained S1
  segmenter checkpoint, each against the generated label; the same two numbers on the real
  training crops against their hand labels give the reference level.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from floodnb.generate.data import JointChips, stack_samples, to_db_and_label
from floodnb.generate.sample import Generated
from floodnb.metrics import confusion, water_iou
from floodnb.simulate.stats import RealismStats
from floodnb.simulate.stats import realism_table as _sim_table


def real_chips(data: Dataset, n: int | None = None, *, draws: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """``(s1 dB (N, 2, H, W) with NaN = no data, label (N, H, W) in {-1, 0, 1})`` of the first ``n``
    (default all) chips of a ChipDataset-like dataset (one chip size: crop them), for each of
    ``draws`` epochs (``set_epoch(0 .. draws - 1)``: new random crops of the same chips each draw).
    """
    if draws < 1:
        raise ValueError(f"real_chips: draws must be >= 1, got {draws}")
    joint = data if isinstance(data, JointChips) else JointChips(data)
    parts = []
    for epoch in range(draws):
        joint.set_epoch(epoch)
        s = stack_samples(joint, n)
        parts.append(to_db_and_label(s["x"].numpy(), s["mask"].numpy(), joint.normalizers["s1"]))
    joint.set_epoch(0)
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def realism_stats(s1_db: np.ndarray, label: np.ndarray) -> dict[str, float]:
    """:class:`~floodnb.simulate.stats.RealismStats` of chips ``s1_db`` (N, 2, H, W), ``label`` (N, H, W)."""
    acc = RealismStats()
    for s, lab in zip(s1_db, label, strict=True):
        acc.add(s, lab)
    return acc.result()


def realism_table(real: dict[str, float], generated: dict[str, float]) -> pd.DataFrame:
    """Rows statistic, real, generated, tolerance, difference, passed, fitted (the report's tolerances)."""
    return _sim_table(real, generated).rename(columns={"simulated": "generated"})


def _iou(preds: list[np.ndarray], refs: list[np.ndarray]) -> float:
    cm = sum(confusion(p, r) for p, r in zip(preds, refs, strict=True))
    return float(water_iou(np.asarray(cm)))


def segmenter_predictions(checkpoint: str | Path, s1_db: np.ndarray, *, batch_size: int = 16) -> np.ndarray:
    """Class maps (N, H, W) of an S1 segmenter checkpoint on chips ``s1_db`` (dB), read with its own normaliser."""
    from floodnb.data.normalize import Normalizer
    from floodnb.models.checkpoint import load_checkpoint

    model, spec = load_checkpoint(checkpoint)
    if tuple(spec.inputs) != ("s1",) or spec.label_conditioning or spec.meta_dim:
        raise ValueError(f"{checkpoint}: label consistency needs an S1-only segmenter (inputs {spec.inputs}, "
                         f"label conditioning {spec.label_conditioning}, meta_dim {spec.meta_dim})")
    norm = Normalizer.from_dict(spec.normalizers["s1"])
    out = []
    with torch.inference_mode():
        for i in range(0, len(s1_db), batch_size):
            x = torch.from_numpy(norm(s1_db[i:i + batch_size]))
            out.append(model(x, None).argmax(1).numpy())
    return np.concatenate(out).astype(np.int16)


def label_consistency(s1_db: np.ndarray, label: np.ndarray, *, segmenter: str | Path | None = None) -> dict:
    """Water IoU of per-chip Otsu (and of ``segmenter``) on ``s1_db`` against ``label`` (-1 ignored)."""
    from floodnb.labels.weak import otsu_label

    out = {"otsu_water_iou": _iou([otsu_label(s) for s in s1_db], list(label)), "chips": int(len(label))}
    if segmenter is not None:
        pred = segmenter_predictions(segmenter, np.nan_to_num(s1_db, nan=-50.0))
        pred = np.where(np.isfinite(s1_db).all(axis=1), pred, -1)
        out["segmenter_water_iou"] = _iou(list(pred), list(label))
    return out


def generator_evaluation(generated: Generated, real_s1_db: np.ndarray, real_label: np.ndarray, *,
                         segmenter: str | Path | None = None) -> dict:
    """``{"realism": table, "consistency": DataFrame (source real / generated x otsu / segmenter IoU)}``."""
    gen_db, gen_label = generated.s1_db(), generated.label()
    table = realism_table(realism_stats(real_s1_db, real_label), realism_stats(gen_db, gen_label))
    rows = [{"source": "real (training crops, hand label)", **label_consistency(real_s1_db, real_label,
                                                                                segmenter=segmenter)},
            {"source": "generated (generated label)", **label_consistency(gen_db, gen_label, segmenter=segmenter)}]
    return {"realism": table, "consistency": pd.DataFrame(rows)}
