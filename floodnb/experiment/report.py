"""Outputs of the experiment: ``results.md`` (seed table, paired comparisons, headline), ``results.png``, README block.

The headline (:func:`verdict`) is generated from choices made on validation only; every
sentence names the row(s) it is about and the number of seeds behind it.

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
               "pixels of the split's common mask (the same pixels for every row); mIoU = mean of the dry and water "
               "IoU")


def fmt(v, digits: int = 3) -> str:
    """``v`` with ``digits`` decimals for tables; "" for None, NaN or a non-number."""
    try:
        x = float(v)
    except (TypeError, ValueError):
        return ""
    return "" if math.isnan(x) else f"{x:.{digits}f}"


def pm(mean, std, n: int | None = None, digits: int = 3) -> str:
    """``"0.512 ± 0.010"`` (std left out when NaN, e.g. one seed); ``n`` appended as ``(n=3)`` when given."""
    m = fmt(mean, digits)
    if not m:
        return ""
    sd = fmt(std, digits)
    return (f"{m} ± {sd}" if sd else m) + (f" (n={n})" if n is not None else "")


def results_table(summary: pd.DataFrame) -> str:
    """Markdown table of the per-row seed summary (:func:`floodnb.experiment.summary.seed_summary`)."""
    head = ("| row | what | n seeds | test water IoU mean ± std | test per seed | held-out water IoU mean ± std | "
            "held-out per seed | test mIoU mean ± std | valid water IoU (hand labels) mean ± std | "
            "teacher / partner | wall s (all seeds) | status |")
    lines = [head, "|" + "---|" * 12]
    for _, r in summary.iterrows():
        lines.append(f"| {r['row']} | {r['description']} | {int(r['n'])} | "
                     f"{pm(r['test_water_iou_mean'], r['test_water_iou_std'])} | {r['test_water_iou_seeds']} | "
                     f"{pm(r['bolivia_water_iou_mean'], r['bolivia_water_iou_std'])} | "
                     f"{r['bolivia_water_iou_seeds']} | "
                     f"{pm(r['test_miou_mean'], r['test_miou_std'])} | "
                     f"{pm(r['valid_water_iou_mean'], r['valid_water_iou_std'])} | "
                     f"{r['teacher'] if isinstance(r['teacher'], str) else ''} | {fmt(r['seconds'], 1)} | "
                     f"{r['status']} |")
    return "\n".join(lines)


def comparisons_table(comp: pd.DataFrame) -> str:
    """Markdown table of the paired comparisons (:func:`floodnb.experiment.summary.comparisons`)."""
    if comp.empty:
        return "No paired comparison (no student and baseline finished for a common seed)."
    b = comp.iloc[0]
    lines = [f"Paired comparisons, water IoU difference (student − baseline) on the same pixels: per seed, the mean "
             f"over seeds, and a paired bootstrap over the split's chips (chips resampled with replacement, the same "
             f"draw for both rows and every seed; water IoU recomputed from the summed per-chip confusion counts; "
             f"95 % percentile interval of B = {int(b['n_boot'])} draws, bootstrap seed {int(b['boot_seed'])}).", "",
             "| student | vs | split | n seeds | per-seed difference | mean difference | bootstrap 95 % interval "
             "(chips) |", "|---|---|---|---|---|---|---|"]
    for _, r in comp.iterrows():
        lines.append(f"| {r['row']} | {r['baseline']} | {_split_name(r['split'])} | {int(r['n'])} | "
                     f"{r['per_seed_diff']} | {float(r['mean_diff']):+.3f} | "
                     f"[{float(r['boot_lo']):+.3f}, {float(r['boot_hi']):+.3f}] ({int(r['chips'])}) |")
    return "\n".join(lines)


def _split_name(split: str) -> str:
    return "held-out event" if split == "bolivia" else split


def _vs(comp: pd.DataFrame, summary: pd.DataFrame, row: str, base: str, split: str) -> str:
    """``"+0.064 vs s1_weak 0.511 ± 0.004 (n=3; per seed +0.06 +0.07 +0.06; bootstrap [+0.04, +0.09])"``."""
    c = comp[(comp["row"] == row) & (comp["baseline"] == base) & (comp["split"] == split)]
    b = summary[summary["row"] == base]
    if c.empty or b.empty:
        return f"no comparison with {base} (not finished)"
    c, b = c.iloc[0], b.iloc[0]
    return (f"{float(c['mean_diff']):+.3f} vs {base} {pm(b[f'{split}_water_iou_mean'], b[f'{split}_water_iou_std'])} "
            f"(n={int(c['n'])}; per seed {c['per_seed_diff']}; bootstrap 95 % [{float(c['boot_lo']):+.3f}, "
            f"{float(c['boot_hi']):+.3f}] over {int(c['chips'])} chips)")


def verdict(summary: pd.DataFrame, comp: pd.DataFrame) -> str:
    """Headline sentences: the choices made on validation (teacher, best student), then their test numbers.

    The teacher and the best student are chosen by *mean validation* water IoU over the seeds
    (hand labels; :func:`floodnb.experiment.summary.headline`), never by test; test and held-out
    numbers come after the choice. Every sentence names its row(s) and seed count.
    """
    from floodnb.experiment.summary import BASELINES, headline, is_student

    h = headline(summary)
    out = []
    t = h["teacher"]
    if t is not None:
        others = summary[summary["row"].isin(("teacher_s2", "teacher_s2s1")) & (summary["row"] != t["row"])]
        alt = "; ".join(f"{o['row']} {pm(o['valid_water_iou_mean'], o['valid_water_iou_std'], int(o['n']))}"
                        for _, o in others.iterrows())
        out.append(f"Teacher chosen on validation: {t['row']} (mean validation water IoU "
                   f"{pm(t['valid_water_iou_mean'], t['valid_water_iou_std'], int(t['n']))}"
                   + (f"; {alt}" if alt else "") + ").")
    s = h["student"]
    if s is None:
        return _bullets(out + ["No student row finished: no student was chosen."])
    n_st = int(summary["row"].map(is_student).sum())
    out.append(f"Student chosen on validation: {s['row']} (mean validation water IoU "
               f"{pm(s['valid_water_iou_mean'], s['valid_water_iou_std'], int(s['n']))}, the best of {n_st} student "
               f"rows; teacher {s['teacher'] or 'n/a'}).")
    for split in EVAL_SPLITS_REPORTED:
        parts = "; ".join(_vs(comp, summary, s["row"], base, split) for base in BASELINES)
        out.append(f"Then, on {_split_name(split)}: {s['row']} scores water IoU "
                   f"{pm(s[f'{split}_water_iou_mean'], s[f'{split}_water_iou_std'], int(s['n']))}; {parts}.")
    out += [_count_sentence(comp, base) for base in BASELINES if (comp["baseline"] == base).any()]
    return _bullets(out)


def _bullets(sentences: list[str]) -> str:
    return "\n".join(f"- {x}" for x in sentences)


EVAL_SPLITS_REPORTED: tuple[str, ...] = ("test", "bolivia")


def _count_sentence(comp: pd.DataFrame, base: str) -> str:
    c = comp[(comp["baseline"] == base) & (comp["split"] == "test")]
    up = c[c["mean_diff"].astype(float) > 0]
    sure = c[c["boot_lo"].astype(float) > 0]
    worse = c[c["boot_hi"].astype(float) < 0]
    n = sorted(set(int(v) for v in c["n"]))
    return (f"Reported, not used for any choice — on test, {len(up)} of {len(c)} student rows have a higher mean water "
            f"IoU than {base} (n={'/'.join(map(str, n))} seeds); {len(sure)} with the whole bootstrap interval above 0"
            f"{' (' + ', '.join(sure['row']) + ')' if len(sure) else ''}, {len(worse)} with it below 0"
            f"{' (' + ', '.join(worse['row']) + ')' if len(worse) else ''}.")


def write_markdown(path: Path, summary: pd.DataFrame, comp: pd.DataFrame, *, header: dict,
                   real_md: str | None = None) -> str:
    """Write ``results.md``; returns the text (also used for the README block)."""
    text = render(summary, comp, header=header, real_md=real_md)
    atomic_write_text(path, text)
    return text


def render(summary: pd.DataFrame, comp: pd.DataFrame, *, header: dict, real_md: str | None = None) -> str:
    """Markdown of the experiment; ``real_md``: the sim-to-real section
    (:func:`floodnb.experiment.real.seed_markdown`) or None.
    """
    lines = ["## floodnb experiment: cross-modal distillation vs baselines (simulated data)", ""]
    lines += [f"- **{k}**: {v}" for k, v in header.items()]
    lines += ["", "### Headline (choices made on validation; test numbers after them)", "", verdict(summary, comp), "",
              "### Every row, every seed", "",
              "Every row below is scored on one pixel set per split (both S1 bands finite and a reference label; "
              "see **pixels**).", "", results_table(summary), "", comparisons_table(comp), ""]
    if real_md:
        lines += ["### Sim-to-real: the same models on real Sen1Floods11 chips (report, not a test threshold)", "",
                  "Every Sentinel-1 row above and every seed, trained only on simulated data, scored on real "
                  "hand-labelled chips beside the thresholds measured in the same run.", "", real_md]
    return "\n".join(lines)


def write_figure(path: Path, table: pd.DataFrame, *, title: str) -> None:
    """``results.png``: mean ± sample std bars of test and held-out water IoU per row, one point per seed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    done = table[table["status"] == "done"]
    names = list(dict.fromkeys(done["row"]))
    fig, ax = plt.subplots(figsize=(max(6.0, 0.55 * len(names) + 2), 4.4))
    x = np.arange(len(names))
    for off, split, colour, label in ((-0.2, "test", "#1f77b4", "test"),
                                      (0.2, "bolivia", "#ff7f0e", "held-out event")):
        vals = [done[done["row"] == r][f"{split}_water_iou"].astype(float).to_numpy() for r in names]
        means = [v.mean() for v in vals]
        stds = [v.std(ddof=1) if len(v) > 1 else 0.0 for v in vals]
        ax.bar(x + off, means, 0.4, yerr=stds, capsize=2, label=f"{label} (mean ± std)", color=colour, alpha=0.8)
        for xi, v in zip(x, vals, strict=True):
            ax.scatter(np.full(len(v), xi + off), v, s=8, color="k", zorder=3)
    weak = done[done["row"] == "s1_weak"]
    if len(weak):
        ax.axhline(float(weak["test_water_iou"].astype(float).mean()), color="k", lw=0.8, ls="--",
                   label="s1_weak test mean")
    ax.scatter([], [], s=8, color="k", label="one seed")
    ax.set_xticks(x, names, rotation=60, ha="right", fontsize=8)
    ax.set_ylabel("water IoU vs true mask (common pixel set)")
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
