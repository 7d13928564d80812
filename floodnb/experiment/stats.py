"""Seed statistics of the experiment: mean ± sample std over seeds and paired comparisons of two rows.

* :func:`mean_std` — mean and *sample* standard deviation (``ddof=1``; NaN for one seed) of a
  metric over seeds, with ``n`` stated.
* :func:`paired_bootstrap` — the paired bootstrap over test chips (Efron & Tibshirani 1993,
  ch. 16): resample the split's chips with replacement (the same draw for both rows and every
  seed), recompute each row's water IoU from the summed per-chip confusion counts
  (``TP / (TP + FP + FN)``, global matrix) per seed, and take the mean over seeds of the
  difference. The 95 % percentile interval of ``B`` draws (generator seeded by ``seed``) is
  reported beside the point difference (the same statistic on the original chips).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

DEFAULT_B = 2000
DEFAULT_BOOT_SEED = 0


def mean_std(values: Sequence[float]) -> tuple[float, float, int]:
    """``(mean, sample std, n)`` of the finite ``values`` (std NaN when n < 2, mean NaN when n == 0)."""
    v = np.asarray([x for x in values if x is not None and np.isfinite(float(x))], dtype=np.float64)
    n = int(v.size)
    if n == 0:
        return float("nan"), float("nan"), 0
    return float(v.mean()), float(v.std(ddof=1)) if n > 1 else float("nan"), n


def _iou(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> np.ndarray:
    den = tp + fp + fn
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, tp / np.where(den > 0, den, 1), np.nan)


def count_cube(counts: Sequence[pd.DataFrame], chip_ids: Sequence[str]) -> np.ndarray:
    """``(S, C, 3)`` float64 of ``tp, fp, fn`` per seed and chip, chips in ``chip_ids`` order.

    ``counts``: one per-chip count table per seed (:mod:`floodnb.experiment.scoring` columns).
    ``ValueError`` names chips a seed lacks (paired comparisons need the same chips).
    """
    out = np.zeros((len(counts), len(chip_ids), 3), dtype=np.float64)
    for s, c in enumerate(counts):
        t = c.set_index("chip_id")
        missing = [cid for cid in chip_ids if cid not in t.index]
        if missing:
            raise ValueError(f"paired comparison: seed table {s} lacks chips {missing[:5]}")
        out[s] = t.loc[list(chip_ids), ["tp", "fp", "fn"]].to_numpy(np.float64)
    return out


def paired_bootstrap(a: np.ndarray, b: np.ndarray, *, n_boot: int = DEFAULT_B, seed: int = DEFAULT_BOOT_SEED,
                     level: float = 0.95) -> dict:
    """Paired bootstrap of ``water IoU(a) - water IoU(b)`` over chips, averaged over seeds.

    ``a``/``b``: :func:`count_cube` arrays ``(S, C, 3)`` of the two rows on the same chips and
    seeds. Returns ``diff`` (point), ``lo``/``hi`` (percentile interval at ``level``),
    ``per_seed`` (point difference of each seed), ``n_boot``, ``boot_seed``, ``chips``, ``seeds``.
    """
    if a.shape != b.shape or a.ndim != 3 or a.shape[2] != 3:
        raise ValueError(f"paired_bootstrap: count arrays must share shape (S, C, 3); got {a.shape} and {b.shape}")
    if n_boot < 1:
        raise ValueError(f"paired_bootstrap: n_boot must be >= 1, got {n_boot}")
    s, c, _ = a.shape
    if c == 0:
        raise ValueError("paired_bootstrap: no chips")

    def diff(weights: np.ndarray) -> np.ndarray:  # weights (B, C) -> (B,) mean over seeds of the IoU difference
        sa = np.einsum("bc,sck->bsk", weights, a)
        sb = np.einsum("bc,sck->bsk", weights, b)
        d = _iou(sa[..., 0], sa[..., 1], sa[..., 2]) - _iou(sb[..., 0], sb[..., 1], sb[..., 2])
        return np.nanmean(d, axis=1) if np.isfinite(d).any() else np.full(d.shape[0], np.nan)

    ones = np.ones((1, c))
    point_per_seed = (_iou(*(a.sum(axis=1).T)) - _iou(*(b.sum(axis=1).T)))
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, c, size=(n_boot, c))
    weights = np.zeros((n_boot, c))
    np.add.at(weights, (np.repeat(np.arange(n_boot), c), draws.ravel()), 1.0)
    boot = np.concatenate([diff(weights[i:i + 500]) for i in range(0, n_boot, 500)])
    alpha = (1.0 - level) / 2.0
    finite = boot[np.isfinite(boot)]
    lo, hi = (np.quantile(finite, [alpha, 1.0 - alpha]) if finite.size else (np.nan, np.nan))
    return {"diff": float(diff(ones)[0]), "lo": float(lo), "hi": float(hi),
            "per_seed": [float(x) for x in point_per_seed], "n_boot": int(n_boot), "boot_seed": int(seed),
            "chips": int(c), "seeds": int(s), "level": float(level)}
