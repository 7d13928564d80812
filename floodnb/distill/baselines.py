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

BASELINE_KINDS: dict[str, str] = {"s1_weak": "weak", "s1_hand": "label"}
OTSU_MODES: tuple[str, ...] = ("chip", "event", "fixed")
#: Pixels per chip fed to the pooled per-event Otsu (regular subsample; bounds memory).
EVENT_SAMPLE: int = 65536


def train_baseline(*, kind: str, train: Dataset, out_dir: str | Path, valid: Dataset | None = None,
                   model: str = "unet_small", class_weights: Sequence[float] | None = None,
                   edge: EdgeOption | None = None, cromss: bool = False, normalizers: Mapping | None = None,
                   config: TrainConfig = TrainConfig(), evaluate_on: Mapping[str, Dataset] | None = None,
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
                        valid=valid, out_dir=out_dir, config=config, evaluate_on=evaluate_on, reference=reference,
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


def otsu_baseline(chips, *, mode: str = "chip", threshold: float | None = None,
                  event_thresholds: Mapping[str, float] | None = None, reference: str = "label",
                  split: str | None = None) -> tuple[dict, pd.DataFrame]:
    """Score VH thresholding against ``reference`` over ``chips``; returns ``(metrics, per_chip)``.

    ``chips``: chip ``xr.Dataset`` s (``floodnb.data.io.load_chip``: ``s1 (2, y, x)`` in dB,
    ``label``/``truth_water``, attrs ``chip_id``, ``event``, ``vh_thresh``) or a catalog DataFrame.
    ``mode``: ``"chip"`` — Otsu on each chip's VH; ``"event"`` — one threshold per event, from
    ``event_thresholds[event]``, else the chip's ``vh_thresh`` attribute (Sen1Floods11 metadata),
    else Otsu over the event's pooled VH values; ``"fixed"`` — ``threshold`` dB for all chips.
    Pixels without S1 are predicted -1 and ignored. The per-chip table has the threshold used.
    """
    from floodnb.labels import weak

    if mode not in OTSU_MODES:
        raise ValueError(f"mode={mode!r}: expected one of {OTSU_MODES}")
    if mode == "fixed" and threshold is None:
        raise ValueError("mode='fixed' needs threshold= (VH in dB)")
    ref_key = {"label": "label", "truth_water": "truth_water", "truth": "truth_water"}
    if reference not in ref_key:
        raise ValueError(f"reference={reference!r}: expected one of {tuple(ref_key)}")
    chips = list(_chips(chips))
    if not chips:
        raise ValueError("otsu_baseline: no chips (empty split?)")
    thresholds: dict[str, float] = {}
    if mode == "event":
        pooled: dict[str, list[np.ndarray]] = {}
        for c in chips:
            ev = str(_attr(c, "event"))
            if event_thresholds is not None and ev in event_thresholds:
                thresholds[ev] = float(event_thresholds[ev])
            elif _attr(c, "vh_thresh") is not None and np.isfinite(float(_attr(c, "vh_thresh"))):
                thresholds.setdefault(ev, float(_attr(c, "vh_thresh")))
            else:
                vh = np.asarray(c["s1"].values[1], dtype=np.float32).ravel()
                vh = vh[np.isfinite(vh)]
                step = max(1, vh.size // EVENT_SAMPLE)
                pooled.setdefault(ev, []).append(vh[::step])
        for ev, parts in pooled.items():
            if ev not in thresholds:
                vals = np.concatenate(parts)
                thresholds[ev] = float(weak.otsu_threshold(vals)) if vals.size else float("nan")
    preds, refs, ids, used = [], [], [], []
    for c in chips:
        cid = str(_attr(c, "chip_id"))
        key = ref_key[reference]
        if key not in c:
            raise ValueError(f"chip {cid}: reference {reference!r} needs variable {key!r}; the chip has {list(c.data_vars)}")
        s1 = np.asarray(c["s1"].values, dtype=np.float32)
        if mode == "chip":
            t = None
        elif mode == "fixed":
            t = float(threshold)
        else:
            t = thresholds[str(_attr(c, "event"))]
        if t is not None and not np.isfinite(t):  # an event without a single valid VH pixel
            pred = np.full(s1.shape[1:], -1, dtype=np.int16)
        else:
            pred = np.asarray(weak.otsu_label(s1, threshold=t))
        if t is None:
            vh = s1[1][np.isfinite(s1[1])]
            t = float(weak.otsu_threshold(vh)) if vh.size else float("nan")
        preds.append(pred)
        refs.append(np.asarray(c[key].values))
        ids.append(cid)
        used.append(t)
    metrics, table = evaluate_label_maps(preds, refs, ids, split=split, reference=reference)
    table["vh_threshold_db"] = used
    metrics = {**metrics, "method": f"otsu_{mode}", "metric": "water_iou (global confusion matrix, valid pixels)"}
    return metrics, table
