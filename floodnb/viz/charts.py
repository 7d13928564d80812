"""Interactive charts of a run's tables for notebooks 02–05 (hvplot), with readable axis labels.

Every function takes a table a notebook already holds and returns a HoloViews object; hvplot is
imported inside each function so that importing this module publishes no JavaScript (load it once
with :func:`floodnb.viz.offline.notebook_extension`).
"""

from __future__ import annotations

import pandas as pd

from floodnb.viz.offline import ensure_hvplot

IOU_LABEL = "water IoU (global confusion matrix)"


def _need(df: pd.DataFrame, cols: list[str], what: str) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise ValueError(f"{what} table lacks columns {missing}; it has {list(df.columns)}")


def noise_rate_hist(chips: pd.DataFrame, *, weak: str, height: int = 280):
    """Histogram of per-chip noise rate (fraction of a chip's pixels flagged), one colour per split."""
    ensure_hvplot()

    _need(chips, ["noise_rate", "split"], "noise chips")
    return chips.hvplot.hist(y="noise_rate", by="split", bins=30, alpha=0.5, height=height,
                             xlabel=f"noise rate of the {weak} weak label (fraction of chip pixels)",
                             ylabel="chips", title=f"per-chip noise rate of the {weak} weak label")


def noise_vs_truth(chips: pd.DataFrame, *, height: int = 320):
    """Scatter of the estimated noise rate against the simulator's true one, with the 1:1 line."""
    import holoviews as hv
    ensure_hvplot()

    _need(chips, ["true_noise_rate", "noise_rate", "event"], "noise chips")
    pts = chips.hvplot.scatter(x="true_noise_rate", y="noise_rate", by="event", height=height,
                               hover_cols=[c for c in ("chip_id", "split") if c in chips.columns],
                               xlabel="true noise rate (simulator truth)", ylabel="estimated noise rate",
                               title="noise score vs true noise rate (simulator truth)")
    return pts * hv.Curve([(0, 0), (1, 1)], label="1:1").opts(color="grey", line_dash="dashed")


def training_curves(epochs: pd.DataFrame, *, y: str | list[str] = "train_loss", by: str | None = None,
                    title: str = "training", height: int = 260):
    """Lines of ``y`` per epoch (``epochs.csv`` of :func:`floodnb.distill.engine.fit`), one per ``by`` value."""
    ensure_hvplot()

    ys = [y] if isinstance(y, str) else list(y)
    _need(epochs, ["epoch", *ys, *([by] if by else [])], "epochs")
    labels = {"train_loss": "mean training loss", "valid_water_iou": "validation water IoU"}
    ylabel = labels.get(ys[0], ys[0]) if len(ys) == 1 else " / ".join(labels.get(c, c) for c in ys)
    return epochs.hvplot.line(x="epoch", y=ys if len(ys) > 1 else ys[0], by=by, height=height, title=title,
                              xlabel="epoch", ylabel=ylabel)


def probability_hist(water: pd.Series, *, height: int = 240):
    """Histogram of the teacher's water probability on the pool (sampled pixels)."""
    ensure_hvplot()

    return water.rename("water_probability").to_frame().hvplot.hist(
        bins=40, height=height, title="teacher water probability on the pool",
        xlabel="water probability", ylabel="pixels")


def iou_bars(summary: pd.DataFrame, *, reference: str, height: int = 300):
    """Bars of water IoU per split and method (``summary.csv`` of notebook 05)."""
    ensure_hvplot()

    _need(summary, ["split", "method", "water_iou"], "summary")
    return summary.hvplot.bar(x="split", y="water_iou", by="method", height=height, ylim=(0, 1),
                              xlabel="split", ylabel=IOU_LABEL, title=f"water IoU vs {reference}")


def student_vs_baseline(per_chip: pd.DataFrame, *, height: int = 340):
    """Per-chip water IoU of the student against the S1-weak baseline, with the 1:1 line.

    ``per_chip``: long table (chip_id, event, split, method, water_iou) of
    :func:`floodnb.compare.combine`; points above the line are chips the student maps better.
    """
    import holoviews as hv
    ensure_hvplot()

    _need(per_chip, ["chip_id", "event", "split", "method", "water_iou"], "per-chip")
    wide = per_chip.pivot_table(index=["chip_id", "event", "split"], columns="method",
                                values="water_iou").reset_index()
    _need(wide, ["s1_weak", "student"], "per-chip (methods)")
    pts = wide.hvplot.scatter(x="s1_weak", y="student", by="split", hover_cols=["chip_id", "event"], height=height,
                              xlim=(0, 1), ylim=(0, 1), xlabel="water IoU, S1-weak baseline",
                              ylabel="water IoU, student",
                              title="per-chip water IoU: student vs S1-weak baseline (above the line: student better)")
    return pts * hv.Curve([(0, 0), (1, 1)], label="1:1").opts(color="grey", line_dash="dashed")


__all__ = ["IOU_LABEL", "iou_bars", "noise_rate_hist", "noise_vs_truth", "probability_hist", "student_vs_baseline",
           "training_curves"]
