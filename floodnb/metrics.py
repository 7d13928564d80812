"""Segmentation metrics for water mapping, on valid pixels only.

Definitions (name them wherever a number is shown — never compare water IoU with mIoU):

* **water IoU (global)** — IoU of the water class from one confusion matrix accumulated over all
  valid pixels of a split: ``TP / (TP + FP + FN)``. The primary metric of Sen1Floods11
  (Bonafilia et al., 2020) and of Garg et al. (2023).
* **mIoU** — mean over classes (dry, water) of the per-class IoU, from the same global matrix.
* **per-chip IoU** — water IoU computed per chip; its mean ("mean per-chip water IoU") weighs
  small chips equally and is undefined for chips with no water in label or prediction (NaN,
  left out of the mean and counted separately).
* **precision / recall** of water: ``TP/(TP+FP)`` and ``TP/(TP+FN)``;
  commission error = 1 − precision, omission error = 1 − recall.

Confusion matrices are ``(K, K)`` int64 with rows = reference (truth) and columns = prediction.
Pixels whose reference is ``LABEL_NODATA`` (-1) or ``IGNORE_INDEX`` or whose prediction is
negative (no input data) are ignored.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from floodnb.bands import CLASS_NAMES, IGNORE_INDEX, LABEL_NODATA, NUM_CLASSES, WATER

METRIC_DEFINITIONS: dict[str, str] = {
    "water_iou": "water-class IoU from a global confusion matrix over all valid pixels",
    "miou": "mean of dry and water IoU from the same global confusion matrix",
    "water_precision": "TP/(TP+FP) for water (1 - commission error)",
    "water_recall": "TP/(TP+FN) for water (1 - omission error)",
    "accuracy": "fraction of valid pixels classified correctly",
    "mean_chip_water_iou": "mean over chips of per-chip water IoU (chips where it is undefined left out)",
}


def confusion(pred, target, *, num_classes: int = NUM_CLASSES) -> np.ndarray:
    """Confusion matrix ``(K, K)`` (rows = target, columns = prediction) over valid pixels.

    ``pred`` and ``target`` are integer arrays of the same shape (any dims, numpy or torch).
    Invalid pixels: target in {LABEL_NODATA, IGNORE_INDEX} or outside ``[0, K)``, or pred
    outside ``[0, K)``.
    """
    pred = _to_numpy(pred)
    target = _to_numpy(target)
    if pred.shape != target.shape:
        raise ValueError(f"pred shape {pred.shape} != target shape {target.shape}")
    p = pred.reshape(-1).astype(np.int64, copy=False)
    t = target.reshape(-1).astype(np.int64, copy=False)
    ok = (t >= 0) & (t < num_classes) & (p >= 0) & (p < num_classes)
    idx = t[ok] * num_classes + p[ok]
    return np.bincount(idx, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def iou_per_class(cm: np.ndarray) -> np.ndarray:
    """Per-class IoU ``(K,)`` from a confusion matrix; NaN where a class is absent in both."""
    cm = np.asarray(cm, dtype=np.float64)
    tp = np.diag(cm)
    denom = cm.sum(0) + cm.sum(1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, tp / np.where(denom > 0, denom, 1), np.nan)


def water_iou(cm: np.ndarray) -> float:
    """Water-class IoU from a (global) confusion matrix; NaN if no water anywhere."""
    return float(iou_per_class(cm)[WATER])


def miou(cm: np.ndarray) -> float:
    """Mean IoU over classes present (NaN classes left out)."""
    ious = iou_per_class(cm)
    return float(np.nanmean(ious)) if np.isfinite(ious).any() else float("nan")


def summarize(cm: np.ndarray) -> dict[str, float]:
    """All global metrics of a confusion matrix as a flat dict (keys in METRIC_DEFINITIONS)."""
    cm = np.asarray(cm, dtype=np.int64)
    tp = float(cm[WATER, WATER])
    fp = float(cm[:, WATER].sum() - tp)
    fn = float(cm[WATER, :].sum() - tp)
    total = float(cm.sum())
    nan = float("nan")
    return {
        "water_iou": water_iou(cm),
        "miou": miou(cm),
        "water_precision": tp / (tp + fp) if tp + fp > 0 else nan,
        "water_recall": tp / (tp + fn) if tp + fn > 0 else nan,
        "accuracy": float(np.trace(cm)) / total if total > 0 else nan,
        "valid_pixels": int(total),
        "water_pixels_ref": int(cm[WATER, :].sum()),
    }


def per_chip_table(
    preds: Iterable, targets: Iterable, chip_ids: Iterable[str], *, extra: dict | None = None
) -> pd.DataFrame:
    """One row per chip: chip_id, water_iou, precision, recall, valid/water pixel counts.

    ``preds``/``targets`` yield ``(H, W)`` integer arrays. ``extra`` maps column name to a
    per-chip sequence added as columns (e.g. event, split).
    """
    rows = []
    for pred, target, cid in zip(preds, targets, chip_ids, strict=True):
        s = summarize(confusion(pred, target))
        rows.append({"chip_id": cid, **s})
    df = pd.DataFrame(rows)
    if extra:
        for k, v in extra.items():
            df[k] = list(v)
    return df


class ConfusionAccumulator:
    """Streams chips into global and per-chip confusion matrices (bounded memory)."""

    def __init__(self, num_classes: int = NUM_CLASSES) -> None:
        self.num_classes = num_classes
        self.total = np.zeros((num_classes, num_classes), dtype=np.int64)
        self.rows: list[dict] = []

    def update(self, pred, target, chip_id: str | None = None, **info) -> np.ndarray:
        cm = confusion(pred, target, num_classes=self.num_classes)
        self.total += cm
        if chip_id is not None:
            self.rows.append({"chip_id": chip_id, **info, **summarize(cm)})
        return cm

    def summary(self) -> dict[str, float]:
        out = summarize(self.total)
        if self.rows:
            vals = np.array([r["water_iou"] for r in self.rows], dtype=float)
            out["mean_chip_water_iou"] = float(np.nanmean(vals)) if np.isfinite(vals).any() else float("nan")
            out["chips"] = len(self.rows)
            out["chips_water_iou_undefined"] = int((~np.isfinite(vals)).sum())
        return out

    def table(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows)


def _to_numpy(a) -> np.ndarray:
    if hasattr(a, "detach"):
        a = a.detach().cpu().numpy()
    return np.asarray(a)


__all__ = [
    "CLASS_NAMES", "IGNORE_INDEX", "LABEL_NODATA", "METRIC_DEFINITIONS", "ConfusionAccumulator",
    "confusion", "iou_per_class", "miou", "per_chip_table", "summarize", "water_iou",
]
