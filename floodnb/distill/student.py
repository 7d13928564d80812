"""The Sentinel-1 student of cross-modal distillation (Garg et al. 2023, arXiv 2302.08180).

The student sees Sentinel-1 only (never metadata: Bernhard et al. 2024). Its loss is
cross-entropy on hand labels and, on the pool, distillation from the teacher's probabilities,
combined per pixel with explicit ``hand_weight`` / ``distill_weight`` and a fixed number of hand
chips in every batch (:mod:`floodnb.distill.mixing`); distillation targets are
soft targets (KL at temperature T, Hinton et al. 2015) or confident hard pseudo-labels
(threshold) — with optional edge weighting (Garg et al.) and optional CromSS pixel weights
(Liu et al., TGRS 2025) for the pool.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from torch.utils.data import Dataset

from floodnb.bands import S1_BANDS
from floodnb.distill.engine import TrainConfig
from floodnb.distill.evaluate import InputPlan
from floodnb.distill.inputs import SelectKeys, WithArrays, dataset_len
from floodnb.distill.mixing import HandPoolData, hand_count
from floodnb.distill.runner import DistillObjective, EdgeOption, TrainedRun, normalizer_dicts, train_method

STUDENT_KEYS: tuple[str, ...] = ("s1", "valid", "label", "soft", "soft_weight", "weight", "ratio", "chip_id",
                                  "index")


def _array(a, name: str):
    if a is None:
        return None
    if isinstance(a, (str, Path)):
        p = Path(a)
        if not p.is_file():
            raise FileNotFoundError(f"{name}: {p} not found")
        return np.load(p, mmap_mode="r")
    return a


def pool_targets_info(soft, pool: Dataset | None) -> dict | None:
    """What the student's pool targets are, from the :func:`~floodnb.distill.teacher.label_pool` sidecar.

    Looks at ``soft`` (a path or a memory map opened from one) and else at the ``soft`` of
    ``pool`` or of the datasets it wraps (``.data``). Returns ``{"file", "cloud_mask"}`` (the
    sidecar's cloud-mask record: enabled, method, pixels masked) or None when the targets came
    as a plain array.
    """
    cands = [soft]
    d = pool
    while d is not None:
        cands.append(d.soft if hasattr(d, "soft") else None)
        d = d.data if hasattr(d, "data") and isinstance(d.data, Dataset) else None
    for c in cands:
        path = Path(c) if isinstance(c, (str, Path)) else (
            Path(c.filename) if isinstance(c, np.memmap) and c.filename else None)
        if path is not None and path.with_suffix(".json").is_file():
            from floodnb.distill.teacher import pool_info

            info = pool_info(path)
            return {"file": str(path), "cloud_mask": info["cloud_mask"] if "cloud_mask" in info else None}
    return None


def train_student(*, hand: Dataset, out_dir: str | Path, pool: Dataset | None = None, soft=None,
                  pool_weights=None, valid: Dataset | None = None, mode: str = "soft", temperature: float = 2.0,
                  threshold: float = 0.9, hand_weight: float = 1.0, distill_weight: float = 1.0,
                  edge: EdgeOption | None = None, hand_fraction: float = 0.5, steps_per_epoch: int | None = None,
                  class_weights: Sequence[float] | None = None, model: str = "unet_small",
                  normalizers: Mapping | None = None, config: TrainConfig | None = None,
                  evaluate_on: Mapping[str, Dataset] | None = None, reference: str = "label",
                  resume: bool = True, step_callback=None, model_kw: Mapping | None = None) -> TrainedRun:
    """Train the S1 student on hand labels (``hand``) + teacher targets on ``pool``.

    Loss (:class:`~floodnb.distill.runner.DistillObjective`): one weighted mean over the
    pixels of the batch, ``sum_i (hand_weight * h_i * e_i * CE_i + distill_weight * p_i * e_i *
    c_i * s_b * D_i) / sum_i (hand_weight * h_i * e_i + distill_weight * p_i * e_i * c_i * s_b)``
    (``h_i`` hand-labelled pixel, ``p_i`` pixel with a finite pool target, ``e_i`` edge weight,
    ``c_i`` CromSS pixel weight, ``s_b`` the sample's ``soft_weight``, default 1).

    Batches (:class:`~floodnb.distill.mixing.HandPoolData`): every batch of ``config.batch_size``
    holds exactly ``hand_count(hand_fraction, batch_size)`` hand samples (>= 1) and pool samples
    for the rest, so the hand term is never absent from a step; ``steps_per_epoch`` global batches
    per epoch (default ``ceil((len(hand) + len(pool)) / batch_size)``, as many as a shuffled pass
    over both). Without ``pool`` the student is the S1-hand model
    (plain shuffled epochs over ``hand``).

    ``soft``: teacher probabilities ``(N, K, H, W)`` aligned with ``pool`` (array or the ``.npy``
    of :func:`floodnb.distill.teacher.label_pool`); omit it when ``pool``'s samples already carry
    ``"soft"`` (and optionally ``"soft_weight"``, a per-sample float multiplying that sample's pool
    pixel weights: generated image/soft-label pairs enter this way). ``pool_weights``: optional
    CromSS pixel weights ``(N, H, W)`` aligned with ``pool`` (turns CromSS weighting of the
    distillation term on). Pool targets that are NaN (no input data, or cloud under the teacher's
    Sentinel-2 when ``label_pool(mask_clouds=True)``, the default) are ignored by the distillation
    term in both modes; the run config records the targets' cloud mask (``pool_targets``,
    :func:`pool_targets_info`). ``mode``: ``"soft"`` (KL at ``temperature``) or ``"hard"``
    (confident labels, ``threshold``).
    ``model_kw``: architecture overrides for :func:`floodnb.models.build_model` (e.g. ``{"width": 8}``).
    """
    config = TrainConfig() if config is None else config
    soft_a, weights_a = _array(soft, "soft"), _array(pool_weights, "pool_weights")
    hand_part = SelectKeys(hand, STUDENT_KEYS)
    n_hand = None
    if pool is not None:
        arrays = {}
        if soft_a is not None:
            arrays["soft"] = soft_a
        if weights_a is not None:
            arrays["weight"] = weights_a
        pool_part = SelectKeys(WithArrays(pool, **arrays) if arrays else pool, STUDENT_KEYS)
        n_hand = hand_count(hand_fraction, config.batch_size)
        train: Dataset = HandPoolData(hand_part, pool_part, hand_per_batch=n_hand, steps_per_epoch=steps_per_epoch)
    elif soft_a is not None or weights_a is not None:
        raise ValueError("soft/pool_weights given without pool: they must be aligned with a pool dataset")
    else:
        train = hand_part
    plan = InputPlan(inputs=("s1",))
    objective = DistillObjective(plan=plan, mode=mode, temperature=temperature, threshold=threshold,
                                 hand_weight=hand_weight, distill_weight=distill_weight,
                                 class_weights=tuple(class_weights) if class_weights is not None else None,
                                 edge=edge, use_weight=weights_a is not None)
    return train_method(method=f"student_{mode}", model_name=model, plan=plan, bands={"s1": S1_BANDS},
                        normalizers=normalizer_dicts(normalizers, ("s1",), hand), objective=objective, train=train,
                        valid=valid, out_dir=out_dir, config=config, evaluate_on=evaluate_on, reference=reference,
                        extra_config={"mode": mode, "temperature": temperature, "threshold": threshold,
                                      "hand_weight": hand_weight, "distill_weight": distill_weight,
                                      "loss": "per-pixel hand/pool weighted mean",
                                      "hand_per_batch": n_hand,
                                      "steps_per_epoch": train.steps(config.batch_size)
                                      if isinstance(train, HandPoolData) else None,
                                      "pool_chips": 0 if pool is None else dataset_len(pool),
                                      "cromss": weights_a is not None,
                                      "pool_targets": None if pool is None else pool_targets_info(soft, pool),
                                      "class_weights": list(class_weights) if class_weights is not None else None,
                                      "edge": None if edge is None else vars(edge)},
                        resume=resume, step_callback=step_callback, model_kw=model_kw)
