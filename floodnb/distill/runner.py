"""Shared run logic of every trained method: objectives, spec building, fit, final evaluation.

Objectives (``objective(model, batch) -> (loss, terms)``) used by the engine:

* :class:`SupervisedObjective` — masked weighted cross-entropy on one target key (``"label"``
  for teacher and S1-hand baseline, ``"weak"`` for the S1-weak baseline), optional edge weights
  (Garg et al. 2023) and optional per-pixel weights from ``batch["weight"]`` (CromSS, Liu et al.
  TGRS 2025).
* :class:`DistillObjective` — the student: CE on hand labels and distillation on teacher
  probabilities ``batch["soft"]`` (soft KL at temperature T, or CE on confident hard
  pseudo-labels) combined per pixel in one weighted mean with explicit ``hand_weight`` and
  ``distill_weight`` (:func:`~floodnb.distill.losses.hand_pool_loss`), optional edge weights,
  CromSS pixel weights and per-sample ``soft_weight``.

:func:`train_method` builds the model, runs :func:`floodnb.distill.engine.fit`, reloads the best
epoch, evaluates it on the given splits and writes ``metrics.json`` and ``per_chip.csv`` into
the out_dir (and the metrics into ``best.safetensors``'s spec).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd
import torch
from torch import nn
from torch.utils.data import Dataset

from floodnb.bands import CLASS_NAMES, S1_BANDS, S2_BANDS
from floodnb.distill.engine import FitResult, TrainConfig, dist_info, fit, seed_everything
from floodnb.distill.evaluate import InputPlan, evaluate_model
from floodnb.distill.inputs import dataset_len, masked_target, valid_mask
from floodnb.distill.losses import (
    confident_pseudo_labels,
    edge_weights,
    hand_pool_loss,
    masked_cross_entropy,
    pixel_cross_entropy,
    pixel_kl_distillation,
)
from floodnb.io_utils import atomic_path, atomic_write_json
from floodnb.models import ModelSpec, build_model, load_checkpoint, save_checkpoint

#: Band order of each role as the data layer delivers it (``floodnb.data.torch`` samples).
DATA_BANDS: dict[str, tuple[str, ...]] = {"s1": S1_BANDS, "s2": S2_BANDS}
#: Length of the metadata vector (``floodnb.data.torch``: sin/cos day of year + 3D position).
META_DIM: int = 5


@dataclass(frozen=True)
class EdgeOption:
    """Edge weighting (Garg et al. 2023): ``1 + inner`` / ``1 + outer`` within ``width`` px of a water edge."""

    width: int = 2
    inner: float = 1.0
    outer: float = 1.0


def _pixel_weights(batch: Mapping, target: torch.Tensor, edge: EdgeOption | None,
                   use_weight: bool) -> torch.Tensor | None:
    w = None
    if edge is not None:
        w = edge_weights(target, width=edge.width, inner=edge.inner, outer=edge.outer)
    if use_weight:
        if "weight" not in batch:
            raise ValueError("pixel weighting (CromSS) is on but the batch has no 'weight' (B,H,W); "
                             "give per-pixel weights for the training chips")
        pw = batch["weight"].float()
        w = pw if w is None else w * pw
    return w


@dataclass(frozen=True)
class SupervisedObjective:
    """Cross-entropy of ``model(plan(batch))`` against ``batch[target]`` (IGNORE_INDEX and no-data pixels ignored)."""

    plan: InputPlan
    target: str = "label"
    class_weights: tuple[float, ...] | None = None
    edge: EdgeOption | None = None
    use_weight: bool = False

    def __call__(self, model: nn.Module, batch: Mapping) -> tuple[torch.Tensor, dict]:
        x, meta = self.plan(batch)
        logits = model(x, meta)
        t = masked_target(batch, self.target)
        cw = torch.tensor(self.class_weights) if self.class_weights is not None else None
        loss = masked_cross_entropy(logits, t, class_weights=cw,
                                    pixel_weights=_pixel_weights(batch, t, self.edge, self.use_weight))
        return loss, {"ce": loss.detach()}


def soft_weight_of(batch: Mapping, like: torch.Tensor) -> torch.Tensor:
    """Per-sample pool weight ``(B, 1, 1)`` from ``batch["soft_weight"]`` (``(B,)`` float >= 0), 1 when absent."""
    b = like.shape[0]
    if "soft_weight" not in batch:
        return torch.ones((b, 1, 1), dtype=like.dtype, device=like.device)
    sw = torch.as_tensor(batch["soft_weight"]).to(like.device, like.dtype).reshape(-1)
    if sw.shape != (b,) or not bool(torch.isfinite(sw).all()) or bool((sw < 0).any()):
        raise ValueError(f"batch 'soft_weight' must be one finite float >= 0 per sample, shape ({b},); got "
                         f"{sw.tolist()}")
    return sw.reshape(b, 1, 1)


def student_pixel_terms(logits: torch.Tensor, batch: Mapping, *, mode: str = "soft", temperature: float = 2.0,
                        threshold: float = 0.9, class_weights: tuple[float, ...] | None = None,
                        edge: EdgeOption | None = None, pool_weight: torch.Tensor | None = None
                        ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-pixel student terms ``(CE, h, D, p)``, each ``(B, H, W)``, for :func:`hand_pool_loss`.

    ``h``: 1 on hand-labelled pixels (``batch["label"]``), times class weights and edge weights
    of the hand label; ``p``: 1 where the pool target ``batch["soft"]`` is finite (soft mode) or
    confident (hard mode, ``threshold``), times class weights (hard mode), edge weights of the
    teacher's argmax, ``pool_weight`` (CromSS / confidence weights, e.g. ``batch["weight"]``) and
    the sample's ``batch["soft_weight"]`` (default 1). Missing keys give all-zero terms.
    """
    cw = torch.tensor(class_weights) if class_weights is not None else None
    zero = logits.new_zeros((logits.shape[0], *logits.shape[2:]))
    ce, h, d, p = zero, zero, zero, zero
    if "label" in batch:
        t = masked_target(batch, "label")
        ce, h = pixel_cross_entropy(logits, t, class_weights=cw)
        if edge is not None:
            h = h * edge_weights(t, width=edge.width, inner=edge.inner, outer=edge.outer).to(h.dtype)
    if "soft" in batch:
        soft, valid = batch["soft"].float(), valid_mask(batch)
        pseudo = confident_pseudo_labels(soft, threshold=0.0 if mode == "soft" else threshold, valid=valid)
        if mode == "soft":
            d, p = pixel_kl_distillation(logits, soft, temperature=temperature, valid=valid)
        else:
            d, p = pixel_cross_entropy(logits, pseudo, class_weights=cw)
        if edge is not None:
            p = p * edge_weights(pseudo, width=edge.width, inner=edge.inner, outer=edge.outer).to(p.dtype)
        if pool_weight is not None:
            p = p * torch.nan_to_num(pool_weight.to(p.dtype), nan=0.0).clamp_min(0.0)
        p = p * soft_weight_of(batch, p)
    return ce, h, d, p


