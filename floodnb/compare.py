"""Compare flood-mapping methods on the same chips: one global confusion matrix per method and split.

Used by ``notebooks/05_evaluate.ipynb``. Methods (Bonafilia et al. 2020; Garg et al. 2023):

* ``otsu`` — Otsu threshold on each chip's VH backscatter (dB), no training
  (:func:`floodnb.labels.weak.otsu_label`);
* trained checkpoints (S1-weak baseline, S2 teacher, S1 student) run on the chips with the
  normalisers recorded in their spec (:func:`floodnb.distill.evaluate.iterate_predictions`).

Every method is scored against the same ``reference`` (the simulator's true water mask
``"truth_water"`` when present, else the hand labels ``"label"``) on the valid pixels (reference
labelled and model input present). The metric is the water IoU of the global confusion matrix
(rows = reference, columns = prediction; :mod:`floodnb.metrics`). Results:

* ``metrics[method][split]`` = :func:`floodnb.metrics.summarize` + ``confusion_matrix`` (2x2),
  ``chips``, ``mean_chip_water_iou``, ``reference``;
* a per-chip table with columns chip_id, event, split, method, water_iou, water_precision,
  water_recall, valid_pixels, ... (the dashboard's ``per_chip.csv``).

:func:`write_chip_prediction` writes a model's water probability (float32, NaN = no data) and
class (int8, -1 = no data) as GeoTIFFs on the chip's grid: ``<chip_id>_prob.tif`` / ``_pred.tif``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from floodnb.bands import LABEL_NODATA, WATER
from floodnb.chip_ids import is_chip_id
from floodnb.geotiff import write_geotiff
from floodnb.metrics import ConfusionAccumulator
from floodnb.references import reference_key

#: reference name -> chip variable (load_chip) / sample key (ChipDataset), from :mod:`floodnb.references`
REFERENCE_VAR: dict[str, tuple[str, str]] = {r: (reference_key(r, "chip"), reference_key(r))
                                             for r in ("truth_water", "label")}
#: Chip ids usable as file names (``<Event>_<id>``, as in :mod:`floodnb.viz.dashboard`).
METRIC_NAME = "water_iou (water-class IoU of the global confusion matrix over valid pixels)"


class MethodScores:
    """Accumulates one method's predictions per split: global confusion matrices and chip rows."""

    def __init__(self, method: str, *, reference: str) -> None:
        if reference not in REFERENCE_VAR:
            raise ValueError(f"reference={reference!r}: expected one of {tuple(REFERENCE_VAR)}")
        self.method, self.reference = method, reference
        self.acc: dict[str, ConfusionAccumulator] = {}

    def update(self, pred: np.ndarray, ref: np.ndarray, *, chip_id: str, split: str, event: str) -> None:
        """Add one chip: ``pred``/``ref`` ``(H, W)`` int in {-1, 0, 1} (-1 and IGNORE_INDEX ignored)."""
        acc = self.acc.setdefault(split, ConfusionAccumulator())
        acc.update(np.asarray(pred), np.asarray(ref), chip_id=chip_id, event=event, split=split, method=self.method)

    def metrics(self) -> dict:
        """``{split: summary + confusion_matrix + reference}``."""
        return {s: {**a.summary(), "confusion_matrix": a.total.tolist(), "reference": self.reference}
                for s, a in self.acc.items()}

    def table(self) -> pd.DataFrame:
        return pd.concat([a.table() for a in self.acc.values()], ignore_index=True) if self.acc else pd.DataFrame()


def otsu_scores(catalog: pd.DataFrame, *, splits: Sequence[str], reference: str, progress: bool = True) -> MethodScores:
    """Score per-chip Otsu on VH over the ``splits`` chips of ``catalog`` (method name ``otsu``)."""
    from tqdm.auto import tqdm

    from floodnb.data.io import load_chip
    from floodnb.labels.weak import otsu_label

    var = REFERENCE_VAR[reference][0]
    scores = MethodScores("otsu", reference=reference)
    rows = catalog[catalog["split"].isin(splits)]
    if rows.empty:
        raise ValueError(f"no chips in splits {list(splits)} (splits present: {sorted(catalog['split'].unique())})")
    for _, row in tqdm(list(rows.iterrows()), desc="otsu", unit="chip", disable=not progress, leave=False):
        chip = load_chip(row, roles=("s1", "label"), with_truth=reference == "truth_water")
        if var not in chip:
            raise ValueError(f"chip {row['chip_id']}: reference {reference!r} needs {var!r}; "
                             f"chip has {list(chip.data_vars)}")
        pred = np.asarray(otsu_label(np.asarray(chip["s1"].values, dtype=np.float32)))
        scores.update(pred, chip[var].values, chip_id=str(row["chip_id"]), split=str(row["split"]),
                      event=str(row["event"]))
    return scores


