"""One pixel set for every row: per-chip confusion counts on a common valid-pixel mask.

Every row of the experiment (thresholds, S1 models, S2 teachers, any later row) is scored on the
**same pixels** of each split: both Sentinel-1 bands finite **and** a reference label 0/1 (the
simulator's true water mask ``truth_water`` on ``test``/``bolivia``; the hand label on
``valid``). A row whose inputs lack data at such a pixel (an S2 teacher under S2 no-data) still
predicts there from its no-data-filled input; the count of those pixels is kept per chip
(``no_input_pixels``). Pixels outside the mask are ignored by every row alike.

Per chip and split the counts ``tn, fp, fn, tp`` (reference = rows, prediction = columns of
:func:`floodnb.metrics.confusion`) are stored, so that the global water IoU of a split is
``sum(tp) / sum(tp + fp + fn)`` over its chips and a bootstrap over chips
(:mod:`floodnb.experiment.stats`) can resample them.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from floodnb.bands import WATER
from floodnb.metrics import summarize

#: Reference layer of each scored split (``valid`` picks epochs, teachers and students; never test).
SPLIT_REFERENCE: dict[str, str] = {"valid": "label", "test": "truth_water", "bolivia": "truth_water"}
COUNT_COLUMNS: tuple[str, ...] = ("split", "chip_id", "tn", "fp", "fn", "tp", "no_input_pixels")
MASK_LINE = ("every row is scored on the same pixels: both S1 bands finite and a reference label 0/1 "
             "(true water mask on test/held-out, hand label on valid); rows whose inputs lack data there "
             "(S2 no-data) predict from their filled input; pixels outside this mask are ignored by every row")


@dataclass(frozen=True)
class EvalChips:
    """The common mask of every chip of one split: ``masks[chip_id]`` bool ``(H, W)`` and ``refs`` int8 0/1."""

    split: str
    reference: str
    chip_ids: tuple[str, ...]
    masks: Mapping[str, np.ndarray]
    refs: Mapping[str, np.ndarray]
    s1: Mapping[str, np.ndarray]  # (2, H, W) float32 dB, for threshold rows

    @property
    def pixels(self) -> int:
        return int(sum(int(m.sum()) for m in self.masks.values()))


def eval_chips(catalog: pd.DataFrame, split: str) -> EvalChips:
    """Read S1 and the split's reference of every hand chip of ``split`` and build the common mask.

    ``catalog``: :func:`floodnb.data.catalog.build_catalog` of the experiment's data. Raises
    ``ValueError`` naming the split when it has no chip with S1 and its reference.
    """
    from floodnb.data.io import EmptyChipWarning, read_arrays

    if split not in SPLIT_REFERENCE:
        raise ValueError(f"split {split!r}: expected one of {list(SPLIT_REFERENCE)}")
    ref = SPLIT_REFERENCE[split]
    col = f"{ref}_path"
    if col not in catalog.columns:
        raise ValueError(f"split {split!r}: the catalog has no {ref!r} layers (column {col})")
    chips = catalog[(catalog["split"] == split) & catalog["s1_path"].notna() & catalog[col].notna()]
    if len(chips) == 0:
        raise ValueError(f"split {split!r} has no chips with S1 and {ref!r} in the catalog")
    masks, refs, s1s = {}, {}, {}
    for _, row in chips.iterrows():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", EmptyChipWarning)
            arrays, _ = read_arrays(row, roles=("s1", ref))
        s1 = np.asarray(arrays["s1"], dtype=np.float32)
        lab = np.asarray(arrays[ref])
        cid = str(row["chip_id"])
        masks[cid] = np.isfinite(s1).all(axis=0) & ((lab == 0) | (lab == 1))
        refs[cid] = (lab == WATER).astype(np.int8)
        s1s[cid] = s1
    return EvalChips(split=split, reference=ref, chip_ids=tuple(masks), masks=masks, refs=refs, s1=s1s)


def chip_counts(chips: EvalChips, cid: str, pred: np.ndarray, no_input: np.ndarray | None = None) -> dict:
    """Confusion counts of prediction ``pred`` ``(H, W)`` (0/1; other values count as dry) on chip ``cid``."""
    m, r = chips.masks[cid], chips.refs[cid]
    if pred.shape != m.shape:
        raise ValueError(f"chip {cid}: prediction shape {pred.shape} != chip shape {m.shape}")
    p = (np.asarray(pred) == WATER)[m]
    t = r[m].astype(bool)
    tp = int((p & t).sum())
    fp = int((p & ~t).sum())
    fn = int((~p & t).sum())
    return {"split": chips.split, "chip_id": cid, "tn": int(m.sum()) - tp - fp - fn, "fp": fp, "fn": fn, "tp": tp,
            "no_input_pixels": 0 if no_input is None else int((no_input & m).sum())}


def summary(counts: pd.DataFrame) -> dict:
    """Global metrics (:func:`floodnb.metrics.summarize`) of per-chip counts, plus ``chips`` and ``pixels``."""
    s = counts[["tn", "fp", "fn", "tp"]].to_numpy(np.int64).sum(axis=0)
    cm = np.array([[s[0], s[1]], [s[2], s[3]]], dtype=np.int64)
    return {**summarize(cm), "chips": int(len(counts)), "pixels": int(cm.sum()),
            "no_input_pixels": int(counts["no_input_pixels"].sum()) if "no_input_pixels" in counts else 0}


def score_threshold(chips: EvalChips, threshold_of: Callable[[str], float | None]) -> pd.DataFrame:
    """Counts of VH thresholding: water where VH < ``threshold_of(chip_id)`` dB (None: the chip's Otsu)."""
    from floodnb.labels.weak import otsu_label

    rows = []
    for cid in chips.chip_ids:
        t = threshold_of(cid)
        if t is not None and not np.isfinite(t):
            raise ValueError(f"chip {cid}: no finite VH threshold for its event")
        rows.append(chip_counts(chips, cid, otsu_label(chips.s1[cid], threshold=t)))
    return pd.DataFrame(rows, columns=list(COUNT_COLUMNS))


def score_model(checkpoint, data, chips: EvalChips, *, batch_size: int, progress: bool = False) -> pd.DataFrame:
    """Counts of the model in ``checkpoint`` on ``data`` (full chips, no crop/augmentation) over the mask.

    The prediction is the argmax on every pixel (not cut to the model's own input mask): the
    common mask alone decides which pixels count. Every chip of ``chips`` must be in ``data``.
    """
    from floodnb.distill.evaluate import iterate_predictions, plan_from_spec
    from floodnb.distill.inputs import chip_ids
    from floodnb.models import load_checkpoint

    model, spec = load_checkpoint(checkpoint)
    rows = []
    for batch, probs in iterate_predictions(model, data, plan_from_spec(spec), batch_size=batch_size,
                                            progress=progress, desc=f"score {chips.split}"):
        pred = probs.argmax(dim=1).cpu().numpy()
        valid = batch["valid"].cpu().numpy().astype(bool) if "valid" in batch else None
        for i, cid in enumerate(chip_ids(batch)):
            if cid in chips.masks:
                rows.append(chip_counts(chips, cid, pred[i], None if valid is None else ~valid[i]))
    got = {r["chip_id"] for r in rows}
    missing = [c for c in chips.chip_ids if c not in got]
    if missing:
        raise ValueError(f"split {chips.split!r}: the evaluation data of {checkpoint} lacks chips {missing[:5]} "
                         f"({len(missing)} in all); every row must predict every chip of the common mask")
    return pd.DataFrame(rows, columns=list(COUNT_COLUMNS))