@dataclass(frozen=True)
class DistillObjective:
    """Student loss (Garg et al. 2023): hand CE and pool distillation combined per pixel.

    ``L = sum_i (hand_weight * h_i * e_i * CE_i + distill_weight * p_i * e_i * c_i * s_b * D_i)
    / sum_i (hand_weight * h_i * e_i + distill_weight * p_i * e_i * c_i * s_b)``
    (:func:`~floodnb.distill.losses.hand_pool_loss`): ``h_i`` hand-labelled pixel (times class
    weights), ``p_i`` pixel with a finite pool target, ``e_i`` edge weight (``edge``; of the hand
    label resp. the teacher's argmax), ``c_i`` CromSS pixel weight ``batch["weight"]``
    (``use_weight``), ``s_b`` the sample's ``batch["soft_weight"]`` (float, default 1.0). One hand
    pixel thus weighs ``hand_weight / distill_weight`` pool pixels in every batch, whatever the
    mix of hand and pool chips in it.

    ``mode="soft"``: D = T^2 KL at ``temperature`` (Hinton et al. 2015); ``mode="hard"``: D = CE
    on ``confident_pseudo_labels(soft, threshold)``. Chips without hand labels carry IGNORE_INDEX
    labels and chips without teacher output NaN probabilities (see :func:`floodnb.distill.inputs.collate`).

    ``soft_weight`` contract (generated pairs, e.g. DAKTer image/soft-label pairs fed through the
    pool path): a sample may carry ``"soft_weight"`` (a float scalar); it multiplies the pool
    weight of every pixel of that sample (0 switches the sample's pool term off); samples without
    it count 1.0 (:func:`floodnb.distill.inputs.collate` fills it).
    """

    plan: InputPlan
    mode: str = "soft"
    temperature: float = 2.0
    threshold: float = 0.9
    distill_weight: float = 1.0
    hand_weight: float = 1.0
    class_weights: tuple[float, ...] | None = None
    edge: EdgeOption | None = None
    use_weight: bool = False

    def __post_init__(self) -> None:
        if self.mode not in ("soft", "hard"):
            raise ValueError(f"mode={self.mode!r}: expected 'soft' or 'hard'")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if self.hand_weight < 0 or self.distill_weight < 0:
            raise ValueError(f"hand_weight and distill_weight must be >= 0, got {self.hand_weight} and "
                             f"{self.distill_weight}")

    def __call__(self, model: nn.Module, batch: Mapping) -> tuple[torch.Tensor, dict]:
        x, meta = self.plan(batch)
        logits = model(x, meta)
        pool_weight = None
        if self.use_weight and "soft" in batch:
            if "weight" not in batch:
                raise ValueError("pixel weighting (CromSS) is on but the batch has no 'weight' (B,H,W); "
                                 "give per-pixel weights for the training chips")
            pool_weight = batch["weight"].float()
        ce, h, d, p = student_pixel_terms(logits, batch, mode=self.mode, temperature=self.temperature,
                                          threshold=self.threshold, class_weights=self.class_weights,
                                          edge=self.edge, pool_weight=pool_weight)
        return hand_pool_loss(ce, h, d, p, hand_weight=self.hand_weight, distill_weight=self.distill_weight)


