"""How well label-noise scores find wrong weak labels, measured against known truth.

On simulated data (:mod:`floodnb.simulate`) the true water mask is known, so every weak-label
pixel is known to be right or wrong. For a per-pixel noise score (high = suspicious):

* **AUROC** — probability that a randomly chosen wrong pixel scores higher than a randomly chosen
  right one (ties count one half); 0.5 = chance. Computed from ranks (Mann-Whitney U).
* **average precision (AP)** — area under the precision-recall curve of "wrong" as the positive
  class, summed over distinct score thresholds (the scikit-learn definition); chance level is the
  base rate (fraction of wrong pixels), reported next to it.
* **Spearman** — rank correlation between a chip-level score (e.g. mean noise score) and the
  true per-chip noise rate (fraction of the chip's valid weak-label pixels that are wrong).

Arrays: ``weak``, ``truth`` labels ``(N, H, W)`` in {-1, 0, 1}; ``score (N, H, W)`` float, NaN =
unscored. Pixels count where weak and truth are both valid and the score is finite.
:class:`ValidationAccumulator` does the same chip by chip in bounded memory (scores binned in
[0, 1]; exact for binary scores, within the bin width otherwise).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from scipy import stats

from floodnb.bands import LABEL_NODATA
from floodnb.labels.noise import check_labels, chip_noise_rate

REPORT_COLUMNS: tuple[str, ...] = (
    "score", "auroc", "average_precision", "base_rate", "spearman_chip", "pixels", "wrong_pixels",
    "unscored_pixels", "chips_ranked",
)


def weak_label_errors(weak, truth) -> np.ndarray:
    """int8 map of the labels' shape: 1 = weak label wrong, 0 = right, -1 = nodata in either."""
    w = check_labels(weak, name="weak")
    t = check_labels(truth, name="truth")
    if w.shape != t.shape:
        raise ValueError(f"weak shape {w.shape} != truth shape {t.shape}")
    out = (w != t).astype(np.int8)
    out[(w == LABEL_NODATA) | (t == LABEL_NODATA)] = -1
    return out


def true_noise_rate(weak, truth) -> np.ndarray:
    """True per-chip noise rate ``(N,)``: fraction of valid weak-label pixels that are wrong (NaN if none)."""
    err = weak_label_errors(weak, truth).astype(np.float32)
    err[err < 0] = np.nan
    return chip_noise_rate(err)


def auroc(score, positive) -> float:
    """Area under the ROC curve of ``score`` (1-D or any shape) for boolean ``positive``.

    Ties count one half (average ranks). NaN scores are dropped. Returns NaN when only one class
    is present.
    """
    s, y = _flat(score, positive)
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = stats.rankdata(s)  # average ranks for ties
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def average_precision(score, positive) -> float:
    """Average precision ``sum_t (R_t - R_{t-1}) P_t`` over distinct thresholds (scikit-learn's definition).

    NaN when there is no positive.
    """
    s, y = _flat(score, positive)
    if y.sum() == 0:
        return float("nan")
    order = np.argsort(-s, kind="stable")
    s, y = s[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(s)), s.size - 1]  # last index of each distinct threshold
    tp = np.cumsum(y)[last]
    fp = (last + 1) - tp
    return _ap_from_counts(tp.astype(np.float64), fp.astype(np.float64))


