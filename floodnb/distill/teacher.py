"""The Sentinel-2 teacher of cross-modal distillation (Garg et al. 2023, arXiv 2302.08180).

* :func:`train_teacher` — a U-Net on Sentinel-2 (selectable bands) or Sentinel-2 + Sentinel-1,
  trained on hand labels; options: metadata conditioning (FiLM on cyclic day of year and
  position, which only the teacher sees — Bernhard et al., ECAI 2024) and label conditioning
  (the weak label as an extra input channel the teacher learns to correct — Garg et al.), and the
  metadata ablation ``shuffle_metadata`` (each chip gets another chip's metadata: same marginal
  distribution, link to the chip broken), recorded in the run config.
* :func:`label_pool` — the teacher's class probabilities for every pool chip, streamed batch by
  batch into a float16 memory-mapped ``.npy`` of shape ``(N, K, H, W)`` (NaN where the teacher's
  inputs have no data), for the student's ``soft`` key.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from floodnb.bands import S1_BANDS, S2_BANDS
from floodnb.distill.engine import TrainConfig
from floodnb.distill.evaluate import InputPlan, iterate_predictions, plan_from_spec
from floodnb.distill.inputs import chips_lacking, dataset_len
from floodnb.distill.runner import (
    DATA_BANDS,
    EdgeOption,
    SupervisedObjective,
    TrainedRun,
    _chip_datasets,
    band_index,
    normalizer_dicts,
    train_method,
)
from floodnb.io_utils import atomic_path, atomic_write_json
from floodnb.models import ModelSpec, load_checkpoint

TEACHER_INPUTS: tuple[tuple[str, ...], ...] = (("s2",), ("s2", "s1"))


def require_s2(data: Dataset, what: str) -> None:
    """Raise ``ValueError`` naming the chips of ``data`` that have no Sentinel-2 (when the catalog tells)."""
    lacking = chips_lacking(data, "s2")
    if lacking:
        shown = ", ".join(lacking[:20]) + (f" ... ({len(lacking)} chips)" if len(lacking) > 20 else "")
        raise ValueError(f"{what}: the teacher needs Sentinel-2 but {len(lacking)} chips have none: {shown}. "
                         "Sen1Floods11 v1.1 ships no S2 for weak chips (v1.0 S2_NoQC has it): drop these chips "
                         "or add their S2")


def train_teacher(*, train: Dataset, out_dir: str | Path, valid: Dataset | None = None,
                  inputs: Sequence[str] = ("s2",), s2_bands: Sequence[str] = S2_BANDS,
                  model: str = "unet_small", metadata: bool = False, label_conditioning: bool = False,
                  class_weights: Sequence[float] | None = None, edge: EdgeOption | None = None,
                  normalizers: Mapping | None = None, config: TrainConfig | None = None,
                  evaluate_on: Mapping[str, Dataset] | None = None, reference: str = "label",
                  data_bands: Mapping[str, Sequence[str]] = DATA_BANDS, resume: bool = True,
                  step_callback=None, model_kw: Mapping | None = None,
                  shuffle_metadata: int | None = None) -> TrainedRun:
    """Train the teacher on hand labels; returns the best epoch's model, spec and metrics.

    ``train``/``valid``/``evaluate_on``: datasets of sample dicts (``floodnb.data.torch.ChipDataset``
    with ``inputs`` including ``"s2"``, ``with_meta=True`` for ``metadata``, ``weak=...`` for
    ``label_conditioning``). ``inputs``: ``("s2",)`` or ``("s2", "s1")``. ``s2_bands``: names of
    the Sentinel-2 bands to use, in that order (subset of ``data_bands["s2"]``).
    ``model_kw``: architecture overrides for :func:`floodnb.models.build_model` (e.g. ``{"width": 8}``).
    ``shuffle_metadata``: the metadata ablation's permutation seed — every dataset given must be
    a ``ChipDataset`` built with ``shuffle_meta=shuffle_metadata`` (checked, so the run config that
    records it is true); None = every chip's own metadata.
    """
    inputs = tuple(inputs)
    if inputs not in TEACHER_INPUTS:
        raise ValueError(f"teacher inputs={inputs}: expected one of {TEACHER_INPUTS}")
    check_metadata_shuffle(shuffle_metadata, metadata=metadata,
                           datasets={"train": train, "valid": valid, **dict(evaluate_on or {})})
    require_s2(train, "teacher training data")
    if valid is not None:
        require_s2(valid, "teacher validation data")
    bands = {"s2": tuple(s2_bands), **({"s1": S1_BANDS} if "s1" in inputs else {})}
    idx = band_index(bands, data_bands)
    full = {r: list(range(len(data_bands[r]))) for r in bands}
    plan = InputPlan(inputs=inputs, band_index={r: i for r, i in idx.items() if i != full[r]} or None,
                     label_conditioning=label_conditioning, use_meta=metadata)
    objective = SupervisedObjective(plan=plan, target="label",
                                    class_weights=tuple(class_weights) if class_weights is not None else None,
                                    edge=edge)
    return train_method(method="teacher", model_name=model, plan=plan, bands=bands,
                        normalizers=normalizer_dicts(normalizers, inputs, train), objective=objective, train=train,
                        valid=valid, out_dir=out_dir,
                        config=TrainConfig() if config is None else config, evaluate_on=evaluate_on,
                        reference=reference,
                        extra_config={"metadata": metadata, "label_conditioning": label_conditioning,
                                      "class_weights": list(class_weights) if class_weights is not None else None,
                                      "edge": None if edge is None else vars(edge),
                                      "shuffle_metadata": shuffle_metadata},
                        resume=resume, step_callback=step_callback, model_kw=model_kw)


def check_metadata_shuffle(shuffle_metadata: int | None, *, metadata: bool, datasets: Mapping) -> None:
    """Raise ``ValueError`` unless every dataset in ``datasets`` (name -> dataset or None) was built
    with ``shuffle_meta == shuffle_metadata``; shuffling also needs ``metadata``.
    """
    if shuffle_metadata is not None and not metadata:
        raise ValueError(f"shuffle_metadata={shuffle_metadata!r} needs metadata=True (there is no metadata to shuffle)")
    for name, data in datasets.items():
        if data is None:
            continue
        got = {getattr(c, "shuffle_meta", None) for c in _chip_datasets(data)} or {None}
        if got != {shuffle_metadata}:
            raise ValueError(f"teacher {name} data has shuffle_meta {sorted(got, key=str)}, but shuffle_metadata="
                             f"{shuffle_metadata!r}: build it with ChipDataset(..., shuffle_meta={shuffle_metadata!r})")


def _resolve(teacher) -> tuple[nn.Module, ModelSpec]:
    if isinstance(teacher, TrainedRun):
        return teacher.model, teacher.spec
    if isinstance(teacher, tuple):
        return teacher
    return load_checkpoint(teacher)


def _s2_normalizer(pool: Dataset, spec: ModelSpec) -> dict | None:
    """The 13-band S2 normaliser of the pool samples (the dataset's, else the teacher's), or None."""
    from floodnb.bands import S2_BANDS

    for norms in (pool.normalizers if hasattr(pool, "normalizers") else {}, spec.normalizers):
        if "s2" in norms:
            n = norms["s2"]
            d = n.to_dict() if hasattr(n, "to_dict") else dict(n)
            if tuple(d["bands"]) == S2_BANDS:
                return d
    return None


def label_pool(teacher, pool: Dataset, *, out_path: str | Path, batch_size: int = 8, device: str = "cpu",
               progress: bool = True, mask_clouds: bool = True, precision: str = "float32") -> np.memmap:
    """Teacher probabilities for every chip of ``pool``, streamed to ``out_path`` (``.npy``, float16).

    ``teacher``: a :class:`TrainedRun`, ``(model, spec)`` or a checkpoint path. Returns the
    read-only memory map ``(N, K, H, W)``; row ``i`` belongs to ``pool[i]``; pixels whose inputs
    have no data are NaN (the student's distillation then ignores them), and with
    ``mask_clouds`` (default) so are cloud pixels of the pool's Sentinel-2
    (:func:`floodnb.distill.pool_quality.cloud_mask_of_batch`): hand labels are -1 under cloud,
    so the teacher never learnt what is there. A sidecar ``<out_path>.json`` lists the chip ids
    in row order, the teacher's spec and the cloud mask (``cloud_mask``: enabled, method, pixels
    masked). When the pool samples carry the simulator's truth (``truth``), the teacher's water
    IoU in clear vs cloud pixels (:class:`~floodnb.distill.pool_quality.PoolQuality`) is written
    to ``<out_path stem>.quality.csv`` and the sidecar (``quality``). Written under a temporary
    name and renamed when complete, so an interrupted run leaves no partial file. ``precision``:
    the teacher's forward pass (:func:`~floodnb.distill.evaluate.predict_probs`).
    """
    from floodnb.distill.pool_quality import CLOUD_MASK_METHOD, PoolQuality, cloud_mask_of_batch

    model, spec = _resolve(teacher)
    plan = plan_from_spec(spec)
    out = Path(out_path)
    if out.suffix != ".npy":
        raise ValueError(f"out_path {out} must end with .npy")
    if dataset_len(pool) == 0:
        raise ValueError("label_pool: the pool is empty (0 chips)")
    if "s2" in plan.inputs:
        require_s2(pool, "teacher pool")
    first = pool[0]
    ref = next(first[k] for k in ("s1", "s2", "label", "valid") if k in first)
    h, w = torch.as_tensor(ref).shape[-2:]
    n, k = dataset_len(pool), len(spec.classes)
    s2_norm = _s2_normalizer(pool, spec) if "s2" in first else None
    if mask_clouds and s2_norm is None:
        raise ValueError("label_pool(mask_clouds=True) needs the pool's Sentinel-2 with a 13-band S2 normaliser "
                         f"(pool samples have keys {sorted(first)}); build the pool with inputs including 's2' or "
                         "pass mask_clouds=False")
    model = model.to(device)
    ids: list[str] = []
    quality = PoolQuality()
    masked, with_truth = 0, False
    with atomic_path(out) as tmp:
        mm = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float16, shape=(n, k, h, w))
        row = 0
        for batch, probs in iterate_predictions(model, pool, plan, batch_size=batch_size, device=device,
                                                progress=progress, desc="label pool", precision=precision):
            if probs.shape[-2:] != (h, w):
                raise ValueError(f"pool chips must share one size ({h}x{w}); chips {batch['chip_id']} are "
                                 f"{tuple(probs.shape[-2:])}")
            pred = probs.argmax(dim=1)
            if "valid" in batch:
                probs = torch.where(batch["valid"].bool()[:, None], probs, torch.full_like(probs, float("nan")))
                pred = torch.where(batch["valid"].bool(), pred, torch.full_like(pred, -1))
            cloud = (cloud_mask_of_batch(batch, s2_norm) if s2_norm is not None
                     else torch.zeros_like(pred, dtype=torch.bool))
            if mask_clouds:
                probs = torch.where(cloud[:, None], torch.full_like(probs, float("nan")), probs)
                masked += int(cloud.sum())
            if "truth" in batch:
                with_truth = True
                quality.update(pred, batch["truth"], cloud)
            b = probs.shape[0]
            mm[row:row + b] = probs.cpu().numpy().astype(np.float16)
            ids += list(batch["chip_id"]) if "chip_id" in batch else [str(i) for i in range(row, row + b)]
            row += b
        mm.flush()
        del mm
    info: dict = {"chip_ids": ids, "shape": [n, k, int(h), int(w)], "dtype": "float16", "teacher": spec.to_dict(),
                  "cloud_mask": {"enabled": bool(mask_clouds), "method": CLOUD_MASK_METHOD, "masked_pixels": masked,
                                 "masked_fraction": masked / float(n * h * w)}}
    if with_truth:
        table = quality.table()
        info["quality"] = {"reference": "truth_water", "rows": table.to_dict(orient="records")}
        with atomic_path(quality_path(out)) as tmp:
            table.to_csv(tmp, index=False)
    atomic_write_json(out.with_suffix(".json"), info)
    return np.load(out, mmap_mode="r")


def quality_path(path: str | Path) -> Path:
    """``<stem>.quality.csv`` next to a :func:`label_pool` output: teacher water IoU in clear vs cloud pixels."""
    p = Path(path)
    return p.with_name(p.stem + ".quality.csv")


def pool_info(path: str | Path) -> dict:
    """The sidecar of a :func:`label_pool` output (chip ids, shape, teacher spec, ``cloud_mask``, ``quality``)."""
    p = Path(path).with_suffix(".json")
    if not p.is_file():
        raise FileNotFoundError(f"{p} not found: {Path(path).name} was not written by label_pool")
    return json.loads(p.read_text())


def pool_chip_ids(path: str | Path) -> list[str]:
    """Chip ids (row order) of a :func:`label_pool` output."""
    return json.loads(Path(path).with_suffix(".json").read_text())["chip_ids"]