def band_index(bands: Mapping[str, Sequence[str]], data_bands: Mapping[str, Sequence[str]]) -> dict[str, list[int]]:
    """Channel indices of the selected ``bands`` within each role's ``data_bands``; names unknown bands."""
    out = {}
    for role, names in bands.items():
        have = list(data_bands[role])
        unknown = [b for b in names if b not in have]
        if unknown:
            raise ValueError(f"bands {unknown} are not {role!r} bands; expected names from {have}")
        out[role] = [have.index(b) for b in names]
    return out


def normalizer_dicts(normalizers: Mapping | None, roles: Sequence[str], data: Dataset) -> dict:
    """Role -> normaliser dict for the spec, from ``normalizers`` or the dataset's ``normalizers``."""
    if normalizers is None:
        if not hasattr(data, "normalizers"):
            raise ValueError("pass normalizers= (role -> Normalizer or dict): "
                             "the training dataset does not record them")
        normalizers = data.normalizers
    out = {}
    for role in roles:
        if role not in normalizers:
            raise ValueError(f"no normaliser for input role {role!r}; have {sorted(normalizers)}")
        n = normalizers[role]
        out[role] = n.to_dict() if hasattr(n, "to_dict") else dict(n)
    return out


def check_not_empty(data: Dataset | None, what: str) -> None:
    if data is not None and dataset_len(data) == 0:
        raise ValueError(f"{what} is empty (0 chips); check the split name and the catalog")


def _chip_datasets(data) -> list:
    """ChipDataset-like datasets (with ``crop`` and ``source``) inside ``data``, depth first through
    ``ConcatDataset.datasets`` and wrappers' ``data`` / ``dataset``.
    """
    if hasattr(data, "crop") and hasattr(data, "source"):
        return [data]
    found = []
    for inner in list(getattr(data, "datasets", [])) + [getattr(data, a, None) for a in ("data", "dataset")]:
        if isinstance(inner, Dataset):
            found += _chip_datasets(inner)
    return found


def data_settings(data: Dataset) -> dict:
    """What a resumed run must train on again (recorded in ``last.pt`` by :func:`fit`):
    ``train_chips`` (samples per epoch), ``crop`` (px or None) and ``data`` (resolved data root of
    a catalog, or the packed store's folder) of the chip datasets inside ``data``.
    """
    out: dict = {"train_chips": dataset_len(data)}
    chips = _chip_datasets(data)
    if chips:
        out["crop"] = [c.crop for c in chips] if len({c.crop for c in chips}) > 1 else chips[0].crop
        roots = []
        for c in chips:
            root = getattr(c.source, "path", None) if getattr(c, "is_store", False) else c.table.attrs.get("root")
            name = str(Path(root).resolve()) if root is not None else None
            if name not in roots:
                roots.append(name)
        out["data"] = roots[0] if len(roots) == 1 else roots
    return out