def _ap_from_counts(tp: np.ndarray, fp: np.ndarray) -> float:
    total = tp[-1] if tp.size else 0.0
    if total == 0:
        return float("nan")
    precision = tp / np.maximum(tp + fp, 1)
    recall = tp / total
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def spearman(x, y) -> float:
    """Spearman rank correlation of two ``(N,)`` vectors over entries finite in both (NaN if < 3 or constant)."""
    x = np.asarray(x, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise ValueError(f"x has {x.size} entries, y has {y.size}")
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 3 or np.ptp(x[ok]) == 0 or np.ptp(y[ok]) == 0:
        return float("nan")
    return float(stats.spearmanr(x[ok], y[ok]).statistic)


def _flat(score, positive) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(score, dtype=np.float64).ravel()
    y = np.asarray(positive).ravel()
    if s.shape != y.shape:
        raise ValueError(f"score has {s.size} entries, positive has {y.size}")
    ok = np.isfinite(s)
    return s[ok], y[ok].astype(bool)


def validation_report(scores: Mapping[str, np.ndarray], weak, truth) -> pd.DataFrame:
    """Table, one row per score: AUROC, AP, base rate and chip-ranking Spearman against truth.

    ``scores``: name -> ``(N, H, W)`` per-pixel noise score of the weak label (high = wrong),
    ``weak``/``truth`` ``(N, H, W)``. The chip score is the mean pixel score
    (:func:`floodnb.labels.noise.chip_noise_rate`), correlated with :func:`true_noise_rate`.
    Columns: :data:`REPORT_COLUMNS`. Holds everything in memory; use
    :class:`ValidationAccumulator` for many chips.
    """
    err = weak_label_errors(weak, truth)
    true_rate = true_noise_rate(weak, truth)
    rows = []
    for name, score in scores.items():
        s = np.asarray(score, dtype=np.float32)
        if s.shape != err.shape:
            raise ValueError(f"score {name!r} shape {s.shape} != weak/truth shape {err.shape}")
        counted = err >= 0
        sm = np.where(counted, s, np.nan)
        rate = chip_noise_rate(sm)
        rows.append({
            "score": name,
            "auroc": auroc(sm[counted], err[counted] == 1),
            "average_precision": average_precision(sm[counted], err[counted] == 1),
            "base_rate": float((err[counted] == 1).mean()) if counted.any() else float("nan"),
            "spearman_chip": spearman(rate, true_rate),
            "pixels": int(np.isfinite(sm).sum()),
            "wrong_pixels": int(((err == 1) & np.isfinite(sm)).sum()),
            "unscored_pixels": int((counted & ~np.isfinite(s)).sum()),
            "chips_ranked": int((np.isfinite(rate) & np.isfinite(true_rate)).sum()),
        })
    return pd.DataFrame(rows, columns=list(REPORT_COLUMNS))


class ValidationAccumulator:
    """Chip-by-chip version of :func:`validation_report` in bounded memory.

    Scores must lie in [0, 1]; they are counted in ``bins`` equal-width bins per class (wrong /
    right), and AUROC/AP are computed treating each bin as one tied threshold — exact for binary
    or quantised scores, within one bin width otherwise. Per-chip means and true rates are kept
    (two floats per chip and score) for the Spearman.
    """

    def __init__(self, score_names: tuple[str, ...], *, bins: int = 1000) -> None:
        if bins < 2:
            raise ValueError(f"bins must be >= 2, got {bins}")
        self.score_names = tuple(score_names)
        self.bins = bins
        self.hist = {n: np.zeros((2, bins), dtype=np.int64) for n in self.score_names}
        self.unscored = dict.fromkeys(self.score_names, 0)
        self.chip_rates: dict[str, list[float]] = {n: [] for n in self.score_names}
        self.true_rates: list[float] = []

    def update(self, scores: Mapping[str, np.ndarray], weak, truth) -> None:
        """Add one chip: ``scores`` name -> ``(H, W)``, ``weak``/``truth`` ``(H, W)``."""
        missing = set(self.score_names) - set(scores)
        if missing:
            raise ValueError(f"scores lacks {sorted(missing)}; expected every name in {self.score_names}")
        err = weak_label_errors(weak, truth)
        if err.ndim != 2:
            raise ValueError(f"update takes one chip: weak/truth (H, W), got {err.shape}")
        counted = err >= 0
        self.true_rates.append(float(true_noise_rate(weak, truth)))
        for name in self.score_names:
            s = np.asarray(scores[name], dtype=np.float32)
            if s.shape != err.shape:
                raise ValueError(f"score {name!r} shape {s.shape} != chip shape {err.shape}")
            ok = counted & np.isfinite(s)
            vals = s[ok]
            if vals.size and (vals.min() < 0 or vals.max() > 1):
                raise ValueError(f"score {name!r} must lie in [0, 1] for the accumulator, got "
                                 f"{float(vals.min()):.4g}..{float(vals.max()):.4g}")
            b = np.minimum((vals * self.bins).astype(np.int64), self.bins - 1)
            wrong = err[ok] == 1
            self.hist[name][1] += np.bincount(b[wrong], minlength=self.bins)
            self.hist[name][0] += np.bincount(b[~wrong], minlength=self.bins)
            self.unscored[name] += int((counted & ~np.isfinite(s)).sum())
            self.chip_rates[name].append(float(chip_noise_rate(np.where(counted, s, np.nan))))

    def report(self) -> pd.DataFrame:
        """The :func:`validation_report` table from everything added so far."""
        rows = []
        true_rates = np.asarray(self.true_rates, dtype=np.float64)
        for name in self.score_names:
            neg, pos = self.hist[name][0].astype(np.float64), self.hist[name][1].astype(np.float64)
            n_pos, n_neg = pos.sum(), neg.sum()
            if n_pos > 0 and n_neg > 0:
                neg_below = np.cumsum(neg) - neg  # negatives in lower bins
                au = float(np.sum(pos * (neg_below + neg / 2)) / (n_pos * n_neg))
            else:
                au = float("nan")
            # thresholds from the highest bin down
            tp, fp = np.cumsum(pos[::-1]), np.cumsum(neg[::-1])
            keep = (pos[::-1] + neg[::-1]) > 0
            ap = _ap_from_counts(tp[keep], fp[keep]) if n_pos > 0 else float("nan")
            rates = np.asarray(self.chip_rates[name], dtype=np.float64)
            rows.append({
                "score": name, "auroc": au, "average_precision": ap,
                "base_rate": float(n_pos / (n_pos + n_neg)) if n_pos + n_neg > 0 else float("nan"),
                "spearman_chip": spearman(rates, true_rates),
                "pixels": int(n_pos + n_neg), "wrong_pixels": int(n_pos),
                "unscored_pixels": self.unscored[name],
                "chips_ranked": int((np.isfinite(rates) & np.isfinite(true_rates)).sum()),
            })
        return pd.DataFrame(rows, columns=list(REPORT_COLUMNS))


__all__ = [
    "REPORT_COLUMNS", "ValidationAccumulator", "auroc", "average_precision", "spearman", "true_noise_rate",
    "validation_report", "weak_label_errors",
]
