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
  water_recall, valid_pixels, ... and the areas of :data:`floodnb.area.AREA_COLUMNS` (km²: predicted
  and reference water, JRC permanent water, flood = water AND NOT permanent, over the scored pixels;
  :func:`floodnb.area.catalog_chip_areas`) — the dashboard's ``per_chip.csv``;
* :func:`event_area_table` sums those areas per method, split and event; :func:`area_record` per
  method and split, for the stage record.

:func:`write_chip_prediction` writes a model's water probability (float32, NaN = no data; or
``compact`` uint8 percent, 255 = no data) and class (int8, -1 = no data) as GeoTIFFs on the chip's
grid: ``<chip_id>_prob.tif`` / ``_pred.tif``. Each method's files go to
:func:`floodnb.runs.layout.predictions_dir` (the student's directly in ``predictions/``, the
others' in ``predictions/<method>/``), so the dashboard's model selector switches the map too.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from floodnb.area import AREA_COLUMNS, AREA_DEFINITIONS, catalog_chip_areas, event_areas
from floodnb.bands import LABEL_NODATA, WATER
from floodnb.chip_ids import is_chip_id
from floodnb.geotiff import write_geotiff
from floodnb.metrics import ConfusionAccumulator
from floodnb.references import reference_key

#: reference name -> chip variable (load_chip) / sample key (ChipDataset), from :mod:`floodnb.references`
REFERENCE_VAR: dict[str, tuple[str, str]] = {r: (reference_key(r, "chip"), reference_key(r))
                                             for r in ("truth_water", "label")}
#: Chip ids usable as file names (``<Event>_<id>``, as in :mod:`floodnb.viz.dashboard`).
#: no-data value of a ``compact`` (uint8 percent) probability GeoTIFF
PROB_NODATA_U8 = 255
METRIC_NAME = "water_iou (water-class IoU of the global confusion matrix over valid pixels)"


class MethodScores:
    """Accumulates one method's predictions per split: global confusion matrices and chip rows."""

    def __init__(self, method: str, *, reference: str) -> None:
        if reference not in REFERENCE_VAR:
            raise ValueError(f"reference={reference!r}: expected one of {tuple(REFERENCE_VAR)}")
        self.method, self.reference = method, reference
        self.acc: dict[str, ConfusionAccumulator] = {}

    def update(self, pred: np.ndarray, ref: np.ndarray, *, chip_id: str, split: str, event: str, **extra) -> None:
        """Add one chip: ``pred``/``ref`` ``(H, W)`` int in {-1, 0, 1} (-1 and IGNORE_INDEX ignored);
        ``extra`` (e.g. the chip's areas) goes into its row of the per-chip table.
        """
        acc = self.acc.setdefault(split, ConfusionAccumulator())
        acc.update(np.asarray(pred), np.asarray(ref), chip_id=chip_id, event=event, split=split, method=self.method,
                   **extra)

    def metrics(self) -> dict:
        """``{split: summary + confusion_matrix + reference}``."""
        return {s: {**a.summary(), "confusion_matrix": a.total.tolist(), "reference": self.reference}
                for s, a in self.acc.items()}

    def table(self) -> pd.DataFrame:
        return pd.concat([a.table() for a in self.acc.values()], ignore_index=True) if self.acc else pd.DataFrame()


def otsu_scores(catalog: pd.DataFrame, *, splits: Sequence[str], reference: str, progress: bool = True,
                predictions_dir: str | Path | None = None) -> MethodScores:
    """Score per-chip Otsu on VH over the ``splits`` chips of ``catalog`` (method name ``otsu``).

    With ``predictions_dir`` every chip's class is written there (:func:`write_chip_prediction`,
    no probability: Otsu has none).
    """
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
        ref = chip[var].values
        scores.update(pred, ref, chip_id=str(row["chip_id"]), split=str(row["split"]), event=str(row["event"]),
                      **catalog_chip_areas(row, pred, ref))
        if predictions_dir is not None:
            write_chip_prediction(predictions_dir, str(row["chip_id"]), None, pred, grid_from=row["s1_path"])
    return scores


def model_scores(method: str, checkpoint: str | Path, catalog: pd.DataFrame, *, splits: Sequence[str],
                 reference: str, batch_size: int = 8, predictions_dir: str | Path | None = None,
                 compact: bool = False, progress: bool = True, precision: str = "float32") -> MethodScores:
    """Score a checkpoint on the ``splits`` chips of ``catalog`` against ``reference`` (forward in ``precision``,
    :mod:`floodnb.runtime`).

    Inputs are read with the checkpoint's normalisers (and metadata / weak-label channel when its
    spec asks for them). With ``predictions_dir`` every chip's probability and class are written
    there (:func:`write_chip_prediction`; ``compact``: probability as uint8 percent).
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
                ref = batch[key][i].numpy()
                scores.update(pred[i], ref, chip_id=str(cid), split=split, event=str(row["event"]),
                              **catalog_chip_areas({**row.to_dict(), "chip_id": cid}, pred[i], ref))
                if predictions_dir is not None:
                    grid = row["s1_path"] if isinstance(row["s1_path"], str) else row["s2_path"]
                    write_chip_prediction(predictions_dir, str(cid), np.where(valid[i], water[i], np.nan), pred[i],
                                          grid_from=grid, compact=compact)
    return scores


def write_chip_prediction(folder: str | Path, chip_id: str, prob: np.ndarray | None, pred: np.ndarray, *,
                          grid_from: str | Path, compact: bool = False) -> tuple[Path | None, Path]:
    """Write ``prob (H, W)`` in [0, 1] (NaN = no data) and ``pred (H, W)`` int8 (-1 = no data) GeoTIFFs.

    Files ``<folder>/<chip_id>_prob.tif`` and ``_pred.tif`` take CRS and transform from the
    GeoTIFF ``grid_from`` (the chip's S1 file), whose size must match. The probability is float32
    (NaN = no data), or with ``compact`` uint8 percent 0..100 (255 = no data, a quarter of the
    size); ``prob=None`` writes the class only (returned probability path ``None``). Written
    atomically, deflate-compressed.
    """
    import rasterio

    if not is_chip_id(chip_id):
        raise ValueError(f"chip_id {chip_id!r} is not a '<Event>_<id>' name usable as a file name")
    folder = Path(folder)
    with rasterio.open(grid_from) as src:
        crs, transform, shape = src.crs, src.transform, (src.height, src.width)
    if (prob is not None and np.shape(prob) != shape) or np.shape(pred) != shape:
        raise ValueError(f"{chip_id}: prediction shape {np.shape(pred if prob is None else prob)} differs from "
                         f"the chip grid {shape} of {grid_from}")
    prob_path = None
    if prob is not None:
        p = np.asarray(prob, dtype=np.float32)
        arr, dtype, nodata = ((np.where(np.isfinite(p), np.round(np.clip(p, 0, 1) * 100), PROB_NODATA_U8), "uint8",
                               PROB_NODATA_U8) if compact else (p, "float32", float("nan")))
        prob_path = write_geotiff(folder / f"{chip_id}_prob.tif", np.asarray(arr).astype(dtype), crs=crs,
                                  transform=transform, nodata=nodata, compress="deflate")
    pred_path = write_geotiff(folder / f"{chip_id}_pred.tif", np.asarray(pred).astype("int8"), crs=crs,
                              transform=transform, nodata=LABEL_NODATA, compress="deflate")
    return prob_path, pred_path


def combine(scores: Iterable[MethodScores]) -> tuple[dict, pd.DataFrame]:
    """``(metrics, per_chip)``: ``{method: {split: ...}}`` plus ``metric``/``definitions``, and one table."""
    from floodnb.metrics import METRIC_DEFINITIONS

    scores = list(scores)
    metrics: dict = {s.method: s.metrics() for s in scores}
    metrics["metric"] = METRIC_NAME
    metrics["definitions"] = dict(METRIC_DEFINITIONS)
    table = pd.concat([s.table() for s in scores], ignore_index=True)
    first = ["chip_id", "event", "split", "method", "water_iou"]
    last = [c for c in AREA_COLUMNS if c in table.columns]
    return metrics, table[first + [c for c in table.columns if c not in first and c not in last] + last]


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


def event_area_table(per_chip: pd.DataFrame) -> pd.DataFrame:
    """Areas (km², :data:`floodnb.area.AREA_COLUMNS`) summed per method, split and event, with ``chips``."""
    by = [c for c in ("method", "split", "event") if c in per_chip.columns]
    return event_areas(per_chip, by=by)


def area_record(per_chip: pd.DataFrame) -> dict:
    """``{method: {split: {area column: km² or None}}}`` plus ``definitions``, for the stage record."""
    totals = event_areas(per_chip, by=("method", "split"))
    out: dict = {"definitions": dict(AREA_DEFINITIONS)}
    for _, r in totals.iterrows():
        out.setdefault(str(r["method"]), {})[str(r["split"])] = {
            "chips": int(r["chips"]), **{c: None if pd.isna(r[c]) else float(r[c]) for c in AREA_COLUMNS}}
    return out


__all__ = ["METRIC_NAME", "MethodScores", "area_record", "combine", "event_area_table", "model_scores",
           "otsu_scores", "summary_table", "write_chip_prediction"]
