"""Sim-to-real transfer: models trained on simulated data, scored on real hand-labelled Sen1Floods11 chips.

A model that learned radar only from floodnb's simulator is worth using on real Sentinel-1 only if it
beats what a hydrologist would use instead: a threshold on VH backscatter. :func:`transfer_report`
scores, on the same real chips and the same pixels, in one run:

* ``otsu_chip`` — Otsu's threshold on each chip's VH histogram;
* ``otsu_event`` — the event's threshold from ``Sen1Floods11_Metadata.geojson`` (``VH_thresh``, the
  threshold of the Sen1Floods11 weak labels; Bonafilia et al., CVPR Workshops 2020);
* ``vh<-T>dB`` — fixed VH thresholds (default −20 … −26 dB). The best of them is an *oracle*: it is
  chosen on the very chips it is scored on, so it is an upper bound of what one fixed threshold can do;
* each given Sentinel-1 checkpoint, read with its own normalisers (inference only).

Reference = the chips' hand labels (``LabelHand``, −1 ignored). **One pixel set for every method**:
pixels where both S1 bands are finite and the hand label is 0 or 1. Chips that contribute no such
pixel (S1 entirely no-data, label entirely −1, no overlap) or lack S1Hand/LabelHand are not counted;
they are named in :attr:`TransferReport.excluded` with the reason. Water IoU = TP/(TP+FP+FN) of the
water class from one confusion matrix summed over all counted chips (per split as well, when the
chips carry several splits); mIoU = mean of dry and water IoU of the same matrix; per-chip rows too.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from floodnb.experiment.report import fmt
from floodnb.io_utils import atomic_path, atomic_write_text

#: Fixed VH thresholds (dB) scored beside the models (the range real event thresholds span).
FIXED_THRESHOLDS_DB: tuple[float, ...] = (-20.0, -21.0, -22.0, -23.0, -24.0, -25.0, -26.0)
COLUMNS: tuple[str, ...] = ("method", "kind", "split", "chips", "water_iou", "miou", "water_precision",
                            "water_recall", "mean_chip_water_iou", "valid_pixels")
METRIC_NOTE = ("water IoU = TP/(TP+FP+FN) of the water class from one confusion matrix over all counted chips; "
               "mIoU = mean of dry and water IoU; pixels counted: both S1 bands finite and hand label 0/1 "
               "(the same pixels for every method)")


def seed_method(row: str, seed: int) -> str:
    """Method name of one experiment row's model trained with ``seed``, e.g. ``student_soft@seed1``."""
    return f"{row}@seed{int(seed)}"


def split_seed_method(method: str) -> tuple[str, int | None]:
    """``"student_soft@seed1"`` -> ``("student_soft", 1)``; a name without ``@seed`` -> ``(name, None)``."""
    name, sep, seed = str(method).rpartition("@seed")
    return (name, int(seed)) if sep and seed.isdigit() else (str(method), None)


def fixed_method(threshold_db: float) -> str:
    """Method name of a fixed VH threshold, e.g. ``vh<-24dB``."""
    return f"vh<{threshold_db:g}dB"


