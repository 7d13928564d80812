"""Outputs of the experiment: ``results.md`` (markdown table), ``results.png`` (bar chart), README block.

:func:`replace_readme_block` rewrites only the text between ``<!-- experiment:start -->`` and
``<!-- experiment:end -->`` (markers kept), atomically; a file without exactly one pair of
markers in that order is refused with an error naming it, and left untouched.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from floodnb.io_utils import atomic_path, atomic_write_text

START_MARKER = "<!-- experiment:start -->"
END_MARKER = "<!-- experiment:end -->"
METRIC_LINE = ("water IoU = TP / (TP + FP + FN) of the water class from one confusion matrix summed over all "
               "pixels of the split (pixels without S1 data ignored); mIoU = mean of the dry and water IoU")


def fmt(v, digits: int = 3) -> str:
    """``v`` with ``digits`` decimals for tables; "" for None, NaN or a non-number."""
    try:
        x = float(v)
    except (TypeError, ValueError):
        return ""
    return "" if math.isnan(x) else f"{x:.{digits}f}"


def results_table(results: pd.DataFrame) -> str:
    """Markdown table of ``results`` (one line per row, metrics to 3 decimals)."""
    head = ("| row | what | test water IoU | test mIoU | held-out event water IoU | held-out mIoU | "
            "valid water IoU (hand labels) | teacher / partner | wall s | status |")
    lines = [head, "|" + "---|" * 10]
    for _, r in results.iterrows():
        lines.append(f"| {r['row']} | {r['description']} | {fmt(r['test_water_iou'])} | {fmt(r['test_miou'])} | "
                     f"{fmt(r['bolivia_water_iou'])} | {fmt(r['bolivia_miou'])} | {fmt(r['valid_water_iou'])} | "
                     f"{r['teacher'] if isinstance(r['teacher'], str) else ''} | {fmt(r['seconds'], 1)} | "
                     f"{r['status']} |")
    return "\n".join(lines)


def verdict(results: pd.DataFrame) -> str:
    """Sentences on the student rows vs the S1-weak baseline (what came out, not a claim).

    The best student is chosen by its *validation* water IoU (hand labels), never by test; its test
    and held-out numbers are reported after the choice.
    """
    done = results[results["status"] == "done"]
    weak = done[done["row"] == "s1_weak"]
    students = done[done["row"].str.startswith("student")]
    if weak.empty or students.empty:
        return "The student / S1-weak comparison needs both rows finished."
    w, wb = float(weak["test_water_iou"].iloc[0]), float(weak["bolivia_water_iou"].iloc[0])
    beat = students[students["test_water_iou"].astype(float) > w]
    best = students.loc[students["valid_water_iou"].astype(float).idxmax()]
    t, b = float(best["test_water_iou"]), float(best["bolivia_water_iou"])
    return (f"{len(beat)} of {len(students)} student rows beat the S1-weak baseline on test water IoU. "
            f"The student chosen on validation, {best['row']} (valid {float(best['valid_water_iou']):.3f}), "
            f"scores test {t:.3f} ({t - w:+.3f} vs s1_weak {w:.3f}) and held-out event {b:.3f} "
            f"({b - wb:+.3f} vs {wb:.3f}).")


def write_markdown(path: Path, results: pd.DataFrame, *, header: dict, real=None) -> str:
    """Write ``results.md``; returns the text (also used for the README block)."""
    text = render(results, header=header, real=real)
    atomic_write_text(path, text)
    return text


def render(results: pd.DataFrame, *, header: dict, real=None) -> str:
    """Markdown of the experiment; ``real``: a :class:`floodnb.experiment.real.TransferReport` or None."""
    lines = ["## floodnb experiment: cross-modal distillation vs baselines (simulated data)", ""]
    lines += [f"- **{k}**: {v}" for k, v in header.items()]
    lines += ["", results_table(results), "", verdict(results), ""]
    if real is not None and len(real.summary):
        lines += ["### Sim-to-real: the same models on real Sen1Floods11 chips (report, not a test threshold)", "",
                  "Every Sentinel-1 row above, trained only on simulated data, scored on real hand-labelled chips "
                  "beside the thresholds measured in the same run.", "", real.to_markdown()]
    return "\n".join(lines)


def write_figure(path: Path, results: pd.DataFrame, *, title: str) -> None:
    """Bar chart ``results.png``: test and held-out water IoU per finished row."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    done = results[results["status"] == "done"]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.55 * len(done) + 2), 4.2))
    x = np.arange(len(done))
    ax.bar(x - 0.2, done["test_water_iou"].astype(float), 0.4, label="test", color="#1f77b4")
    ax.bar(x + 0.2, done["bolivia_water_iou"].astype(float), 0.4, label="held-out event", color="#ff7f0e")
    weak = done[done["row"] == "s1_weak"]
    if len(weak):
        ax.axhline(float(weak["test_water_iou"].iloc[0]), color="k", lw=0.8, ls="--", label="s1_weak (test)")
    ax.set_xticks(x, done["row"], rotation=60, ha="right", fontsize=8)
    ax.set_ylabel("water IoU vs true mask")
    ax.set_ylim(0, 1)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def replace_readme_block(readme: str | Path, block: str) -> Path:
    """Replace the text between the experiment markers of ``readme`` by ``block`` (atomic write)."""
    path = Path(readme)
    if not path.is_file():
        raise FileNotFoundError(f"--readme {path}: no such file")
    text = path.read_text(encoding="utf-8")
    n_start, n_end = text.count(START_MARKER), text.count(END_MARKER)
    if n_start != 1 or n_end != 1:
        raise ValueError(f"{path}: expected exactly one '{START_MARKER}' and one '{END_MARKER}' marker, found "
                         f"{n_start} and {n_end}; add them where the experiment table should go")
    i, j = text.index(START_MARKER) + len(START_MARKER), text.index(END_MARKER)
    if j < i:
        raise ValueError(f"{path}: '{END_MARKER}' comes before '{START_MARKER}'")
    new = text[:i] + "\n" + block.strip("\n") + "\n" + text[j:]
    if new != text:
        atomic_write_text(path, new)
    return path
