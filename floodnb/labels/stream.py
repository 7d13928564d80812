"""Score label noise chip by chip over a whole dataset in bounded memory.

Per-pixel probabilities for thousands of 512 px chips do not fit in memory (1,000 chips x 2
classes x 512 x 512 float32 = 2 GB). :func:`score_stream` therefore takes an *iterator* of
:class:`ChipInput` (one chip's arrays at a time) and keeps only per-chip numbers: a row of the
chip table, a ``(2, 2)`` confusion matrix per label pair and, with truth, fixed-size histograms
(:class:`floodnb.labels.validate.ValidationAccumulator`). Sources of chips:

* :func:`iter_arrays` — arrays or ``np.memmap`` ``labels (N, H, W)``, ``probs (N, K, H, W)``:
  only chip ``i`` is read when it is scored;
* :func:`iter_catalog` — a catalog DataFrame (:func:`floodnb.data.catalog.build_catalog`), chips
  loaded with :func:`floodnb.data.io.load_chip`, optional recomputed weak labels.

Per-pixel scores of the weak label (high = likely wrong, NaN = no label/data), each also averaged
per chip into a column ``rate_<score>``:

* ``disagree_<source>`` — 1 where another label source disagrees (hand, S2 index, ...);
* ``self_confidence`` — ``1 - P(y|x)`` under a model (``probs``, out of sample);
* ``cromss`` — ``1 -`` the CromSS entangled label confidence of two sensors (``probs`` and
  ``probs_other``), :func:`floodnb.labels.cromss.cromss_noise_score`.

``noise_rate`` is the chip rate of the primary score (``cromss`` > ``self_confidence`` > the
first ``disagree_*``); chips are ranked on it worst first (:func:`floodnb.labels.noise.rank_chips`).
Optionally the primary score map of every chip is written as a float32 GeoTIFF
``<out_dir>/noise_maps/<chip_id>_noise.tif`` (NaN = nodata), atomically.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from floodnb.chip_ids import is_chip_id
from floodnb.geotiff import write_geotiff
from floodnb.io_utils import atomic_path
from floodnb.labels.noise import (
    check_labels,
    chip_noise_rate,
    confusion_stats,
    disagreement_map,
    event_confusion,
    label_noise_score,
    pair_confusion,
    rank_chips,
)
from floodnb.labels.validate import ValidationAccumulator, true_noise_rate

#: catalog role of each label source name (``hand`` is the hand label)
SOURCE_ROLES: dict[str, str] = {"hand": "label", "s1_otsu": "s1_otsu", "s2_index": "s2_index", "jrc": "jrc"}
#: label sources recomputed from imagery (:func:`floodnb.labels.recompute.recompute_weak_labels`)
RECOMPUTED_SOURCES: tuple[str, ...] = ("s1_otsu_chip", "s1_otsu_event", "s2_index_recomputed")
NOISE_TABLE = "noise_chips.csv"
EVENT_TABLE = "event_confusion.csv"
VALIDATION_TABLE = "validation.csv"
MAPS_DIR = "noise_maps"


@dataclass(frozen=True)
class ChipInput:
    """One chip's arrays: ``labels`` source name -> ``(H, W)`` int {-1, 0, 1}; optional
    ``probs``/``probs_other`` ``(K, H, W)`` (model, second sensor), ``truth (H, W)``, and the
    grid (``transform`` an affine, ``crs``) for writing maps.
    """

    chip_id: str
    labels: Mapping[str, np.ndarray]
    event: str = ""
    split: str = ""
    probs: np.ndarray | None = None
    probs_other: np.ndarray | None = None
    truth: np.ndarray | None = None
    transform: object | None = None
    crs: object | None = None


@dataclass
class NoiseResult:
    """Output of :func:`score_stream`: chip table (ranked), per-event confusion, validation (or None)."""

    chips: pd.DataFrame
    events: pd.DataFrame
    validation: pd.DataFrame | None
    maps_written: list[Path] = field(default_factory=list)


def iter_arrays(
    labels: Mapping[str, np.ndarray], *, chip_ids: Sequence[str], events: Sequence[str] | None = None,
    splits: Sequence[str] | None = None, probs: np.ndarray | None = None,
    probs_other: np.ndarray | None = None, truth: np.ndarray | None = None,
) -> Iterator[ChipInput]:
    """Yield one :class:`ChipInput` per chip from ``(N, ...)`` arrays or memmaps, reading chip ``i`` only."""
    n = len(chip_ids)
    for name, arr in [*labels.items(), ("probs", probs), ("probs_other", probs_other), ("truth", truth)]:
        if arr is not None and arr.shape[0] != n:
            raise ValueError(f"{name} has {arr.shape[0]} chips on axis 0, chip_ids has {n}")
    for i in range(n):
        yield ChipInput(
            chip_id=str(chip_ids[i]), event="" if events is None else str(events[i]),
            split="" if splits is None else str(splits[i]),
            labels={k: np.asarray(v[i]) for k, v in labels.items()},
            probs=None if probs is None else np.asarray(probs[i], dtype=np.float32),
            probs_other=None if probs_other is None else np.asarray(probs_other[i], dtype=np.float32),
            truth=None if truth is None else np.asarray(truth[i]),
        )


def iter_catalog(
    catalog: pd.DataFrame, *, sources: Sequence[str], with_truth: bool = False,
) -> Iterator[ChipInput]:
    """Yield chips of ``catalog`` (one row per chip) with the label ``sources`` that exist.

    ``sources``: names from :data:`SOURCE_ROLES` (provided layers) and :data:`RECOMPUTED_SOURCES`
    (recomputed from imagery on the fly). A chip lacking a source simply has no entry for it.
    """
    from floodnb.data.io import load_chip

    unknown = [s for s in sources if s not in SOURCE_ROLES and s not in RECOMPUTED_SOURCES]
    if unknown:
        raise ValueError(f"unknown label sources {unknown}; expected names from "
                         f"{sorted(SOURCE_ROLES) + list(RECOMPUTED_SOURCES)}")
    recompute = [s for s in sources if s in RECOMPUTED_SOURCES]
    for _, row in catalog.iterrows():
        roles = [SOURCE_ROLES[s] for s in sources if s in SOURCE_ROLES]
        if recompute:
            roles += ["s1", "s2"]
        roles = [r for r in dict.fromkeys(roles) if _has_path(row, r)]
        chip = load_chip(row, roles=roles, with_truth=with_truth)
        labels = {s: np.asarray(chip[SOURCE_ROLES[s]].values) for s in sources
                  if s in SOURCE_ROLES and SOURCE_ROLES[s] in chip}
        if recompute and ("s1" in chip or "s2" in chip):
            from floodnb.labels.recompute import recompute_weak_labels

            thr = row["vh_thresh"] if "vh_thresh" in row.index else None
            thr = float(thr) if thr is not None and pd.notna(thr) else None
            rec = recompute_weak_labels(chip, event_threshold=thr)
            labels.update({s: np.asarray(rec[s].values) for s in recompute if s in rec})
        truth = np.asarray(chip["truth_water"].values) if with_truth and "truth_water" in chip else None
        transform = crs = None
        try:
            transform, crs = chip.rio.transform(), chip.rio.crs
        except Exception:  # a chip without georeferencing: maps are written without it
            pass
        yield ChipInput(chip_id=str(row["chip_id"]), event=str(row["event"]), split=str(row["split"]),
                        labels=labels, truth=truth, transform=transform, crs=crs)


def _has_path(row: pd.Series, role: str) -> bool:
    col = f"{role}_path"
    return col in row.index and isinstance(row[col], str) and bool(row[col])


def score_chip(chip: ChipInput, *, weak: str, cromss_measure: str = "label") -> tuple[dict, dict, dict]:
    """Scores of one chip's ``weak`` label: ``(pixel_scores, confusions, row)``.

    ``pixel_scores``: name -> ``(H, W)`` float32 in [0, 1], NaN = no label/data;
    ``confusions``: other source -> ``(2, 2)`` matrix (rows = ``weak``); ``row``: chip-table row.
    """
    if weak not in chip.labels:
        raise ValueError(f"chip {chip.chip_id!r} has no {weak!r} label; it has {sorted(chip.labels)}")
    w = check_labels(chip.labels[weak], name=f"{chip.chip_id}:{weak}")
    if w.ndim != 2:
        raise ValueError(f"chip {chip.chip_id!r}: label {weak!r} must be (H, W), got {w.shape}")
    scores: dict[str, np.ndarray] = {}
    cms: dict[str, np.ndarray] = {}
    row: dict = {"chip_id": chip.chip_id, "event": chip.event, "split": chip.split,
                 "valid_pixels": int((w >= 0).sum())}
    for other, lab in chip.labels.items():
        if other == weak:
            continue
        o = check_labels(lab, name=f"{chip.chip_id}:{other}")
        d = disagreement_map(w, o, a_name=weak, b_name=other).astype(np.float32)
        d[d < 0] = np.nan
        scores[f"disagree_{other}"] = d
        cms[other] = pair_confusion(w, o, a_name=weak, b_name=other)
        row[f"kappa_{other}"] = float(confusion_stats(cms[other])["kappa"])
    if chip.probs is not None:
        scores["self_confidence"] = label_noise_score(w, chip.probs)
    if chip.probs is not None and chip.probs_other is not None:
        from floodnb.labels.cromss import cromss_noise_score

        scores["cromss"] = cromss_noise_score(chip.probs, chip.probs_other, w, measure=cromss_measure)
    for name, s in scores.items():
        row[f"rate_{name}"] = float(chip_noise_rate(s))
    if chip.truth is not None:
        row["true_noise_rate"] = float(true_noise_rate(w, chip.truth))
    return scores, cms, row


def primary_score(names: Iterable[str]) -> str | None:
    """The score behind ``noise_rate``: ``cromss`` > ``self_confidence`` > first ``disagree_*``."""
    names = list(names)
    for pref in ("cromss", "self_confidence"):
        if pref in names:
            return pref
    return next((n for n in names if n.startswith("disagree_")), None)


def score_stream(
    chips: Iterable[ChipInput], *, weak: str = "s1_otsu", out_dir: str | Path | None = None,
    write_maps: bool = False, cromss_measure: str = "label", total: int | None = None,
    progress: bool = True,
) -> NoiseResult:
    """Score every chip of ``chips`` (an iterator, consumed once) and rank them worst first.

    ``weak``: the label source whose noise is scored. ``out_dir`` + ``write_maps``: write the
    primary score map per chip under ``out_dir/noise_maps/``. With truth on the chips the
    validation table (:class:`~floodnb.labels.validate.ValidationAccumulator`) is filled too.
    Memory: one chip's arrays at a time plus O(chips) numbers.
    """
    from tqdm.auto import tqdm

    if write_maps and out_dir is None:
        raise ValueError("write_maps=True needs out_dir")
    maps_dir = Path(out_dir) / MAPS_DIR if write_maps and out_dir is not None else None
    rows: list[dict] = []
    cms: dict[str, list[np.ndarray]] = {}
    cm_events: dict[str, list[str]] = {}
    acc: ValidationAccumulator | None = None
    written: list[Path] = []
    for chip in tqdm(chips, total=total, desc="noise scores", unit="chip", disable=not progress):
        scores, chip_cms, row = score_chip(chip, weak=weak, cromss_measure=cromss_measure)
        main = primary_score(scores)
        row["noise_score"] = main or ""
        row["noise_rate"] = row[f"rate_{main}"] if main else float("nan")
        rows.append(row)
        for other, cm in chip_cms.items():
            cms.setdefault(other, []).append(cm)
            cm_events.setdefault(other, []).append(chip.event)
        if chip.truth is not None:
            if acc is None:  # validated scores: those of the first chip with truth; a chip
                acc = ValidationAccumulator(tuple(scores))  # lacking one counts it as unscored
            acc.update({n: scores.get(n, np.full(chip.truth.shape, np.nan, np.float32)) for n in acc.score_names},
                       chip.labels[weak], chip.truth)
        if maps_dir is not None and main is not None:
            written.append(write_noise_map(maps_dir, chip.chip_id, scores[main],
                                           transform=chip.transform, crs=chip.crs))
    table = pd.DataFrame(rows)
    if table.empty:
        raise ValueError("no chips to score: the chip iterator was empty")
    extra = {c: table[c].tolist() for c in table.columns if c not in ("chip_id", "noise_rate")}
    ranked = rank_chips(table["noise_rate"].to_numpy(), chip_ids=table["chip_id"].tolist(), extra=extra)
    events = pd.concat(
        [event_confusion(np.stack(v), cm_events[k], names=(weak, k)) for k, v in cms.items()],
        ignore_index=True) if cms else pd.DataFrame()
    return NoiseResult(chips=ranked, events=events, validation=None if acc is None else acc.report(),
                       maps_written=written)


def write_noise_map(folder: str | Path, chip_id: str, score: np.ndarray, *, transform=None, crs=None) -> Path:
    """Write ``score (H, W)`` as float32 GeoTIFF ``<folder>/<chip_id>_noise.tif`` atomically."""
    if not is_chip_id(chip_id):
        raise ValueError(f"chip_id {chip_id!r} is not safe as a file name (a letter or digit, then letters, "
                         f"digits, _ - only)")
    s = np.asarray(score, dtype=np.float32)
    if s.ndim != 2:
        raise ValueError(f"score map of {chip_id!r} must be (H, W), got {s.shape}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{chip_id}_noise.tif"
    write_geotiff(path, s, crs=crs, transform=transform, nodata=float("nan"), compress="deflate",
                  descriptions=("label-noise score 0..1 (NaN = nodata)",))
    return path


def write_tables(result: NoiseResult, out_dir: str | Path) -> dict[str, Path]:
    """Write the chip table, event confusion and (if any) validation table as CSV, atomically."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"chips": out / NOISE_TABLE, "events": out / EVENT_TABLE}
    _atomic_csv(result.chips, paths["chips"])
    _atomic_csv(result.events, paths["events"])
    if result.validation is not None:
        paths["validation"] = out / VALIDATION_TABLE
        _atomic_csv(result.validation, paths["validation"])
    return paths


def _atomic_csv(df: pd.DataFrame, path: Path) -> None:
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False)


__all__ = [
    "EVENT_TABLE", "MAPS_DIR", "NOISE_TABLE", "RECOMPUTED_SOURCES", "SOURCE_ROLES", "VALIDATION_TABLE",
    "ChipInput", "NoiseResult", "iter_arrays", "iter_catalog", "primary_score", "score_chip",
    "score_stream", "write_noise_map", "write_tables",
]