@dataclass(frozen=True)
class TransferReport:
    """Result of :func:`transfer_report`.

    ``summary``: one row per method and split (:data:`COLUMNS`; ``kind`` is ``threshold``,
    ``fixed threshold`` or ``model``); ``per_chip``: chip_id, split, event, method, water_iou and
    pixel counts of every counted chip; ``excluded``: chip_id and reason of each chip not counted;
    ``thresholds``: per event, the metadata threshold used by ``otsu_event`` and its source.
    """

    summary: pd.DataFrame
    per_chip: pd.DataFrame
    excluded: pd.DataFrame
    thresholds: pd.DataFrame
    root: str

    def overall(self) -> pd.DataFrame:
        """The ``split == "all"`` rows, best water IoU first."""
        return self.summary[self.summary["split"] == "all"].sort_values("water_iou", ascending=False)

    def counted(self) -> list[str]:
        """The chip ids counted (each has at least one valid pixel), sorted."""
        return sorted(str(c) for c in self.per_chip["chip_id"].unique()) if len(self.per_chip) else []

    def best_fixed(self) -> pd.Series | None:
        """The oracle fixed threshold (best water IoU over all counted chips), or None if none was scored."""
        fixed = self.overall()
        fixed = fixed[fixed["kind"] == "fixed threshold"]
        return None if fixed.empty else fixed.iloc[0]

    def verdicts(self) -> list[str]:
        """One sentence per model: its water IoU against the event threshold and the oracle fixed threshold."""
        allr = self.overall().set_index("method")
        out = []
        event = float(allr.loc["otsu_event", "water_iou"]) if "otsu_event" in allr.index else float("nan")
        best = self.best_fixed()
        for name, r in allr[allr["kind"] == "model"].iterrows():
            iou = float(r["water_iou"])
            parts = [f"{name}: water IoU {iou:.3f}"]
            if np.isfinite(event):
                parts.append(f"{iou - event:+.3f} vs the metadata event threshold ({event:.3f})")
            if best is not None:
                parts.append(f"{iou - float(best['water_iou']):+.3f} vs the oracle fixed threshold "
                             f"{best['method']} ({float(best['water_iou']):.3f})")
            out.append("; ".join(parts) + ".")
        return out

    def to_markdown(self, *, per_chip: bool = True) -> str:
        """Markdown: the summary table, verdicts, excluded chips and (optionally) per-chip water IoU."""
        n = int(self.overall()["chips"].max()) if len(self.summary) else 0
        lines = [f"Real chips: `{Path(self.root).name}`, {n} chips with valid pixels ({', '.join(self.counted())}); "
                 "reference = hand labels. " + METRIC_NOTE + ".", "",
                 "| method | kind | split | chips | water IoU | mIoU | water precision | water recall | "
                 "mean per-chip water IoU |", "|---|---|---|---|---|---|---|---|---|"]
        for _, r in self.summary.iterrows():
            lines.append(f"| {r['method']} | {r['kind']} | {r['split']} | {int(r['chips'])} | {fmt(r['water_iou'])} | "
                         f"{fmt(r['miou'])} | {fmt(r['water_precision'])} | {fmt(r['water_recall'])} | "
                         f"{fmt(r['mean_chip_water_iou'])} |")
        lines.append("")
        lines += _oracle_lines(self)[1:]
        lines += [f"- {v}" for v in self.verdicts()]
        lines += _excluded_threshold_lines(self)
        if per_chip and len(self.per_chip):
            wide = self.per_chip.pivot_table(index="chip_id", columns="method", values="water_iou", aggfunc="first")
            cols = list(dict.fromkeys(self.overall()["method"]))
            wide = wide[[c for c in cols if c in wide.columns]]
            lines += ["", "Per chip, water IoU (empty: no water in reference and prediction):", "",
                      "| chip | " + " | ".join(wide.columns) + " |", "|---|" + "---|" * len(wide.columns)]
            for cid, r in wide.iterrows():
                lines.append(f"| {cid} | " + " | ".join(fmt(v) for v in r.values) + " |")
        return "\n".join(lines) + "\n"

    def write(self, out_dir: str | Path, *, prefix: str = "transfer") -> dict[str, Path]:
        """Write ``<prefix>.csv``, ``_per_chip.csv``, ``_excluded.csv``, ``.md`` and ``.png`` (atomic)."""
        out = Path(out_dir)
        if out.exists() and not out.is_dir():
            raise NotADirectoryError(f"--out-dir {out} is a file; expected a folder for the transfer report")
        out.mkdir(parents=True, exist_ok=True)
        paths = {"summary": out / f"{prefix}.csv", "per_chip": out / f"{prefix}_per_chip.csv",
                 "excluded": out / f"{prefix}_excluded.csv", "markdown": out / f"{prefix}.md",
                 "figure": out / f"{prefix}.png"}
        for key in ("summary", "per_chip", "excluded"):
            with atomic_path(paths[key]) as tmp:
                getattr(self, key).to_csv(tmp, index=False)
        atomic_write_text(paths["markdown"], "# Sim-to-real transfer\n\n" + self.to_markdown())
        write_figure(paths["figure"], self)
        return paths


