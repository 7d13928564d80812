"""The data behind the dashboard of one ``floodnb run``: its tables read once, and the chip table.

:func:`load_run` reads a run directory written by ``floodnb run``::

    runs/<name>/run.json                                   data_root, params, stages
    runs/<name>/02_weak_labels_and_noise/noise_chips.csv   chip_id, event, split, noise_rate, <scores>, rank
    runs/<name>/05_evaluate/per_chip.csv                   chip_id, event, split, method, water_iou, ...
    runs/<name>/05_evaluate/metrics.json                   {method: {split: {water_iou, miou, ...}}}

plus the data root's catalog (:func:`floodnb.data.catalog.build_catalog`) into a read-only
:class:`RunData` shared by every dashboard session; :func:`chip_table` joins the metrics of
one method with the noise table, worst water IoU first. Chip ids in the tables must be safe
file names (:func:`floodnb.chip_ids.is_chip_id`). No widgets here (:mod:`floodnb.viz.dashboard`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from floodnb.area import AREA_COLUMNS
from floodnb.chip_ids import is_chip_id
from floodnb.runs import layout as run_layout

__all__ = ["AREA_COLUMNS", "DISPLAY_COLUMNS", "EVAL_DIR", "INTERNAL_COLUMNS", "METRICS_FILE", "NOISE_DIR",
           "NOISE_TABLE", "PER_CHIP_TABLE", "RunData", "chip_table", "hidden_columns", "load_run", "prediction_files"]

NOISE_DIR = run_layout.NOISE
EVAL_DIR = run_layout.EVALUATE
NOISE_TABLE = run_layout.NOISE_TABLE
PER_CHIP_TABLE = run_layout.PER_CHIP_TABLE
METRICS_FILE = run_layout.EVAL_METRICS


@dataclass(frozen=True)
class RunData:
    """Tables of one run, read once and shared read-only by every dashboard session."""

    run_dir: Path
    name: str
    data_root: Path
    catalog: pd.DataFrame  # index chip_id, build_catalog columns
    per_chip: pd.DataFrame  # per_chip.csv (all methods); may be empty
    noise: pd.DataFrame  # noise_chips.csv; may be empty
    metrics: dict
    methods: tuple[str, ...]


def _read_csv(path: Path, required: tuple[str, ...]) -> pd.DataFrame:
    df = pd.read_csv(path, dtype={"chip_id": str, "event": str, "split": str})
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise ValueError(f"{path} lacks column(s) {missing}; expected at least {list(required)}")
    bad = [c for c in df["chip_id"] if not is_chip_id(str(c))]
    if bad:
        raise ValueError(f"{path} holds chip ids that are not '<Event>_<id>' names: {bad[:3]}")
    return df


def load_run(run_dir: str | Path, *, data_root: str | Path | None = None) -> RunData:
    """Read ``run.json``, the per-chip metrics, the noise table and the data root's catalog.

    ``data_root`` overrides the one recorded in ``run.json`` (e.g. a run copied to another
    machine). Raises FileNotFoundError naming the missing file, ValueError for malformed tables.
    """
    from floodnb.data.catalog import build_catalog

    run_dir = Path(run_dir).resolve()
    run_json = run_dir / "run.json"
    if not run_json.is_file():
        raise FileNotFoundError(f"{run_json} not found: expected a run directory written by 'floodnb run'")
    try:
        meta = json.loads(run_json.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{run_json} is not valid JSON ({exc})") from exc
    if data_root is None:
        if "data_root" not in meta:
            raise ValueError(f"{run_json} records no 'data_root'; pass data_root= explicitly")
        data_root = meta["data_root"]
    data_root = Path(data_root).resolve()

    per_chip_path, noise_path = run_dir / PER_CHIP_TABLE, run_dir / NOISE_TABLE
    if not per_chip_path.is_file() and not noise_path.is_file():
        raise FileNotFoundError(
            f"neither {per_chip_path} nor {noise_path} exists: run the evaluate / noise notebooks first")
    per_chip = (_read_csv(per_chip_path, ("chip_id", "method", "water_iou")) if per_chip_path.is_file()
                else pd.DataFrame({"chip_id": pd.Series(dtype=str), "method": pd.Series(dtype=str)}))
    noise = (_read_csv(noise_path, ("chip_id", "noise_rate")) if noise_path.is_file()
             else pd.DataFrame({"chip_id": pd.Series(dtype=str)}))
    metrics_path = run_dir / METRICS_FILE
    metrics = json.loads(metrics_path.read_text()) if metrics_path.is_file() else {}

    catalog = build_catalog(data_root)
    catalog = catalog.drop_duplicates("chip_id").set_index("chip_id", drop=False)
    methods = tuple(dict.fromkeys(str(m) for m in per_chip["method"]))
    return RunData(run_dir=run_dir, name=str(meta.get("name", run_dir.name)), data_root=data_root,
                   catalog=catalog, per_chip=per_chip, noise=noise, metrics=metrics, methods=methods)


#: columns never shown or exported: simulator-only truth and bookkeeping of the noise stage
INTERNAL_COLUMNS: tuple[str, ...] = ("true_noise_rate", "status", "noise_score", "method")
#: columns of the dashboard's table, in order, when present (the rest stay in the row for the
#: chip panel and the CSV export; event and split have their own filters). Areas (km²) come from
#: :mod:`floodnb.area` when the run has them.
DISPLAY_COLUMNS: tuple[str, ...] = ("chip_id", "water_iou", "water_km2", "flood_km2", "noise_rate")
#: integer counts that a merge with missing rows would turn into floats
COUNT_COLUMNS: tuple[str, ...] = ("valid_pixels", "rank")


def chip_table(run: RunData, *, method: str | None) -> pd.DataFrame:
    """One row per chip: metrics of ``method`` joined with the noise table, worst water IoU first.

    Chips without metrics (e.g. the weak pool, scored for noise only) follow, highest noise
    rate first. Only chips present in the data root's catalog are listed. Columns both tables
    hold (``valid_pixels``, ...) come from the metrics table (the noise table's fill in chips
    without metrics), so no ``_x``/``_y`` merge leftovers appear; :data:`INTERNAL_COLUMNS` are
    dropped; counts are nullable integers.
    """
    pc = run.per_chip
    if method is not None:
        if method not in run.methods:
            raise ValueError(f"method {method!r} not in {PER_CHIP_TABLE}; expected one of {run.methods}")
        pc = pc[pc["method"] == method]
    pc = pc.drop(columns=[c for c in INTERNAL_COLUMNS if c in pc.columns])
    noise = run.noise.drop(columns=[c for c in INTERNAL_COLUMNS if c in run.noise.columns])
    if len(pc) and len(noise):
        shared = [c for c in noise.columns if c in pc.columns and c != "chip_id"]
        table = pc.merge(noise, on="chip_id", how="outer", suffixes=("", "__noise"))
        for c in shared:
            table[c] = table[c].where(table[c].notna(), table[f"{c}__noise"])
        table = table.drop(columns=[f"{c}__noise" for c in shared])
    else:
        table = pc if len(pc) else noise
    table = table[table["chip_id"].isin(run.catalog.index)].copy()
    for col in ("event", "split"):
        if col not in table.columns or table[col].isna().any():
            table[col] = run.catalog.loc[table["chip_id"], col].to_numpy() if col in run.catalog else ""
    for col in COUNT_COLUMNS:
        if col in table.columns and pd.api.types.is_numeric_dtype(table[col]):
            table[col] = table[col].round().astype("Int64")
    sort_cols, asc = [], []
    if "water_iou" in table.columns:
        sort_cols.append("water_iou")
        asc.append(True)
    if "noise_rate" in table.columns:
        sort_cols.append("noise_rate")
        asc.append(False)
    if sort_cols:
        table = table.sort_values(sort_cols, ascending=asc, na_position="last", kind="stable")
    first = [c for c in ("chip_id", "event", "split", "water_iou", "water_precision", "water_recall",
                         *AREA_COLUMNS, "noise_rate", "rank", "valid_pixels") if c in table.columns]
    return table[first + [c for c in table.columns if c not in first]].reset_index(drop=True)


def hidden_columns(table: pd.DataFrame) -> list[str]:
    """Columns of ``table`` the dashboard's table hides (all but :data:`DISPLAY_COLUMNS`)."""
    return [c for c in table.columns if c not in DISPLAY_COLUMNS]


def prediction_files(run: RunData, method: str | None, chip_id: str) -> dict[str, Path]:
    """Saved prediction files of ``method`` for ``chip_id``: ``{"pred": ..., "prob": ...}`` (those that exist).

    Looked up in :func:`floodnb.runs.layout.predictions_dir` of the run's predictions folder;
    ``chip_id`` must be a safe chip name (it becomes part of a file name) and ``method`` one of
    the run's methods. Empty when the run saved nothing for that model.
    """
    if not is_chip_id(chip_id):
        raise ValueError(f"chip id {chip_id!r} is not a '<Event>_<id>' name")
    if method is None:
        method = run_layout.PREDICTIONS_DEFAULT_METHOD
    elif method not in run.methods:
        raise ValueError(f"method {method!r} not in {PER_CHIP_TABLE}; expected one of {run.methods}")
    folder = run_layout.predictions_dir(run.run_dir / run_layout.PREDICTIONS, method)
    found = {k: folder / f"{chip_id}_{k}.tif" for k in ("pred", "prob")}
    return {k: p for k, p in found.items() if p.is_file()}
