"""Evaluate a model on chips: global water IoU (primary), mIoU, precision/recall, per-chip table.

Metrics come from :mod:`floodnb.metrics` (confusion matrix rows = reference, columns =
prediction). Pixels count only where the reference has a label and the model's inputs have
data (``valid``); predictions on pixels without input data are set to -1 and thus ignored,
and the number of such pixels is reported per chip (``no_input_pixels``).

``reference="label"`` scores against the sample's ``label`` (hand labels, or the weak label a
baseline trained on), ``reference="truth_water"`` against the simulator's true water mask
(sample key ``truth``); reference names and keys: :mod:`floodnb.references`. A checkpoint's
spec becomes model input through :class:`floodnb.models.inputs.InputPlan` (re-exported here with
:func:`~floodnb.models.inputs.plan_from_spec`).

``precision`` (:mod:`floodnb.runtime`): ``"bfloat16"`` / ``"float16"`` (CUDA) run the forward pass
under autocast with channels-last inputs; probabilities are float32 in every case.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from floodnb import runtime
from floodnb.bands import CLASS_NAMES, S1_BANDS, S2_BANDS
from floodnb.distill.inputs import chip_ids, collate, dataset_len, to_device
from floodnb.metrics import ConfusionAccumulator
from floodnb.models.inputs import InputPlan, plan_from_spec
from floodnb.references import REFERENCE_KEYS, REFERENCES, reference_key

#: per-chip hook ``(chip_id, pred (H, W), ref (H, W)) -> extra table columns``
ChipInfo = Callable[[str, np.ndarray, np.ndarray], Mapping]
__all__ = ["REFERENCES", "REFERENCE_KEYS", "InputPlan", "check_dataset", "evaluate", "evaluate_label_maps",
           "evaluate_model", "iterate_predictions", "missing_chips", "plan_from_spec", "predict_probs",
           "reference_key"]


@torch.no_grad()
def predict_probs(model: nn.Module, batch: Mapping, plan: InputPlan, *, precision: str = "float32") -> torch.Tensor:
    """Class probabilities ``(B, K, H, W)`` float32 of ``model`` (in eval mode) on one batch dict,
    forward in ``precision``. On a CPU the batch runs in passes of at most
    :data:`floodnb.runtime.CPU_PIXELS_PER_FORWARD` pixels (bigger passes are slower per pixel there);
    the probabilities do not depend on it.
    """
    x, meta = plan(batch)
    x = runtime.to_channels_last(x, runtime.prefer_channels_last(precision, x.device))
    step = runtime.cpu_forward_chunk(x.shape[-2], x.shape[-1]) if x.device.type == "cpu" else x.shape[0]
    parts = []
    with runtime.autocast(precision, x.device):
        for i in range(0, x.shape[0], step):
            logits = model(x[i:i + step], None if meta is None else meta[i:i + step])
            parts.append(torch.softmax(logits.float(), dim=1))
    return parts[0] if len(parts) == 1 else torch.cat(parts)


def iterate_predictions(model: nn.Module, data: Dataset, plan: InputPlan, *, batch_size: int = 8,
                        device: str = "cpu", progress: bool = False, desc: str = "predict",
                        precision: str = "float32"):
    """Yield ``(batch, probs (B,K,H,W))`` over ``data`` in order, model in eval mode, forward in ``precision``."""
    from tqdm.auto import tqdm

    runtime.check_precision(precision, device)
    if dataset_len(data) == 0:
        raise ValueError("evaluate: the dataset is empty (0 chips); check the split name and the catalog")
    was_training = model.training
    model.eval()
    loader = DataLoader(data, batch_size=batch_size, shuffle=False, collate_fn=collate)
    try:
        for batch in tqdm(loader, desc=desc, disable=not progress, leave=False):
            batch = to_device(batch, device)
            yield batch, predict_probs(model, batch, plan, precision=precision)
    finally:
        model.train(was_training)


def evaluate_model(model: nn.Module, data: Dataset, plan: InputPlan, *, reference: str = "label", batch_size: int = 8,
                   device: str = "cpu", progress: bool = False, split: str | None = None,
                   chip_info: ChipInfo | None = None, precision: str = "float32") -> tuple[dict, pd.DataFrame]:
    """Metrics dict and per-chip DataFrame of ``model`` on ``data`` against ``reference`` (forward in ``precision``).

    Returns ``(summary, table)``: ``summary`` has ``water_iou`` (global, primary), ``miou``,
    ``water_precision``, ``water_recall``, ``accuracy``, ``mean_chip_water_iou``, pixel and chip
    counts, ``reference``, and ``chips_skipped`` / ``skipped_chips`` (``"<chip> (no s1)"``: chips
    the dataset left out for lacking a model input, its ``skipped`` attribute); ``table`` one row
    per chip (chip_id, split, water_iou, ...) plus the columns ``chip_info(chip_id, pred, ref)``
    returns for it (``pred``/``ref`` ``(H, W)`` numpy, -1 / ignore index = nodata; e.g.
    :func:`floodnb.area.catalog_chip_areas`).
    """
    key = reference_key(reference)
    acc = ConfusionAccumulator(num_classes=len(CLASS_NAMES))
    for batch, probs in iterate_predictions(model, data, plan, batch_size=batch_size, device=device,
                                            progress=progress, desc=f"evaluate {split or ''}".strip(),
                                            precision=precision):
        if key not in batch:
            raise ValueError(f"reference {reference!r} needs sample key {key!r}, absent for chips {chip_ids(batch)}")
        pred = probs.argmax(dim=1)
        if "valid" in batch:
            pred = torch.where(batch["valid"].bool(), pred, torch.full_like(pred, -1))
        ids = chip_ids(batch)
        for i, cid in enumerate(ids):
            no_input = int((~batch["valid"][i]).sum()) if "valid" in batch else 0
            p, r = pred[i].cpu().numpy(), batch[key][i].cpu().numpy()
            acc.update(p, r, chip_id=cid, **({"split": split} if split is not None else {}), no_input_pixels=no_input,
                       **(chip_info(cid, p, r) if chip_info is not None else {}))
    summary = {**acc.summary(), "reference": reference}
    skipped = dict(getattr(data, "skipped", None) or {})
    summary["chips_skipped"] = len(skipped)
    summary["skipped_chips"] = [f"{cid} (no {', '.join(roles)})" for cid, roles in skipped.items()]
    if split is not None:
        summary["split"] = split
    return summary, acc.table()


def missing_chips(catalog: pd.DataFrame, splits: Sequence[str]) -> dict[str, list[str]]:
    """``{split: [chip_id, ...]}``: chips the split CSVs of the catalog's root name but with no file on disk.

    ``catalog``: from :func:`floodnb.data.catalog.build_catalog` (its ``attrs`` name the root and
    layout). Chips with some layers on disk are not listed here (they are in the catalog; a chip
    lacking the model's inputs is skipped and reported by :func:`evaluate_model`).
    """
    from floodnb.data.catalog import read_splits

    if "root" not in catalog.attrs:
        raise ValueError("missing_chips needs a catalog from build_catalog (its attrs name the data root)")
    on_disk = set(catalog["chip_id"])
    named = read_splits(catalog.attrs["root"], layout=catalog.attrs.get("layout", "auto"))
    return {s: sorted(c for c, sp in named.items() if sp == s and c not in on_disk) for s in splits}


def evaluate(model, datasets: Mapping[str, Dataset] | Dataset, *, reference: str = "label", spec=None,
             plan: InputPlan | None = None, batch_size: int = 8, device: str = "cpu",
             progress: bool = True, chip_info: ChipInfo | None = None,
             precision: str = "float32") -> tuple[dict, pd.DataFrame]:
    """Evaluate a model (or a checkpoint path) on one dataset, on ``{split: dataset}`` or on a catalog.

    A catalog DataFrame (:func:`floodnb.data.catalog.build_catalog`) is split into its
    valid/test/bolivia chips, read with the checkpoint's normalisers.

    ``model``: an ``nn.Module`` (then give ``spec`` or ``plan``) or a checkpoint path (spec read
    from it). Returns ``(metrics, per_chip)``: with a mapping, ``metrics = {split: summary}`` and
    the per-chip table has a ``split`` column; with one dataset, ``metrics`` is its summary.
    ``chip_info``: extra per-chip columns (:func:`evaluate_model`).
    ``precision``: see the module doc (``ValueError`` for float16 off CUDA).
    """
    runtime.check_precision(precision, device)
    if not isinstance(model, nn.Module):
        from floodnb.models import load_checkpoint

        model, spec = load_checkpoint(model)
    if isinstance(datasets, pd.DataFrame):  # a catalog: every evaluation split it has, normalised as in the spec
        if spec is None:
            raise ValueError("evaluate on a catalog needs the checkpoint's spec (pass a checkpoint path or spec=)")
        from floodnb.distill.datasets import checkpoint_inputs, eval_datasets

        datasets = eval_datasets(datasets, **checkpoint_inputs(spec, weak_role="s1_otsu"))
    if spec is not None:
        check_dataset(spec, datasets)
    if plan is None:
        if spec is None:
            raise ValueError("evaluate: pass spec= (or plan=) with a model object, or a checkpoint path")
        plan = plan_from_spec(spec)
    model = model.to(device)
    if isinstance(datasets, Mapping):
        if not datasets:
            raise ValueError("evaluate: no splits given")
        metrics, tables = {}, []
        for split, data in datasets.items():
            m, t = evaluate_model(model, data, plan, reference=reference, batch_size=batch_size, device=device,
                                  progress=progress, split=split, chip_info=chip_info, precision=precision)
            metrics[split] = m
            tables.append(t)
        return metrics, pd.concat(tables, ignore_index=True)
    return evaluate_model(model, datasets, plan, reference=reference, batch_size=batch_size, device=device,
                          progress=progress, chip_info=chip_info, precision=precision)


def check_dataset(spec, data) -> None:
    """Refuse data whose bands or normalisers differ from a checkpoint's spec (error names both).

    ``data``: a dataset or ``{split: dataset}``; checked when the dataset records ``normalizers``
    (role -> Normalizer or dict) and optionally ``bands`` (role -> full band names, default the
    floodnb band order); the spec's ``band_index`` selects the bands the model uses.
    """
    from floodnb.models import check_compatible

    datasets = data.values() if isinstance(data, Mapping) else [data]
    for ds in datasets:
        if not hasattr(ds, "normalizers"):
            continue
        full = dict(ds.bands) if hasattr(ds, "bands") else {"s1": S1_BANDS, "s2": S2_BANDS}
        index = spec.config["band_index"] if "band_index" in spec.config and spec.config["band_index"] else {}
        bands = {r: tuple(full[r][i] for i in index[r]) if r in index else tuple(full[r]) for r in full}
        norms = {r: (n.to_dict() if hasattr(n, "to_dict") else dict(n)) for r, n in ds.normalizers.items()}
        check_compatible(spec, bands=bands, normalizers=norms)


def evaluate_label_maps(preds: Sequence[np.ndarray], refs: Sequence[np.ndarray], chip_ids_: Sequence[str], *,
                        split: str | None = None, reference: str = "label") -> tuple[dict, pd.DataFrame]:
    """Metrics of precomputed label maps (e.g. Otsu thresholds): ``preds``/``refs`` ``(H, W)`` int arrays.

    Predictions ``-1`` (no input data) and reference ``-1``/IGNORE_INDEX are ignored.
    """
    acc = ConfusionAccumulator(num_classes=len(CLASS_NAMES))
    for p, r, cid in zip(preds, refs, chip_ids_, strict=True):
        acc.update(np.asarray(p), np.asarray(r), chip_id=cid, **({"split": split} if split is not None else {}))
    summary = {**acc.summary(), "reference": reference}
    if split is not None:
        summary["split"] = split
    return summary, acc.table()