def seed_table(report: TransferReport, split: str = "all") -> pd.DataFrame:
    """Models named ``row@seedN`` grouped by row: ``n``, per-seed water IoU, mean and sample std (one line per
    method; thresholds keep their single value with n = 1). Columns: method, kind, n, seeds, water_iou_seeds,
    water_iou_mean, water_iou_std, miou_mean, miou_std, chips.
    """
    from floodnb.experiment.stats import mean_std

    rows = report.summary[report.summary["split"] == split].copy()
    rows["base"] = [split_seed_method(m)[0] for m in rows["method"]]
    rows["seed"] = [split_seed_method(m)[1] for m in rows["method"]]
    out = []
    for base, g in rows.groupby("base", sort=False):
        g = g.sort_values("seed", na_position="first")
        wm, ws, n = mean_std(g["water_iou"].astype(float))
        mm, ms, _ = mean_std(g["miou"].astype(float))
        out.append({"method": base, "kind": g["kind"].iloc[0], "n": n,
                    "seeds": " ".join(str(int(x)) for x in g["seed"].dropna()),
                    "water_iou_seeds": " ".join(fmt(v) for v in g["water_iou"]), "water_iou_mean": wm,
                    "water_iou_std": ws, "miou_mean": mm, "miou_std": ms, "chips": int(g["chips"].max())})
    return pd.DataFrame(out).sort_values("water_iou_mean", ascending=False, ignore_index=True)


def seed_markdown(report: TransferReport) -> str:
    """Markdown of a transfer report whose models are ``row@seedN``: mean ± std over seeds per row, the chips
    counted and not counted (named), and per-chip water IoU (mean over seeds for models).
    """
    from floodnb.experiment.report import pm

    tab = seed_table(report)
    counted = report.counted()
    lines = [f"Real chips: `{Path(report.root).name}`, {len(counted)} chips with valid pixels counted "
             f"({', '.join(counted)}); reference = hand labels. " + METRIC_NOTE + ".", "",
             "| method | kind | n seeds | water IoU mean ± std | per seed | mIoU mean ± std | chips |",
             "|---|---|---|---|---|---|---|"]
    for _, r in tab.iterrows():
        lines.append(f"| {r['method']} | {r['kind']} | {int(r['n'])} | {pm(r['water_iou_mean'], r['water_iou_std'])} "
                     f"| {r['water_iou_seeds']} | {pm(r['miou_mean'], r['miou_std'])} | {int(r['chips'])} |")
    lines += _oracle_lines(report) + _excluded_threshold_lines(report)
    pc = report.per_chip.assign(method=[split_seed_method(m)[0] for m in report.per_chip["method"]])
    wide = pc.pivot_table(index="chip_id", columns="method", values="water_iou", aggfunc="mean")
    wide = wide[[c for c in tab["method"] if c in wide.columns]]
    lines += ["", f"Per chip ({len(wide)} counted chips), water IoU (models: mean over seeds; empty: no water in "
                  "reference and prediction):", "",
              "| chip | " + " | ".join(wide.columns) + " |", "|---|" + "---|" * len(wide.columns)]
    lines += [f"| {cid} | " + " | ".join(fmt(v) for v in r.values) + " |" for cid, r in wide.iterrows()]
    return "\n".join(lines) + "\n"


def _valid_chips(chips: pd.DataFrame, *, progress: bool) -> tuple[pd.DataFrame, list[dict]]:
    """Split candidate chips into those with at least one valid pixel and the others (with the reason)."""
    from tqdm.auto import tqdm

    from floodnb.data.io import EmptyChipWarning, read_arrays

    keep, excluded = [], []
    for i, row in tqdm(list(chips.iterrows()), desc="real chips", disable=not progress, leave=False):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", EmptyChipWarning)
            arrays, _ = read_arrays(row, roles=("s1", "label"))
        s1 = np.asarray(arrays["s1"], dtype=np.float32)
        label = np.asarray(arrays["label"])
        has_s1 = np.isfinite(s1).all(axis=0)
        has_label = (label == 0) | (label == 1)
        if not has_s1.any():
            reason = "S1 entirely no-data"
        elif not has_label.any():
            reason = "label entirely no-data (-1)"
        elif not (has_s1 & has_label).any():
            reason = "no pixel with both S1 and a label"
        else:
            keep.append(i)
            continue
        excluded.append({"chip_id": str(row["chip_id"]), "reason": reason})
    return chips.loc[keep].reset_index(drop=True), excluded


