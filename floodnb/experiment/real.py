"""Report (not a test threshold): Otsu and a trained S1 model on real hand-labelled Sen1Floods11 chips.

Reference = the chips' hand labels (``LabelHand``; -1 ignored). Otsu per chip and per event
(metadata ``VH_thresh``) from :func:`floodnb.distill.baselines.otsu_baseline`; the model through
:func:`floodnb.distill.evaluate.evaluate_model` with the checkpoint's own normalisers. Water IoU
from the global confusion matrix over all chips (and per split where the chips have one), plus
the per-chip table. Chips whose S1 is entirely no-data count no pixels (nothing to predict).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

COLUMNS: tuple[str, ...] = ("method", "split", "chips", "water_iou", "miou", "water_precision", "water_recall",
                            "valid_pixels")


def real_chip_report(real_root: str | Path, *, checkpoint: str | Path | None, model_row: str = "",
                     progress: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(summary, per_chip)`` of Otsu (chip, event) and ``checkpoint`` on the hand-labelled chips of ``real_root``.

    ``summary``: one row per method and split ("all" = every chip) with :data:`COLUMNS`;
    ``per_chip``: chip_id, split, method, water_iou and pixel counts. Empty-chip warnings of the
    reader (all-NaN S1, all-nodata labels) are collected into ``summary.attrs["notes"]``.
    """
    import warnings

    from floodnb.data.io import EmptyChipWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", EmptyChipWarning)
        summary, per_chip = _report(real_root, checkpoint=checkpoint, model_row=model_row, progress=progress)
    notes = sorted({str(w.message).split(" layer ")[0] + ": " + str(w.message).split("; ")[-1]
                    for w in caught if issubclass(w.category, EmptyChipWarning)})
    summary.attrs["notes"] = notes  # e.g. "chip Paraguay_34417: returned as all-NaN"
    return summary, per_chip


def _report(real_root, *, checkpoint, model_row: str, progress: bool) -> tuple[pd.DataFrame, pd.DataFrame]:
    from floodnb.data.catalog import build_catalog
    from floodnb.distill.baselines import otsu_baseline

    root = Path(real_root)
    if not root.is_dir():
        raise FileNotFoundError(f"real chips root {root} is not a folder (expected a Sen1Floods11 layout)")
    cat = build_catalog(root)
    chips = cat[cat["s1_path"].notna() & cat["label_path"].notna()].reset_index(drop=True)
    if len(chips) == 0:
        raise ValueError(f"{root}: no chip has both S1Hand and LabelHand; nothing to evaluate")
    groups = {"all": chips}
    by_split = {str(s): g for s, g in chips.groupby("split") if len(g)}
    if len(by_split) > 1:  # per-split lines only where they differ from "all"
        groups.update(by_split)
    rows, tables = [], []
    for mode in ("chip", "event"):
        for split, g in groups.items():
            m, t = otsu_baseline(g, mode=mode, reference="label", split=split)
            rows.append(_row(f"otsu_{mode}", split, m))
            if split == "all":
                tables.append(t.assign(method=f"otsu_{mode}"))
    if checkpoint is not None:
        from floodnb.data.normalize import Normalizer
        from floodnb.data.torch import ChipDataset
        from floodnb.distill.evaluate import evaluate_model, plan_from_spec
        from floodnb.models import load_checkpoint

        model, spec = load_checkpoint(checkpoint)
        if tuple(spec.inputs) != ("s1",):
            raise ValueError(f"{checkpoint}: the real-chip report needs a Sentinel-1 model, got inputs {spec.inputs}")
        norms = {"s1": Normalizer.from_dict(spec.normalizers["s1"])}
        name = model_row or Path(checkpoint).parent.name
        for split, g in groups.items():
            ds = ChipDataset(g, inputs=("s1",), target="label", weak=None, normalizers=norms)
            m, t = evaluate_model(model, ds, plan_from_spec(spec), batch_size=2, progress=progress, split=split)
            rows.append(_row(name, split, m))
            if split == "all":
                tables.append(t.assign(method=name))
    return pd.DataFrame(rows, columns=list(COLUMNS)), pd.concat(tables, ignore_index=True)


def _row(method: str, split: str, m: dict) -> dict:
    return {"method": method, "split": split, "chips": int(m["chips"]) if "chips" in m else None,
            "water_iou": m["water_iou"], "miou": m["miou"], "water_precision": m["water_precision"],
            "water_recall": m["water_recall"], "valid_pixels": int(m["valid_pixels"])}