@dataclass
class TrainedRun:
    """Result of one trained method: best model, its spec, the fit history, evaluation metrics."""

    method: str
    model: nn.Module
    spec: ModelSpec
    fit: FitResult
    metrics: dict
    per_chip: pd.DataFrame
    out_dir: Path


def train_method(*, method: str, model_name: str, plan: InputPlan, bands: Mapping[str, Sequence[str]],
                 normalizers: dict, objective, train: Dataset, valid: Dataset | None, out_dir: str | Path,
                 config: TrainConfig, evaluate_on: Mapping[str, Dataset] | None = None, reference: str = "label",
                 extra_config: Mapping | None = None, model_kw: Mapping | None = None, resume: bool = True,
                 step_callback=None, wrap_model=None) -> TrainedRun:
    """Build, train (resumable), reload the best epoch, evaluate on ``evaluate_on``, write results.

    ``wrap_model(model) -> module`` (optional) wraps the built model for training, e.g. into a
    :class:`floodnb.distill.cromss_joint.SensorPair` with a second network; the wrapper's plain
    call and its saved checkpoints must be the built model's (``packaged()``).
    """
    check_not_empty(train, f"{method}: training data")
    check_not_empty(valid, f"{method}: validation data")
    for split, ds in (evaluate_on or {}).items():
        check_not_empty(ds, f"{method}: evaluation split {split!r}")
    out = Path(out_dir)
    seed_everything(config.seed)
    in_ch = sum(len(bands[r]) for r in plan.inputs) + int(plan.label_conditioning)
    model = build_model(model_name, in_channels=in_ch, num_classes=len(CLASS_NAMES),
                        meta_dim=META_DIM if plan.use_meta else 0, **dict(model_kw or {}))
    model_config = model.config()  # type: ignore[operator]  # torch types Module attributes as Tensor | Module
    spec = ModelSpec(model_name=model_name, model_config=model_config, inputs=plan.inputs, bands=dict(bands),
                     normalizers=normalizers, label_conditioning=plan.label_conditioning,
                     meta_dim=META_DIM if plan.use_meta else 0, classes=CLASS_NAMES,
                     config={"method": method, "band_index": plan.band_index, **dict(extra_config or {})})
    if wrap_model is not None:
        model = wrap_model(model)
    validate = (lambda m: evaluate_model(m, valid, plan, reference="label", batch_size=config.batch_size,
                                         device=config.device, precision=config.precision)[0]
                ) if valid is not None else None
    result = fit(model, objective, train, config=config, out_dir=out, spec=spec, validate=validate,
                 resume=resume, step_callback=step_callback, settings=data_settings(train))
    if dist_info()[0] != 0:
        # data-parallel training (floodnb.distill.ddp): rank 0 alone evaluates and writes the results;
        # the other ranks return the final weights (identical on every rank) and no metrics
        return TrainedRun(method=method, model=model, spec=spec, fit=result, metrics={"method": method, "splits": {}},
                          per_chip=pd.DataFrame(), out_dir=out)
    best, spec = load_checkpoint(out / "best.safetensors")
    metrics: dict = {"method": method, "metric": "water_iou (global confusion matrix, valid pixels)",
                     "reference": reference, "best_epoch": result.best_epoch, "splits": {}}
    tables = []
    for split, ds in (evaluate_on or {}).items():
        m, t = evaluate_model(best, ds, plan, reference=reference, batch_size=config.batch_size, device=config.device,
                              progress=config.progress, split=split, precision=config.precision)
        metrics["splits"][split] = m
        tables.append(t)
    per_chip = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()
    atomic_write_json(out / "metrics.json", metrics)
    with atomic_path(out / "per_chip.csv") as tmp:
        per_chip.to_csv(tmp, index=False)
    spec = replace(spec, metrics={**spec.metrics, **{f"{s}": v for s, v in metrics["splits"].items()}})
    save_checkpoint(out / "best.safetensors", best, spec=spec)
    return TrainedRun(method=method, model=best, spec=spec, fit=result, metrics=metrics, per_chip=per_chip, out_dir=out)