def model_scores(method: str, checkpoint: str | Path, catalog: pd.DataFrame, *, splits: Sequence[str],
                 reference: str, batch_size: int = 8, predictions_dir: str | Path | None = None,
                 progress: bool = True, precision: str = "float32") -> MethodScores:
    """Score a checkpoint on the ``splits`` chips of ``catalog`` against ``reference`` (forward in ``precision``,
    :mod:`floodnb.runtime`).

    Inputs are read with the checkpoint's normalisers (and metadata / weak-label channel when its
    spec asks for them). With ``predictions_dir`` every chip's probability and class are written
    there (:func:`write_chip_prediction`).
    """
    from floodnb.distill import datasets as ds
    from floodnb.distill.evaluate import iterate_predictions, plan_from_spec
    from floodnb.models import load_checkpoint

    model, spec = load_checkpoint(checkpoint)
    plan = plan_from_spec(spec)
    key = REFERENCE_VAR[reference][1]
    data = ds.eval_datasets(catalog, **ds.checkpoint_inputs(spec, weak_role="s1_otsu"), splits=tuple(splits))
    if not data:
        raise ValueError(f"{method}: no chips in splits {list(splits)}")
    rows = catalog.drop_duplicates("chip_id").set_index("chip_id")
    scores = MethodScores(method, reference=reference)
    for split, dset in data.items():
        for batch, probs in iterate_predictions(model, dset, plan, batch_size=batch_size, progress=progress,
                                                desc=f"{method} {split}", precision=precision):
            if key not in batch:
                raise ValueError(f"{method}: reference {reference!r} needs sample key {key!r} "
                                 f"(chips {batch['chip_id']})")
            water = probs[:, WATER].numpy()
            pred = probs.argmax(dim=1).numpy().astype(np.int16)
            valid = batch["valid"].numpy().astype(bool) if "valid" in batch else np.ones(pred.shape, bool)
            pred[~valid] = LABEL_NODATA
            for i, cid in enumerate(batch["chip_id"]):
                row = rows.loc[cid]
                scores.update(pred[i], batch[key][i].numpy(), chip_id=str(cid), split=split, event=str(row["event"]))
                if predictions_dir is not None:
                    grid = row["s1_path"] if isinstance(row["s1_path"], str) else row["s2_path"]
                    write_chip_prediction(predictions_dir, str(cid), np.where(valid[i], water[i], np.nan), pred[i],
                                          grid_from=grid)
    return scores


def write_chip_prediction(folder: str | Path, chip_id: str, prob: np.ndarray, pred: np.ndarray, *,
                          grid_from: str | Path) -> tuple[Path, Path]:
    """Write ``prob (H, W)`` float32 (NaN = no data) and ``pred (H, W)`` int8 (-1 = no data) GeoTIFFs.

    Files ``<folder>/<chip_id>_prob.tif`` and ``_pred.tif`` take CRS and transform from the
    GeoTIFF ``grid_from`` (the chip's S1 file), whose size must match. Written atomically.
    """
    import rasterio

    if not is_chip_id(chip_id):
        raise ValueError(f"chip_id {chip_id!r} is not a '<Event>_<id>' name usable as a file name")
    folder = Path(folder)
    with rasterio.open(grid_from) as src:
        crs, transform, shape = src.crs, src.transform, (src.height, src.width)
    if np.shape(prob) != shape or np.shape(pred) != shape:
        raise ValueError(f"{chip_id}: prediction shape {np.shape(prob)} differs from the chip grid {shape} "
                         f"of {grid_from}")
    out = []
    for suffix, arr, dtype, nodata in (("_prob.tif", prob, "float32", float("nan")),
                                       ("_pred.tif", pred, "int8", LABEL_NODATA)):
        path = folder / f"{chip_id}{suffix}"
        out.append(write_geotiff(path, np.asarray(arr).astype(dtype), crs=crs, transform=transform, nodata=nodata,
                                 compress="deflate"))
    return out[0], out[1]


def combine(scores: Iterable[MethodScores]) -> tuple[dict, pd.DataFrame]:
    """``(metrics, per_chip)``: ``{method: {split: ...}}`` plus ``metric``/``definitions``, and one table."""
    from floodnb.metrics import METRIC_DEFINITIONS

    scores = list(scores)
    metrics: dict = {s.method: s.metrics() for s in scores}
    metrics["metric"] = METRIC_NAME
    metrics["definitions"] = dict(METRIC_DEFINITIONS)
    table = pd.concat([s.table() for s in scores], ignore_index=True)
    first = ["chip_id", "event", "split", "method", "water_iou"]
    return metrics, table[first + [c for c in table.columns if c not in first]]


def summary_table(metrics: Mapping) -> pd.DataFrame:
    """Long table method, split, water_iou, miou, precision, recall, valid_pixels, chips from ``metrics``."""
    rows = []
    for method, per_split in metrics.items():
        if not isinstance(per_split, Mapping) or method in ("definitions",):
            continue
        for split, m in per_split.items():
            if isinstance(m, Mapping) and "water_iou" in m:
                rows.append({"method": method, "split": split, **{k: m[k] for k in (
                    "water_iou", "miou", "water_precision", "water_recall", "valid_pixels", "chips") if k in m}})
    return pd.DataFrame(rows)


__all__ = ["METRIC_NAME", "MethodScores", "combine", "model_scores", "otsu_scores", "summary_table",
           "write_chip_prediction"]
