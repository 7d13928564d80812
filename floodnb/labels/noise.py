"""Label-noise scores: pure numpy functions over label and probability arrays.

Shapes (documented once, used everywhere):

* ``labels``: ``(N, H, W)`` integer, values in {-1 nodata, 0 dry, 1 water}
  (:data:`~floodnb.bands.LABEL_NODATA`, ``DRY``, ``WATER``). A single chip ``(H, W)`` is accepted
  wherever ``(N, H, W)`` is, and the result then has no chip axis.
* ``probs``: ``(N, K, H, W)`` float class probabilities (``K = 2``: dry, water) that sum to one
  over ``K`` for every valid pixel (within ``atol``); nodata pixels are NaN in all ``K``.
  A single chip is ``(K, H, W)``. The probabilities of a model must be *out of sample* for the
  chips they score (cross-validation folds or a model that never saw them), otherwise a model that
  memorised a wrong label agrees with it.
* ``score``: ``(N, H, W)`` float per-pixel noise score in [0, 1] (high = label likely wrong),
  NaN where the pixel has no label or no data.

Scores:

* agreement between two label sources (hand vs weak, weak vs weak, teacher vs weak):
  :func:`pair_confusion` (per-chip ``(K, K)`` matrices, rows = first source),
  :func:`disagreement_map`, :func:`agreement_table`, :func:`event_confusion`;
* self-confidence of a label under a model, ``P(y | x)`` (:func:`self_confidence`) and its
  complement :func:`label_noise_score` — the per-pixel quantity confident learning
  (Northcutt et al., JAIR 2021) ranks by;
* :func:`chip_noise_rate` (mean score over valid pixels) and :func:`rank_chips` (worst first).
  A chip without a single valid pixel gets no score: NaN rate, status ``"no valid pixels"``, no
  rank (``<NA>``), listed after every ranked chip — never a NaN inside the ranking.

Bad input raises ``ValueError`` naming the argument: labels outside {-1, 0, 1}, probabilities
outside [0, 1] or not summing to one, shape mismatches.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from floodnb.bands import LABEL_NODATA, NUM_CLASSES, WATER

#: Status of a chip in the tables.
STATUS_OK = "ok"
STATUS_NO_VALID = "no valid pixels"
#: Default tolerance on ``sum_k probs - 1``.
PROB_ATOL = 1e-3


# ---------------------------------------------------------------- validation
def check_labels(labels, *, name: str = "labels") -> np.ndarray:
    """Return ``labels`` as an integer array after checking every value is in {-1, 0, 1}.

    Accepts integer arrays and float arrays holding whole numbers (e.g. a label read as float).
    Raises ``ValueError`` naming ``name`` and the offending values otherwise. Never copies an
    integer input.
    """
    arr = np.asarray(labels)
    if arr.ndim < 2:
        raise ValueError(f"{name} must have shape (N, H, W) or (H, W), got {arr.shape}")
    if arr.dtype.kind == "b":
        raise ValueError(f"{name} must be integer labels in {{-1, 0, 1}}, got a boolean array")
    if arr.dtype.kind == "f":
        if not np.isfinite(arr).all() or not np.array_equal(arr, np.round(arr)):
            raise ValueError(f"{name} must hold whole numbers in {{-1, 0, 1}} (no NaN), got non-integer values")
        arr = arr.astype(np.int16)
    elif arr.dtype.kind not in "iu":
        raise ValueError(f"{name} must be an integer array with values in {{-1, 0, 1}}, got dtype {arr.dtype}")
    bad = (arr < LABEL_NODATA) | (arr > WATER)
    if bad.any():
        vals = np.unique(arr[bad])[:5].tolist()
        raise ValueError(
            f"{name} holds {int(bad.sum())} values outside {{-1 nodata, 0 dry, 1 water}}, e.g. {vals}"
        )
    return arr


def check_probs(probs, *, name: str = "probs", atol: float = PROB_ATOL) -> np.ndarray:
    """Return ``probs`` ``(..., K, H, W)`` as float32 after checking it is a distribution per pixel.

    Nodata pixels are NaN in all ``K`` (a pixel NaN in only some classes is an error). Valid
    pixels must lie in ``[-atol, 1 + atol]`` and sum to one within ``atol``. Raises
    ``ValueError`` naming ``name``, the number of bad pixels and the worst deviation.
    """
    arr = np.asarray(probs)
    if arr.ndim < 3:
        raise ValueError(f"{name} must have shape (N, K, H, W) or (K, H, W), got {arr.shape}")
    if arr.dtype.kind != "f":
        raise ValueError(f"{name} must be floating-point probabilities, got dtype {arr.dtype}")
    if arr.shape[-3] < 2:
        raise ValueError(f"{name} needs K >= 2 classes on axis -3, got shape {arr.shape}")
    arr = arr.astype(np.float32, copy=False)
    finite = np.isfinite(arr)
    any_f, all_f = finite.any(axis=-3), finite.all(axis=-3)
    partial = any_f & ~all_f
    if partial.any():
        raise ValueError(
            f"{name}: {int(partial.sum())} pixels are NaN/inf in some classes only; nodata pixels must "
            "be NaN in every class"
        )
    with np.errstate(invalid="ignore"):
        out_of_range = all_f[..., None, :, :] & ((arr < -atol) | (arr > 1 + atol))
    if out_of_range.any():
        raise ValueError(
            f"{name}: {int(out_of_range.sum())} values outside [0, 1] (e.g. "
            f"{float(arr[out_of_range].flat[0]):.4g}); pass probabilities (softmax), not logits"
        )
    total = np.where(all_f, np.nansum(arr, axis=-3, dtype=np.float64), 1.0)
    dev = np.abs(total - 1.0)
    if (dev > atol).any():
        raise ValueError(
            f"{name}: {int((dev > atol).sum())} pixels whose class probabilities do not sum to one "
            f"(worst |sum - 1| = {float(dev.max()):.4g} > atol={atol}); expected a softmax over axis -3"
        )
    return arr


def _check_same_grid(a: np.ndarray, b: np.ndarray, a_name: str, b_name: str) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{a_name} shape {a.shape} != {b_name} shape {b.shape}; both must be (N, H, W)")


def _check_probs_for_labels(labels: np.ndarray, probs: np.ndarray) -> None:
    if probs.ndim != labels.ndim + 1 or probs.shape[:-3] + probs.shape[-2:] != labels.shape:
        raise ValueError(
            f"probs shape {probs.shape} does not match labels shape {labels.shape}: expected "
            "probs (N, K, H, W) for labels (N, H, W), or (K, H, W) for (H, W)"
        )


# ---------------------------------------------------------------- agreement
def pair_confusion(a, b, *, num_classes: int = NUM_CLASSES, a_name: str = "a", b_name: str = "b") -> np.ndarray:
    """Per-chip confusion matrices between two label sources.

    ``a``, ``b``: labels ``(N, H, W)`` (or ``(H, W)``). Returns int64 ``(N, K, K)`` (or
    ``(K, K)``) with rows = ``a``'s class and columns = ``b``'s class, counted over pixels valid in
    both (neither is -1). With ``a`` the reference (hand label) this is the
    :func:`floodnb.metrics.confusion` convention.
    """
    a = check_labels(a, name=a_name)
    b = check_labels(b, name=b_name)
    _check_same_grid(a, b, a_name, b_name)
    single = a.ndim == 2
    a3 = a.reshape((-1,) + a.shape[-2:])
    b3 = b.reshape((-1,) + b.shape[-2:])
    k2 = num_classes * num_classes
    out = np.empty((a3.shape[0], num_classes, num_classes), dtype=np.int64)
    for i in range(a3.shape[0]):  # one chip at a time keeps the index arrays small
        ai = a3[i].astype(np.int64).ravel()
        bi = b3[i].astype(np.int64).ravel()
        ok = (ai >= 0) & (bi >= 0)
        out[i] = np.bincount(ai[ok] * num_classes + bi[ok], minlength=k2).reshape(num_classes, num_classes)
    return out[0] if single else out.reshape(a.shape[:-2] + (num_classes, num_classes))


def disagreement_map(a, b, *, a_name: str = "a", b_name: str = "b") -> np.ndarray:
    """Where two label sources disagree: int8 of the labels' shape.

    1 = both valid and different, 0 = both valid and equal, -1 = nodata in either source.
    """
    a = check_labels(a, name=a_name)
    b = check_labels(b, name=b_name)
    _check_same_grid(a, b, a_name, b_name)
    out = (a != b).astype(np.int8)
    out[(a == LABEL_NODATA) | (b == LABEL_NODATA)] = -1
    return out


def confusion_stats(cm) -> dict[str, np.ndarray]:
    """Summary of binary confusion matrices ``(..., 2, 2)`` (rows = reference ``a``).

    Returns arrays of the leading shape: ``valid_pixels``, ``agreement`` (fraction equal),
    ``disagreement_rate`` (1 - agreement), ``kappa`` (Cohen's kappa), ``water_iou`` (IoU of water
    between the sources), ``a_water_fraction``, ``b_water_fraction``. Undefined values (no valid
    pixel, no water in either source) are NaN.
    """
    cm = np.asarray(cm, dtype=np.float64)
    if cm.shape[-2:] != (2, 2):
        raise ValueError(f"cm must have shape (..., 2, 2), got {cm.shape}")
    n = cm.sum(axis=(-2, -1))
    tn, fp, fn, tp = cm[..., 0, 0], cm[..., 0, 1], cm[..., 1, 0], cm[..., 1, 1]
    with np.errstate(invalid="ignore", divide="ignore"):
        agree = np.where(n > 0, (tn + tp) / n, np.nan)
        pa, pb = (fn + tp) / n, (fp + tp) / n  # water fraction in a, in b
        pe = pa * pb + (1 - pa) * (1 - pb)
        kappa = np.where((n > 0) & (pe < 1), (agree - pe) / (1 - pe), np.where(agree == 1, 1.0, np.nan))
        union = tp + fp + fn
        iou = np.where(union > 0, tp / np.where(union > 0, union, 1), np.nan)
    return {
        "valid_pixels": n.astype(np.int64),
        "agreement": agree,
        "disagreement_rate": 1.0 - agree,
        "kappa": kappa,
        "water_iou": iou,
        "a_water_fraction": np.where(n > 0, pa, np.nan),
        "b_water_fraction": np.where(n > 0, pb, np.nan),
    }


def agreement_table(
    a, b, *, chip_ids: Sequence[str], events: Sequence[str] | None = None,
    names: tuple[str, str] = ("a", "b"),
) -> pd.DataFrame:
    """One row per chip comparing two label sources ``a``, ``b`` (labels ``(N, H, W)``).

    Columns: ``chip_id``, ``event`` (if given), ``source_a``, ``source_b``, ``valid_pixels``,
    ``agreement``, ``disagreement_rate``, ``kappa``, ``water_iou``, ``a_water_fraction``,
    ``b_water_fraction``, ``n00 n01 n10 n11`` (counts; first digit = ``a``'s class), ``status``
    (``"ok"`` or ``"no valid pixels"``).
    """
    cms = pair_confusion(a, b, a_name=names[0], b_name=names[1])
    if cms.ndim == 2:
        cms = cms[None]
    if len(chip_ids) != cms.shape[0]:
        raise ValueError(f"chip_ids has {len(chip_ids)} entries, labels have {cms.shape[0]} chips")
    return _table_from_cms(cms, chip_ids=chip_ids, events=events, names=names)


def _table_from_cms(cms: np.ndarray, *, chip_ids, events, names) -> pd.DataFrame:
    stats = confusion_stats(cms)
    df = pd.DataFrame({"chip_id": list(chip_ids)})
    if events is not None:
        if len(events) != len(df):
            raise ValueError(f"events has {len(events)} entries, expected {len(df)} (one per chip)")
        df["event"] = list(events)
    df["source_a"], df["source_b"] = names
    for k, v in stats.items():
        df[k] = v
    for i in range(2):
        for j in range(2):
            df[f"n{i}{j}"] = cms[:, i, j]
    df["status"] = np.where(stats["valid_pixels"] > 0, STATUS_OK, STATUS_NO_VALID)
    return df


def event_confusion(cms, events: Sequence[str], *, names: tuple[str, str] = ("a", "b")) -> pd.DataFrame:
    """Per-event confusion between two sources from per-chip matrices ``cms (N, 2, 2)``.

    Sums the chips' matrices per event (a global matrix per event, as the water IoU of
    Sen1Floods11 is computed) and adds an ``"all"`` row. Columns: ``event``, ``chips``,
    ``source_a``, ``source_b``, ``n00 n01 n10 n11`` (rows = ``a``), and the
    :func:`confusion_stats` columns.
    """
    cms = np.asarray(cms, dtype=np.int64)
    if cms.ndim != 3 or cms.shape[1:] != (2, 2):
        raise ValueError(f"cms must have shape (N, 2, 2), got {cms.shape}")
    event_arr = np.asarray(list(events), dtype=object)
    if len(event_arr) != cms.shape[0]:
        raise ValueError(f"events has {len(event_arr)} entries, cms has {cms.shape[0]} chips")
    keys = sorted(set(event_arr.tolist()), key=str)
    sums = [cms[event_arr == e].sum(axis=0) for e in keys] + [cms.sum(axis=0)]
    counts = [int((event_arr == e).sum()) for e in keys] + [len(event_arr)]
    df = _table_from_cms(np.stack(sums) if sums else np.zeros((0, 2, 2), np.int64),
                         chip_ids=[*keys, "all"], events=None, names=names)
    df = df.rename(columns={"chip_id": "event"}).drop(columns="status")
    df.insert(1, "chips", counts)
    return df


# ---------------------------------------------------------------- model-based scores
def self_confidence(labels, probs, *, atol: float = PROB_ATOL) -> np.ndarray:
    """Self-confidence ``P(y | x)`` of each label under a model: float32 of ``labels``' shape.

    ``labels (N, H, W)``, ``probs (N, K, H, W)`` (out-of-sample, see module doc). NaN where the
    label is nodata or the probabilities are NaN. Low values mark labels the model doubts
    (confident learning, Northcutt et al. 2021; CromSS's label confidence, Liu et al. 2025).
    """
    labels = check_labels(labels)
    probs = check_probs(probs, atol=atol)
    _check_probs_for_labels(labels, probs)
    k = probs.shape[-3]
    if labels.max(initial=LABEL_NODATA) >= k:
        raise ValueError(f"labels hold class {int(labels.max())} but probs has only K={k} classes")
    idx = np.clip(labels, 0, None).astype(np.intp)[..., None, :, :]
    p = np.take_along_axis(probs, idx, axis=-3)[..., 0, :, :]
    return np.where(labels == LABEL_NODATA, np.nan, p).astype(np.float32)


def label_noise_score(labels, probs, *, atol: float = PROB_ATOL) -> np.ndarray:
    """Per-pixel noise score ``1 - P(y | x)`` in [0, 1] (NaN = no label/data); see :func:`self_confidence`."""
    return (1.0 - self_confidence(labels, probs, atol=atol)).astype(np.float32)


# ---------------------------------------------------------------- chip level
def valid_pixel_count(score) -> np.ndarray:
    """Number of finite pixels per chip of ``score (N, H, W)`` -> int64 ``(N,)``."""
    s = np.asarray(score)
    return np.isfinite(s).reshape(s.shape[:-2] + (-1,)).sum(axis=-1)


def chip_noise_rate(score) -> np.ndarray:
    """Per-chip noise rate: mean of ``score (N, H, W)`` over its finite pixels -> float64 ``(N,)``.

    For a binary score (disagreement 0/1, planted-error flags) this is the fraction of valid pixels
    flagged; for ``1 - P(y|x)`` it is the expected fraction of wrong labels if the model is
    calibrated. A chip with no finite pixel gets NaN here — :func:`rank_chips` turns that into
    "no score", never a ranked NaN.
    """
    s = np.asarray(score, dtype=np.float64)
    if s.ndim < 2:
        raise ValueError(f"score must have shape (N, H, W) or (H, W), got {s.shape}")
    flat = s.reshape(s.shape[:-2] + (-1,))
    n = np.isfinite(flat).sum(axis=-1)
    total = np.where(np.isfinite(flat), flat, 0.0).sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, total / np.where(n > 0, n, 1), np.nan)


def rank_chips(
    rates, *, chip_ids: Sequence[str], column: str = "noise_rate",
    extra: dict[str, Sequence] | None = None,
) -> pd.DataFrame:
    """Chips ranked worst (highest ``rates``) first.

    ``rates``: ``(N,)`` float, NaN for chips without a score. Returns a DataFrame with
    ``chip_id``, ``column``, the ``extra`` columns, ``rank`` (nullable Int64, 1 = worst) and
    ``status``. Unscored chips (NaN) get ``rank`` ``<NA>`` and status ``"no valid pixels"`` and
    come after all ranked chips; ties keep the input order (stable sort).
    """
    r = np.asarray(rates, dtype=np.float64).reshape(-1)
    if len(chip_ids) != r.shape[0]:
        raise ValueError(f"chip_ids has {len(chip_ids)} entries, rates has {r.shape[0]}")
    if np.isinf(r).any():
        raise ValueError(f"{column} holds infinite values; expected finite rates or NaN for unscored chips")
    df = pd.DataFrame({"chip_id": list(chip_ids), column: r})
    for k, v in (extra or {}).items():
        if len(v) != len(df):
            raise ValueError(f"extra column {k!r} has {len(v)} entries, expected {len(df)}")
        df[k] = list(v)
    scored = np.isfinite(r)
    order = np.concatenate([
        np.flatnonzero(scored)[np.argsort(-r[scored], kind="stable")], np.flatnonzero(~scored)])
    df = df.iloc[order].reset_index(drop=True)
    n_scored = int(scored.sum())
    df["rank"] = pd.array(list(range(1, n_scored + 1)) + [None] * (len(df) - n_scored), dtype="Int64")
    df["status"] = [STATUS_OK] * n_scored + [STATUS_NO_VALID] * (len(df) - n_scored)
    return df


__all__ = [
    "PROB_ATOL", "STATUS_NO_VALID", "STATUS_OK", "agreement_table", "check_labels", "check_probs",
    "chip_noise_rate", "confusion_stats", "disagreement_map", "event_confusion", "label_noise_score",
    "pair_confusion", "rank_chips", "self_confidence", "valid_pixel_count",
]
