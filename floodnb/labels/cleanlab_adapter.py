"""Optional adapter to ``cleanlab.segmentation`` (confident learning for segmentation labels).

Confident learning (Northcutt, Jiang, Chuang: "Confident Learning: Estimating Uncertainty in
Dataset Labels", JAIR 2021) flags labels whose class the model's *out-of-sample* probabilities do
not support, with per-class thresholds. ``cleanlab.segmentation`` (Lad & Mueller 2023) applies it
per pixel. cleanlab is licensed AGPL-3.0, so it is an optional extra, imported only inside these
functions: ``pip install floodnb[cleanlab]``. floodnb's own scores
(:mod:`floodnb.labels.noise`, :mod:`floodnb.labels.cromss`) need no extra.

Contract with cleanlab and how floodnb's conventions are mapped:

* ``labels (N, H, W)`` in {-1, 0, 1}, ``probs (N, K, H, W)`` (nodata NaN), as everywhere in
  floodnb. cleanlab needs a class for every pixel and finite probabilities, so before the call
  **nodata is filled**: a pixel whose label is -1 gets the model's most likely class (it then
  agrees with the model and is never flagged); a pixel whose probabilities are NaN gets class 0
  with probability one and label 0. Filled pixels are **excluded from what is returned** (False
  in the issue mask, NaN in the pixel scores). They still enter cleanlab's per-class thresholds
  as confidently labelled pixels, which makes it slightly stricter on chips with much nodata.
* ``probs`` must be **out of sample**: produced by a model that never trained on these chips
  (cross-validation folds, or a teacher trained on other chips). A model that has seen a wrong
  label tends to reproduce it, and confident learning then finds nothing. Callers state it with
  the required keyword ``out_of_sample=True``.
"""

from __future__ import annotations

import numpy as np

from floodnb.bands import LABEL_NODATA
from floodnb.labels.noise import PROB_ATOL, check_labels, check_probs

INSTALL_HINT = "cleanlab is an optional extra (AGPL-3.0): pip install floodnb[cleanlab]"


def _import(module: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(f"{module} is not available ({exc}); {INSTALL_HINT}") from exc


def prepare_inputs(labels, probs, *, atol: float = PROB_ATOL) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fill nodata for cleanlab.

    Returns ``(labels int64 (N,H,W) in [0,K), probs float32 (N,K,H,W), valid bool (N,H,W))``.

    See the module docstring for the filling rule. Inputs are not modified.
    """
    y = check_labels(labels)
    p = check_probs(probs, atol=atol)
    if y.ndim != 3 or p.ndim != 4 or p.shape[0] != y.shape[0] or p.shape[2:] != y.shape[1:]:
        raise ValueError(f"labels must be (N, H, W) and probs (N, K, H, W) on the same grid; got labels "
                         f"{y.shape}, probs {p.shape}")
    k = p.shape[1]
    prob_ok = np.isfinite(p).all(axis=1)
    valid = (y != LABEL_NODATA) & prob_ok
    p_filled = np.where(prob_ok[:, None], p, 0.0).astype(np.float32)
    p_filled[:, 0][~prob_ok] = 1.0
    y_filled = np.where(valid, y, p_filled.argmax(axis=1)).astype(np.int64)
    if y_filled.max(initial=0) >= k:
        raise ValueError(f"labels hold class {int(y_filled.max())} but probs has only K={k} classes")
    return y_filled, p_filled, valid


def find_label_issues(labels, probs, *, out_of_sample: bool, filter_by: str = "low_self_confidence",
                      frac_noise: float = 1.0, batch_size: int = 100_000, verbose: bool = False) -> np.ndarray:
    """Pixels cleanlab flags as label issues: bool ``(N, H, W)``, False at nodata.

    Calls ``cleanlab.segmentation.filter.find_label_issues(labels, pred_probs, filter_by=...,
    frac_noise=..., batch_size=..., verbose=...)`` on nodata-filled inputs (see module doc).
    ``out_of_sample`` must be True (the probabilities come from a model that never saw these
    chips).
    """
    _require_out_of_sample(out_of_sample)
    y, p, valid = prepare_inputs(labels, probs)
    mod = _import("cleanlab.segmentation.filter")
    mask = np.asarray(mod.find_label_issues(y, p, filter_by=filter_by, frac_noise=frac_noise,
                                            batch_size=batch_size, verbose=verbose))
    if mask.shape != y.shape:
        raise ValueError(f"cleanlab returned a mask of shape {mask.shape}, expected {y.shape}")
    return mask.astype(bool) & valid


def label_quality_scores(labels, probs, *, out_of_sample: bool, method: str = "softmin",
                         batch_size: int = 100_000, verbose: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Cleanlab's label quality: ``(chip_scores (N,), pixel_scores (N, H, W))`` in [0, 1], low = suspect.

    ``cleanlab.segmentation.rank.get_label_quality_scores`` on nodata-filled inputs; pixel scores
    are NaN at nodata and a chip without a valid pixel gets a NaN chip score. Convert to a noise
    score with ``1 - pixel_scores`` for :mod:`floodnb.labels.validate`.
    """
    _require_out_of_sample(out_of_sample)
    y, p, valid = prepare_inputs(labels, probs)
    mod = _import("cleanlab.segmentation.rank")
    chip_scores, pixel_scores = mod.get_label_quality_scores(y, p, method=method, batch_size=batch_size,
                                                             verbose=verbose)
    chip_scores = np.asarray(chip_scores, dtype=np.float64)
    pixel_scores = np.asarray(pixel_scores, dtype=np.float32)
    if chip_scores.shape != (y.shape[0],) or pixel_scores.shape != y.shape:
        raise ValueError(f"cleanlab returned scores of shapes {chip_scores.shape}, {pixel_scores.shape}; "
                         f"expected ({y.shape[0]},) and {y.shape}")
    chip_scores = np.where(valid.reshape(len(valid), -1).any(axis=1), chip_scores, np.nan)
    return chip_scores, np.where(valid, pixel_scores, np.nan).astype(np.float32)


def _require_out_of_sample(flag: bool) -> None:
    if flag is not True:
        raise ValueError(
            "out_of_sample must be True: confident learning needs probabilities from a model that never "
            "trained on these chips (cross-validation folds or a separate teacher); in-sample "
            "probabilities reproduce the label errors they should reveal")


__all__ = ["INSTALL_HINT", "find_label_issues", "label_quality_scores", "prepare_inputs"]
