"""Baselines the student must beat (Bonafilia et al. 2020; Garg et al. 2023).

* :func:`otsu_baseline` — threshold VH backscatter: Otsu per chip, one threshold per event (the
  Sen1Floods11 metadata ``VH_thresh``, or Otsu over the event's pooled VH values), or a fixed
  dB threshold. No training. Uses :mod:`floodnb.labels.weak`.
* :func:`train_baseline` — a Sentinel-1 U-Net trained on the Otsu weak labels
  (``kind="s1_weak"``, the Sen1Floods11 baseline Garg et al. beat) or on hand labels only
  (``kind="s1_hand"``); optional CromSS pixel weights (``batch["weight"]``) and edge weighting.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from torch.utils.data import Dataset

from floodnb.bands import S1_BANDS
from floodnb.distill.engine import TrainConfig
from floodnb.distill.evaluate import InputPlan, evaluate_label_maps
from floodnb.distill.runner import EdgeOption, SupervisedObjective, TrainedRun, normalizer_dicts, train_method
from floodnb.references import reference_key

BASELINE_KINDS: dict[str, str] = {"s1_weak": "weak", "s1_hand": "label"}
OTSU_MODES: tuple[str, ...] = ("chip", "event", "fixed")
#: Pixels per chip fed to the pooled per-event Otsu (regular subsample; bounds memory).
EVENT_SAMPLE: int = 65536


def train_baseline(*, kind: str, train: Dataset, out_dir: str | Path, valid: Dataset | None = None,
                   model: str = "unet_small", class_weights: Sequence[float] | None = None,
                   edge: EdgeOption | None = None, cromss: bool = False, normalizers: Mapping | None = None,
                   config: TrainConfig | None = None, evaluate_on: Mapping[str, Dataset] | None = None,
                   reference: str = "label", resume: bool = True, step_callback=None,
                   model_kw: Mapping | None = None) -> TrainedRun:
    """Train an S1-only model on weak (``"s1_weak"``: sample key ``weak``) or hand (``"s1_hand"``) labels.

    ``cromss=True`` weights the loss by ``batch["weight"]`` (CromSS pixel weights, Liu et al.
    TGRS 2025) that the training samples must carry. Validation and evaluation always score
    against ``reference`` (hand labels or simulated truth), never against the weak label.
    ``model_kw``: architecture overrides for :func:`floodnb.models.build_model` (e.g. ``{"width": 8}``).
    """
    if kind not in BASELINE_KINDS:
        raise ValueError(f"kind={kind!r}: expected one of {tuple(BASELINE_KINDS)}")
    plan = InputPlan(inputs=("s1",))
    objective = SupervisedObjective(plan=plan, target=BASELINE_KINDS[kind],
                                    class_weights=tuple(class_weights) if class_weights is not None else None,
                                    edge=edge, use_weight=cromss)
    return train_method(method=f"baseline_{kind}", model_name=model, plan=plan, bands={"s1": S1_BANDS},
                        normalizers=normalizer_dicts(normalizers, ("s1",), train), objective=objective, train=train,
                        valid=valid, out_dir=out_dir,
                        config=TrainConfig() if config is None else config, evaluate_on=evaluate_on,
                        reference=reference,
                        extra_config={"kind": kind, "cromss": cromss,
                                      "class_weights": list(class_weights) if class_weights is not None else None,
                                      "edge": None if edge is None else vars(edge)},
                        resume=resume, step_callback=step_callback, model_kw=model_kw)


def _chips(chips) -> Iterable:
    if isinstance(chips, pd.DataFrame):
        from floodnb.data.io import load_chip

        has_truth = "truth_water_path" in chips.columns
        return (load_chip(row, roles=("s1", "label"), with_truth=has_truth and bool(pd.notna(row["truth_water_path"])))
                for _, row in chips.iterrows())
    return chips


def _attr(chip, key: str):
    return chip.attrs[key] if key in chip.attrs else None


class EventThresholdWarning(UserWarning):
    """``otsu_baseline(mode="event")``: an event has no metadata threshold; a stand-in is used (named)."""


#: Where an ``otsu_event`` threshold came from (``threshold_source`` column of the per-chip table).
THRESHOLD_SOURCES: dict[str, str] = {
    "given": "event_thresholds argument",
    "metadata": "Sen1Floods11_Metadata.geojson VH_thresh (chip attr vh_thresh)",
    "otsu_pooled": "Otsu over the event's pooled VH values of the chips scored (no metadata threshold)",
    "chip_otsu": "Otsu on the chip's own VH",
    "fixed": "fixed threshold argument",
}


def _finite(v) -> bool:
    return v is not None and np.isfinite(float(v))


def event_thresholds_of(chips: Sequence, event_thresholds: Mapping[str, float] | None = None
                        ) -> tuple[dict[str, float], dict[str, str]]:
    """One VH threshold (dB) per event of ``chips`` and its source (a key of :data:`THRESHOLD_SOURCES`).

    Order of preference: ``event_thresholds[event]``, the chips' ``vh_thresh`` attribute (the
    event's ``VH_thresh`` in ``Sen1Floods11_Metadata.geojson``, Bonafilia et al. 2020), else Otsu
    over the event's pooled VH values (every chip subsampled to <= :data:`EVENT_SAMPLE` pixels).
    Events that fall back are named in an :class:`EventThresholdWarning`. Events without a single
    valid VH pixel get NaN.
    """
    from floodnb.labels import weak

    thresholds: dict[str, float] = {}
    sources: dict[str, str] = {}
    pooled: dict[str, list[np.ndarray]] = {}
    for c in chips:
        ev = str(_attr(c, "event"))
        if event_thresholds is not None and ev in event_thresholds:
            thresholds[ev], sources[ev] = float(event_thresholds[ev]), "given"
        elif _finite(_attr(c, "vh_thresh")):
            if ev not in thresholds:
                thresholds[ev], sources[ev] = float(_attr(c, "vh_thresh")), "metadata"
        else:
            vh = np.asarray(c["s1"].values[1], dtype=np.float32).ravel()
            vh = vh[np.isfinite(vh)]
            pooled.setdefault(ev, []).append(vh[::max(1, vh.size // EVENT_SAMPLE)])
    fallback = sorted(ev for ev in pooled if ev not in thresholds)
    for ev in fallback:
        vals = np.concatenate(pooled[ev])
        thresholds[ev] = float(weak.otsu_threshold(vals)) if vals.size else float("nan")
        sources[ev] = "otsu_pooled"
    if fallback:
        import warnings

        shown = ", ".join(f"{ev} ({thresholds[ev]:.2f} dB)" for ev in fallback)
        warnings.warn(f"otsu_event: events without a metadata VH threshold (chip attr vh_thresh from "
                      f"Sen1Floods11_Metadata.geojson VH_thresh): {shown}; using Otsu over each event's pooled VH "
                      "values of the chips scored instead (threshold_source 'otsu_pooled')",
                      EventThresholdWarning, stacklevel=3)
    return thresholds, sources


def otsu_baseline(chips, *, mode: str = "chip", threshold: float | None = None,
                  event_thresholds: Mapping[str, float] | None = None, reference: str = "label",
                  split: str | None = None) -> tuple[dict, pd.DataFrame]:
    """Score VH thresholding against ``reference`` over ``chips``; returns ``(metrics, per_chip)``.

    ``chips``: chip ``xr.Dataset`` s (``floodnb.data.io.load_chip``: ``s1 (2, y, x)`` in dB,
    ``label``/``truth_water``, attrs ``chip_id``, ``event``, ``vh_thresh``) or a catalog DataFrame.
    ``mode``: ``"chip"`` — Otsu on each chip's VH; ``"event"`` — one threshold per event
    (:func:`event_thresholds_of`: ``event_thresholds[event]``, else the event's metadata
    ``VH_thresh``, else — with an :class:`EventThresholdWarning` — Otsu over the event's pooled
    VH values); ``"fixed"`` — ``threshold`` dB for all chips. Pixels without S1 are predicted -1
    and ignored. The per-chip table has the threshold used (``vh_threshold_db``) and where it came
    from (``threshold_source``, a key of :data:`THRESHOLD_SOURCES`); in event mode the metrics
    hold ``event_thresholds``: event -> ``{"vh_threshold_db", "source"}``.
    """
    from floodnb.labels import weak

    if mode not in OTSU_MODES:
        raise ValueError(f"mode={mode!r}: expected one of {OTSU_MODES}")
    if mode == "fixed" and threshold is None:
        raise ValueError("mode='fixed' needs threshold= (VH in dB)")
    key = reference_key(reference, "chip")
    chips = list(_chips(chips))
    if not chips:
        raise ValueError("otsu_baseline: no chips (empty split?)")
    thresholds, sources = event_thresholds_of(chips, event_thresholds) if mode == "event" else ({}, {})
    preds, refs, ids, used, used_src = [], [], [], [], []
    for c in chips:
        cid = str(_attr(c, "chip_id"))
        if key not in c:
            raise ValueError(f"chip {cid}: reference {reference!r} needs variable {key!r}; "
                             f"the chip has {list(c.data_vars)}")
        s1 = np.asarray(c["s1"].values, dtype=np.float32)
        if mode == "chip":
            t = None
        elif mode == "fixed" and threshold is not None:  # checked above: fixed mode has a threshold
            t = float(threshold)
        else:
            t = thresholds[str(_attr(c, "event"))]
        if t is not None and not np.isfinite(t):  # an event without a single valid VH pixel
            pred = np.full(s1.shape[1:], -1, dtype=np.int16)
        else:
            pred = np.asarray(weak.otsu_label(s1, threshold=t))
        src = "chip_otsu" if mode == "chip" else "fixed" if mode == "fixed" else sources[str(_attr(c, "event"))]
        if t is None:
            vh = s1[1][np.isfinite(s1[1])]
            t = float(weak.otsu_threshold(vh)) if vh.size else float("nan")
        preds.append(pred)
        refs.append(np.asarray(c[key].values))
        ids.append(cid)
        used.append(t)
        used_src.append(src)
    metrics, table = evaluate_label_maps(preds, refs, ids, split=split, reference=reference)
    table["vh_threshold_db"] = used
    table["threshold_source"] = used_src
    metrics = {**metrics, "method": f"otsu_{mode}", "metric": "water_iou (global confusion matrix, valid pixels)"}
    if mode == "event":
        metrics["event_thresholds"] = {ev: {"vh_threshold_db": thresholds[ev], "source": sources[ev]}
                                       for ev in sorted(thresholds)}
    return metrics, table
