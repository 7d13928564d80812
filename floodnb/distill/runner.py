"""Shared run logic of every trained method: objectives, spec building, fit, final evaluation.

Objectives (``objective(model, batch) -> (loss, terms)``) used by the engine:

* :class:`SupervisedObjective` — masked weighted cross-entropy on one target key (``"label"``
  for teacher and S1-hand baseline, ``"weak"`` for the S1-weak baseline), optional edge weights
  (Garg et al. 2023) and optional per-pixel weights from ``batch["weight"]`` (CromSS, Liu et al.
  TGRS 2025).
* :class:`DistillObjective` — the student: CE on hand labels + ``distill_weight`` x distillation
  on teacher probabilities ``batch["soft"]`` (soft KL at temperature T, or CE on confident hard
  pseudo-labels), with the same optional edge and pixel weights on the distillation term.

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
    kl_distillation,
    masked_cross_entropy,
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


@dataclass(frozen=True)
class DistillObjective:
    """Student loss: ``CE(hand labels) + distill_weight * D(teacher probs)`` (Garg et al. 2023).

    ``mode="soft"``: D = T^2 KL at ``temperature`` (Hinton et al. 2015); ``mode="hard"``: D = CE
    on ``confident_pseudo_labels(soft, threshold)``. Chips without hand labels carry IGNORE_INDEX
    labels and chips without teacher output NaN probabilities (see :func:`floodnb.distill.inputs.collate`),
    so one batch can mix hand and pool chips. ``edge`` weights both terms (edges of the hand label
    and of the teacher's argmax); ``use_weight`` multiplies the distillation term by
    ``batch["weight"]`` (CromSS pixel weights).
    """

    plan: InputPlan
    mode: str = "soft"
    temperature: float = 2.0
    threshold: float = 0.9
    distill_weight: float = 1.0
    class_weights: tuple[float, ...] | None = None
    edge: EdgeOption | None = None
    use_weight: bool = False

    def __post_init__(self) -> None:
        if self.mode not in ("soft", "hard"):
            raise ValueError(f"mode={self.mode!r}: expected 'soft' or 'hard'")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")

    def __call__(self, model: nn.Module, batch: Mapping) -> tuple[torch.Tensor, dict]:
        x, meta = self.plan(batch)
        logits = model(x, meta)
        cw = torch.tensor(self.class_weights) if self.class_weights is not None else None
        terms = {}
        loss = logits.sum() * 0.0
        if "label" in batch:
            t = masked_target(batch, "label")
            ce = masked_cross_entropy(logits, t, class_weights=cw,
                                      pixel_weights=_pixel_weights(batch, t, self.edge, False))
            loss = loss + ce
            terms["ce"] = ce.detach()
        if "soft" in batch:
            soft, valid = batch["soft"].float(), valid_mask(batch)
            pseudo = confident_pseudo_labels(soft, threshold=0.0 if self.mode == "soft" else self.threshold,
                                             valid=valid)
            pw = _pixel_weights(batch, pseudo, self.edge, self.use_weight)
            if self.mode == "soft":
                d = kl_distillation(logits, soft, temperature=self.temperature, valid=valid, pixel_weights=pw)
            else:
                d = masked_cross_entropy(logits, pseudo, class_weights=cw, pixel_weights=pw)
            loss = loss + self.distill_weight * d
            terms["distill"] = d.detach()
        return loss, terms


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
                 step_callback=None) -> TrainedRun:
    """Build, train (resumable), reload the best epoch, evaluate on ``evaluate_on``, write results."""
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