def _row(method: str, kind: str, split: str, m: Mapping) -> dict:
    return {"method": method, "kind": kind, "split": split, "chips": int(m["chips"]) if "chips" in m else 0,
            "water_iou": m["water_iou"], "miou": m["miou"], "water_precision": m["water_precision"],
            "water_recall": m["water_recall"],
            "mean_chip_water_iou": m["mean_chip_water_iou"] if "mean_chip_water_iou" in m else float("nan"),
            "valid_pixels": int(m["valid_pixels"])}


def _event_thresholds(metrics: Mapping) -> pd.DataFrame:
    """Per event: the VH threshold ``otsu_event`` used and its source (from its metrics)."""
    from floodnb.distill.baselines import THRESHOLD_SOURCES

    rows = [{"event": str(ev), "vh_threshold_db": float(t["vh_threshold_db"]),
             "source": THRESHOLD_SOURCES[t["source"]] if t["source"] in THRESHOLD_SOURCES else str(t["source"])}
            for ev, t in sorted(metrics["event_thresholds"].items())]
    return pd.DataFrame(rows, columns=["event", "vh_threshold_db", "source"])


def transfer_report(real_root: str | Path, *, checkpoints: Mapping[str, str | Path] | None = None,
                    fixed_thresholds: Sequence[float] = FIXED_THRESHOLDS_DB, batch_size: int = 2,
                    progress: bool = False) -> TransferReport:
    """Score thresholds and S1 ``checkpoints`` (name -> path) on the hand-labelled chips of ``real_root``.

    ``real_root``: a Sen1Floods11 root in any layout :func:`floodnb.data.catalog.build_catalog`
    reads. Checkpoints must be Sentinel-1 models (inputs ``("s1",)``); each is read with the
    normalisers its spec records. See the module docstring for the pixel set and metrics.
    """
    from floodnb.data.catalog import build_catalog
    from floodnb.distill.baselines import otsu_baseline

    root = Path(real_root)
    if not root.is_dir():
        raise FileNotFoundError(f"real root {root} is not a folder (expected a Sen1Floods11 layout)")
    checkpoints = dict(checkpoints or {})
    reserved = {"otsu_chip", "otsu_event", *(fixed_method(t) for t in fixed_thresholds)}
    clash = sorted(set(checkpoints) & reserved)
    if clash:
        raise ValueError(f"checkpoint names {clash} clash with threshold methods; choose other names")
    specs = {name: _s1_spec(name, path) for name, path in checkpoints.items()}
    cat = build_catalog(root)
    have = cat["s1_path"].notna() & cat["label_path"].notna()
    excluded = [{"chip_id": str(r.chip_id), "reason": "no S1Hand" if pd.isna(r.s1_path) else "no LabelHand"}
                for r in cat[~have].itertuples()]
    chips, empty = _valid_chips(cat[have].reset_index(drop=True), progress=progress)
    excluded += empty
    if chips.empty:
        raise ValueError(f"{root}: no chip has S1Hand and LabelHand with a valid pixel in common; nothing to score "
                         f"(not counted: {excluded})")
    groups = {"all": chips}
    by_split = {str(s): g for s, g in chips.groupby("split") if len(g)} if "split" in chips.columns else {}
    if len(by_split) > 1:
        groups.update(by_split)
    methods: list[tuple[str, str, dict]] = [("otsu_chip", "threshold", {"mode": "chip"}),
                                            ("otsu_event", "threshold", {"mode": "event"})]
    methods += [(fixed_method(t), "fixed threshold", {"mode": "fixed", "threshold": float(t)})
                for t in fixed_thresholds]
    rows, tables = [], []
    for name, kind, kw in methods:
        for split, g in groups.items():
            m, t = otsu_baseline(g, reference="label", split=split, **kw)
            rows.append(_row(name, kind, split, m))
            if split == "all":
                tables.append(t.assign(method=name))
                if name == "otsu_event":
                    thresholds = _event_thresholds(m)
    for name, path in checkpoints.items():
        for split, g in groups.items():
            m, t = _score_model(path, specs[name], g, split=split, batch_size=batch_size, progress=progress)
            rows.append(_row(name, "model", split, m))
            if split == "all":
                tables.append(t.assign(method=name))
    per_chip = pd.concat(tables, ignore_index=True)
    info = chips.set_index("chip_id")
    per_chip["event"] = per_chip["chip_id"].map(info["event"]) if "event" in info.columns else ""
    if "split" in info.columns:
        per_chip["split"] = per_chip["chip_id"].map(info["split"])
    return TransferReport(summary=pd.DataFrame(rows, columns=list(COLUMNS)), per_chip=per_chip,
                          excluded=pd.DataFrame(excluded, columns=["chip_id", "reason"]),
                          thresholds=thresholds, root=str(root))


