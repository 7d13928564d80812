"""Weak labels recomputed from a chip's imagery the way Sen1Floods11 made them, and compared.

Sen1Floods11 (Bonafilia et al., CVPR Workshops 2020) built its weak labels from imagery alone:

* ``S1OtsuLabel*``: water where Sentinel-1 VH backscatter (dB) is below an Otsu threshold. The
  metadata (``Sen1Floods11_Metadata.geojson``, property ``VH_thresh``) records one threshold per
  event; Otsu can also be run per chip. Both are recomputed here: ``s1_otsu_chip`` (threshold
  from this chip's VH histogram) and ``s1_otsu_event`` (the event threshold).
* ``S2IndexLabelWeak``: a Sentinel-2 water index with a simple cloud mask -> ``s2_index_recomputed``.

The primitives (Otsu, NDWI/MNDWI, cloud mask) live in :mod:`floodnb.labels.weak`; this module
applies them to a chip ``xr.Dataset`` (:func:`floodnb.data.io.load_chip`) and compares the result
with the weak layers the dataset provides (``s1_otsu``, ``s2_index``) and the hand label.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import xarray as xr

from floodnb.labels.noise import confusion_stats, pair_confusion

#: recomputed variable -> the provided layer (chip variable) it reproduces
PROVIDED_FOR: dict[str, str] = {
    "s1_otsu_chip": "s1_otsu",
    "s1_otsu_event": "s1_otsu",
    "s2_index_recomputed": "s2_index",
}


def recompute_weak_labels(chip: xr.Dataset, *, event_threshold: float | None = None) -> xr.Dataset:
    """Recompute Sen1Floods11-style weak labels from ``chip``'s imagery.

    ``chip``: ``xr.Dataset`` with ``s1 (s1_band, y, x)`` dB and/or ``s2 (s2_band, y, x)``
    reflectance. ``event_threshold``: VH threshold in dB of the chip's event (metadata
    ``VH_thresh``); when None, ``chip.attrs["vh_thresh"]`` is used if present and finite.

    Returns a Dataset on the chip's grid (coords and attrs copied) with int16 ``(y, x)`` labels in
    {-1, 0, 1}: ``s1_otsu_chip`` and (given a threshold) ``s1_otsu_event`` when S1 is present,
    ``s2_index_recomputed`` when S2 is present; attrs ``otsu_threshold_chip_db`` (NaN if the chip
    has no valid VH pixel) and ``event_threshold_db``.
    """
    from floodnb.labels import weak  # the weak-label primitives

    if not isinstance(chip, xr.Dataset):
        raise ValueError(f"chip must be an xr.Dataset (floodnb.data.io.load_chip), got {type(chip).__name__}")
    if "s1" not in chip and "s2" not in chip:
        raise ValueError(f"chip {chip.attrs.get('chip_id', '?')!r} has neither 's1' nor 's2' imagery to recompute from")
    if event_threshold is None and "vh_thresh" in chip.attrs:
        t = chip.attrs["vh_thresh"]
        event_threshold = float(t) if t is not None and math.isfinite(float(t)) else None
    out = xr.Dataset(coords={k: v for k, v in chip.coords.items() if set(v.dims) <= {"y", "x"}},
                     attrs=dict(chip.attrs))
    out.attrs["event_threshold_db"] = float("nan") if event_threshold is None else float(event_threshold)
    if "s1" in chip:
        s1 = np.asarray(chip["s1"].values, dtype=np.float32)
        vh = s1[1]
        finite = vh[np.isfinite(vh)]
        thr = float(weak.otsu_threshold(finite)) if finite.size else float("nan")
        out.attrs["otsu_threshold_chip_db"] = thr
        out["s1_otsu_chip"] = (("y", "x"), np.asarray(weak.otsu_label(s1), dtype=np.int16))
        if event_threshold is not None:
            out["s1_otsu_event"] = (("y", "x"),
                                    np.asarray(weak.otsu_label(s1, threshold=event_threshold), dtype=np.int16))
    if "s2" in chip:
        s2 = np.asarray(chip["s2"].values, dtype=np.float32)
        out["s2_index_recomputed"] = (("y", "x"), np.asarray(weak.s2_index_label(s2), dtype=np.int16))
    return out


def compare_weak_labels(chip: xr.Dataset, recomputed: xr.Dataset) -> pd.DataFrame:
    """One row per (recomputed label, reference) pair present: agreement statistics.

    References: the provided weak layer the label reproduces (:data:`PROVIDED_FOR`) and the hand
    ``label`` when present. Columns: ``chip_id``, ``recomputed``, ``reference``,
    ``valid_pixels``, ``agreement``, ``kappa``, ``water_iou``, ``recomputed_water_fraction``,
    ``reference_water_fraction``. A pair with no pixel valid in both has NaN statistics and
    ``valid_pixels`` 0.
    """
    rows = []
    for name in recomputed.data_vars:
        refs = [r for r in (PROVIDED_FOR.get(str(name)), "label") if r is not None and r in chip]
        for ref in refs:
            cm = pair_confusion(np.asarray(chip[ref].values), np.asarray(recomputed[name].values),
                                a_name=ref, b_name=str(name))
            st = confusion_stats(cm)
            rows.append({
                "chip_id": chip.attrs.get("chip_id"), "recomputed": str(name), "reference": ref,
                "valid_pixels": int(st["valid_pixels"]), "agreement": float(st["agreement"]),
                "kappa": float(st["kappa"]), "water_iou": float(st["water_iou"]),
                "recomputed_water_fraction": float(st["b_water_fraction"]),
                "reference_water_fraction": float(st["a_water_fraction"]),
            })
    return pd.DataFrame(rows, columns=[
        "chip_id", "recomputed", "reference", "valid_pixels", "agreement", "kappa", "water_iou",
        "recomputed_water_fraction", "reference_water_fraction"])


__all__ = ["PROVIDED_FOR", "compare_weak_labels", "recompute_weak_labels"]