def _s1_spec(name: str, path: str | Path):
    from floodnb.models import read_spec

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"checkpoint {name}={p}: no such file (expected a .safetensors checkpoint)")
    spec = read_spec(p)
    if tuple(spec.inputs) != ("s1",):
        raise ValueError(f"checkpoint {name}={p}: the transfer report scores Sentinel-1 models; "
                         f"this one takes inputs {tuple(spec.inputs)}")
    return spec


def _score_model(path, spec, chips: pd.DataFrame, *, split: str, batch_size: int, progress: bool):
    from floodnb.distill.datasets import model_dataset
    from floodnb.distill.evaluate import evaluate_model, plan_from_spec
    from floodnb.models import load_checkpoint

    model, spec = load_checkpoint(path)
    ds = model_dataset(chips, spec, target="label", weak_role=None)
    return evaluate_model(model, ds, plan_from_spec(spec), batch_size=batch_size, progress=progress, split=split)


def write_figure(path: str | Path, report: TransferReport) -> None:
    """Horizontal bars: water IoU over all counted chips per method (models blue, thresholds grey/orange)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    allr = report.overall().iloc[::-1]
    colours = {"model": "#1f77b4", "threshold": "#ff7f0e", "fixed threshold": "#9e9e9e"}
    fig, ax = plt.subplots(figsize=(7.0, 0.32 * len(allr) + 1.4))
    y = np.arange(len(allr))
    ax.barh(y, allr["water_iou"].astype(float), color=[colours[k] for k in allr["kind"]])
    for yi, v in zip(y, allr["water_iou"].astype(float), strict=True):
        ax.text(v + 0.01 if np.isfinite(v) else 0.01, float(yi), fmt(v), va="center", fontsize=8)
    ax.set_yticks(y, allr["method"], fontsize=8)
    ax.set_xlim(0, 1)
    ax.set_xlabel("water IoU vs hand labels (global confusion matrix)")
    n = int(allr["chips"].max()) if len(allr) else 0
    ax.set_title(f"Sim-to-real: {Path(report.root).name}, {n} chips with valid pixels", fontsize=9)
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in colours.values()]
    ax.legend(handles, list(colours), fontsize=8, loc="lower right")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def _oracle_lines(report: TransferReport) -> list[str]:
    """``["", "Oracle fixed threshold ...: <method>."]`` (empty when no fixed threshold was scored)."""
    best = report.best_fixed()
    if best is None:
        return []
    return ["", f"Oracle fixed threshold (chosen on these chips, an upper bound for one fixed threshold): "
                f"{best['method']}."]


def _excluded_threshold_lines(report: TransferReport) -> list[str]:
    """Markdown lines naming the chips not counted (with the reason) and the event thresholds used."""
    lines: list[str] = []
    if len(report.excluded):
        lines += ["", "Not counted (no valid pixel): " + "; ".join(
            f"{r.chip_id} ({r.reason})" for r in report.excluded.itertuples()) + "."]
    if len(report.thresholds):
        lines += ["", "Event thresholds used by otsu_event: " + "; ".join(
            f"{r.event} {fmt(r.vh_threshold_db, 2)} dB ({r.source})" for r in report.thresholds.itertuples()) + "."]
    return lines
