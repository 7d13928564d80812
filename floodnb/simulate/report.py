"""Realism report: simulated vs real Sen1Floods11 statistics, and weak-label error per event.

What it measures (all water IoU figures are *global*: one confusion matrix summed over chips,
valid pixels only — the metric of :mod:`floodnb.metrics`):

* the realism table (:mod:`floodnb.simulate.stats`): texture, coupling and looks of VV/VH,
  the noise floor, the VV - VH ratio per class, the shape of water bodies and the share of chips
  with little water, real vs simulated side by side with a tolerance, pass/fail and whether the
  simulator was fitted to that statistic (``realism_table.{csv,png}`` and the markdown);
* class-conditional Sentinel-1 statistics, VV and VH (dB), water vs dry, split by the hand label
  (``LabelHand``) exactly as one can on the real chips: pooled mean/std/percentiles, the range
  of per-chip means and stds, and histograms;
* Sentinel-2 band means per class (simulated: per true surface class and per hand-label class;
  real: per hand-label class);
* weak-label quality: water IoU of the S1 Otsu label (the written event-threshold layer and a
  per-chip Otsu recomputed with :func:`floodnb.labels.weak.otsu_label`) and of the S2 index label
  against the simulated truth, per event; on the real chips, per-chip and event-threshold Otsu
  against the hand labels (the only reference there is).

:func:`realism_report` writes ``realism_report.png``, ``realism_report.md`` and CSV tables to
``out_dir`` and returns a :class:`RealismReport`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import rasterio

from floodnb.bands import S1_BANDS, S2_BANDS, S2_SCALE, SIM_CLASSES
from floodnb.chip_ids import chip_event
from floodnb.data import layout
from floodnb.io_utils import atomic_path, atomic_write_text
from floodnb.labels.weak import otsu_label
from floodnb.simulate.stats import RealismStats, realism_table

BINS = np.arange(-45.0, 10.5, 0.5)
#: Ranges (dB) that simulated class-conditional S1 statistics (pooled over chips, by label) must
#: fall in: (band, class) -> ((mean_lo, mean_hi), (std_lo, std_hi)). Measured on the real
#: Sen1Floods11 chips in ../shared (7 chips with S1; pooled VV water -18.1 +- 5.0, dry -9.9 +-
#: 3.0; VH water -26.8 +- 6.3, dry -16.6 +- 2.9; per-chip means VV water -20.2..-12.1, dry
#: -11.3..-8.3, VH water -30.1..-19.4, dry -17.0..-14.3) and widened by about 1.5 dB.
S1_CLASS_RANGES: dict[tuple[str, str], tuple[tuple[float, float], tuple[float, float]]] = {
    ("VV", "water"): ((-21.0, -15.0), (3.0, 8.0)),
    ("VV", "dry"): ((-12.0, -8.0), (2.0, 4.5)),
    ("VH", "water"): ((-30.0, -23.0), (3.5, 8.0)),
    ("VH", "dry"): ((-18.5, -14.5), (2.0, 4.5)),
}
#: chip prefixes of the real dataset whose metadata ``location`` differs.
REAL_EVENT_ALIASES: dict[str, str] = {"Mekong": "Cambodia"}


@dataclass(frozen=True)
class RealismReport:
    """``tables``: name -> DataFrame (s1_stats, s2_means, weak_labels); ``summary``: headline
    figures; ``paths``: name -> written file.
    """

    tables: dict
    summary: dict
    paths: dict


class _Acc:
    """Streaming class-conditional statistics of S1 (per band and class) and confusion counts."""

    def __init__(self) -> None:
        self.hist = {(b, c): np.zeros(len(BINS) - 1, np.int64) for b in S1_BANDS for c in ("water", "dry")}
        self.samples: dict[tuple[str, str], list[np.ndarray]] = {(b, c): [] for b in S1_BANDS for c in ("water", "dry")}
        self.chip_stats: list[tuple[str, str, float, float]] = []
        self.s2: dict[tuple[str, str], list] = {}
        self.conf: dict[tuple, np.ndarray] = {}
        self.realism = RealismStats()

    def add_s1(self, s1: np.ndarray, label: np.ndarray) -> None:
        self.realism.add(s1, label)
        ok = np.isfinite(s1).all(axis=0) & (label >= 0)
        for i, b in enumerate(S1_BANDS):
            for c, v in (("water", 1), ("dry", 0)):
                x = s1[i][ok & (label == v)]
                if x.size == 0:
                    continue
                self.hist[(b, c)] += np.histogram(np.clip(x, BINS[0], BINS[-1] - 1e-3), bins=BINS)[0]
                self.samples[(b, c)].append(x[:: max(1, x.size // 4000)])
                if x.size >= 100:
                    self.chip_stats.append((b, c, float(x.mean()), float(x.std())))

    def add_s2(self, key: str, s2: np.ndarray, classes: np.ndarray, names: dict[int, str]) -> None:
        for v, name in names.items():
            m = classes == v
            if m.any():
                acc = self.s2.setdefault((key, name), [np.zeros(len(S2_BANDS)), 0])
                acc[0] += s2[:, m].sum(axis=1)
                acc[1] += int(m.sum())

    def add_conf(self, key: tuple, pred: np.ndarray, ref: np.ndarray) -> None:
        m = (pred >= 0) & (ref >= 0)
        p, t = pred[m] == 1, ref[m] == 1
        c = self.conf.setdefault(key, np.zeros(3, np.int64))
        c += (np.count_nonzero(p & t), np.count_nonzero(p & ~t), np.count_nonzero(~p & t))

    def s1_table(self, source: str) -> pd.DataFrame:
        rows = []
        cs = pd.DataFrame(self.chip_stats, columns=["band", "cls", "mean", "std"])
        for (b, c), parts in self.samples.items():
            if not parts:
                continue
            x = np.concatenate(parts)
            sub = cs[(cs.band == b) & (cs.cls == c)]
            rows.append(dict(source=source, band=b, cls=c, mean_db=x.mean(), std_db=x.std(),
                             p05_db=np.percentile(x, 5), p50_db=np.percentile(x, 50), p95_db=np.percentile(x, 95),
                             chip_mean_min=sub["mean"].min(), chip_mean_max=sub["mean"].max(),
                             chip_std_min=sub["std"].min(), chip_std_max=sub["std"].max(), n_chips=len(sub)))
        return pd.DataFrame(rows)


def _iou(c: np.ndarray) -> float:
    return float(c[0] / c.sum()) if c.sum() else float("nan")


def _read(path: Path) -> np.ndarray:
    with rasterio.open(path) as ds:
        return ds.read()


def _sim_pass(root: Path, max_chips: int) -> tuple[_Acc, pd.DataFrame]:
    acc = _Acc()
    table_path = root / "floodnb_simulation_chips.csv"
    if not table_path.exists():
        raise FileNotFoundError(f"realism_report: {str(table_path)!r} not found; "
                                f"is {str(root)!r} a floodnb simulation?")
    chips = pd.read_csv(table_path)
    hand = chips[chips.group == "hand"].head(max_chips)
    for cid, ev in zip(hand.chip_id, hand.event):
        s1 = _read(layout.layer_dir(root, "S1Hand") / layout.chip_file_name(cid, "S1Hand"))
        label = _read(layout.layer_dir(root, "LabelHand") / layout.chip_file_name(cid, "LabelHand"))[0]
        truth = _read(layout.truth_dir(root, "SimTruthWater", "hand")
                      / layout.chip_file_name(cid, "SimTruthWater"))[0]
        cls = _read(layout.truth_dir(root, "SimTruthClass", "hand") / layout.chip_file_name(cid, "SimTruthClass"))[0]
        s2 = _read(layout.layer_dir(root, "S2Hand") / layout.chip_file_name(cid, "S2Hand")).astype(np.float32)
        s2 /= S2_SCALE
        acc.add_s1(s1, label)
        acc.add_s2("sim, hand label", s2, label, {1: "water", 0: "dry"})
        acc.add_s2("sim, true class", s2, cls, dict(enumerate(SIM_CLASSES)))
        acc.add_conf(("chip_otsu", ev), otsu_label(s1), truth)
        acc.add_conf(("chip_otsu_vs_hand", ev), otsu_label(s1), label)
    return acc, chips


def _real_pass(real_root: Path) -> tuple[_Acc, dict]:
    lay = layout.detect(real_root)
    acc = _Acc()
    meta = {}
    mp = layout.metadata_path(real_root, layout=lay)
    if mp.exists():
        for f in json.loads(mp.read_text())["features"]:
            meta[f["properties"]["location"]] = f["properties"]["VH_thresh"]
    s1_dir = layout.layer_dir(real_root, "S1Hand", layout=lay)
    lab_dir = layout.layer_dir(real_root, "LabelHand", layout=lay)
    s2_dir = layout.layer_dir(real_root, "S2Hand", layout=lay)
    n = 0
    for p in sorted(lab_dir.glob("*_LabelHand.tif")):
        cid = p.name[: -len("_LabelHand.tif")]
        label = _read(p)[0]
        s1p = s1_dir / layout.chip_file_name(cid, "S1Hand")
        s2p = s2_dir / layout.chip_file_name(cid, "S2Hand")
        if s1p.exists():
            s1 = _read(s1p)
            if np.isfinite(s1[1]).any():
                n += 1
                acc.add_s1(s1, label)
                acc.add_conf(("chip_otsu_vs_hand", "all"), otsu_label(s1), label)
                ev = chip_event(cid)
                thr = meta.get(REAL_EVENT_ALIASES.get(ev, ev))
                if thr is not None:
                    acc.add_conf(("event_otsu_vs_hand", "all"), otsu_label(s1, threshold=thr), label)
        if s2p.exists():
            s2 = _read(s2p).astype(np.float32) / S2_SCALE
            acc.add_s2("real, hand label", s2, label, {1: "water", 0: "dry"})
    return acc, {"n_chips_s1": n}


def realism_report(root: str | Path, *, out_dir: str | Path | None = None, real_root: str | Path | None = None,
                   max_chips: int = 200) -> RealismReport:
    """Compare a simulated dataset at ``root`` with real chips at ``real_root`` (optional).

    Reads up to ``max_chips`` simulated hand chips (S1Hand, S2Hand, LabelHand and the truth
    layers) and the per-chip weak-label counts the writer recorded for every chip; the real
    root may use any layout :func:`floodnb.data.layout.detect` knows. Writes
    ``realism_report.{png,md}``, ``realism_s1_stats.csv``, ``realism_s2_means.csv`` and
    ``realism_weak_labels.csv`` to ``out_dir`` (default ``<root>/realism``), atomically; with a
    real root also ``realism_table.{csv,png}`` (``tables["realism"]``).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    root = Path(root)
    out = Path(out_dir) if out_dir is not None else root / "realism"
    out.mkdir(parents=True, exist_ok=True)
    sim, chips = _sim_pass(root, max_chips)
    accs = {"simulated": sim}
    real_info: dict = {}
    if real_root is not None:
        accs["real"], real_info = _real_pass(Path(real_root))

    s1_tab = pd.concat([a.s1_table(k) for k, a in accs.items()], ignore_index=True)
    s2_rows = []
    for a in accs.values():
        for (key, name), (tot, cnt) in a.s2.items():
            s2_rows.append({"source": key, "cls": name, "pixels": cnt, **dict(zip(S2_BANDS, tot / cnt))})
    s2_tab = pd.DataFrame(s2_rows)

    weak_tab, all_row = _weak_table(chips, sim)

    summary = {
        "sim_s1_otsu_water_iou_vs_truth": all_row["s1_otsu_iou"],
        "sim_chip_otsu_water_iou_vs_truth": all_row["chip_otsu_iou"],
        "sim_chip_otsu_water_iou_vs_hand": _iou(
            np.asarray(sum(v for k, v in sim.conf.items() if k[0] == "chip_otsu_vs_hand"))),
        "sim_s2_index_water_iou_vs_truth": all_row["s2_index_iou"],
        "sim_hand_label_water_iou_vs_truth": all_row["label_iou"],
    }
    if "real" in accs:
        rc = accs["real"].conf
        for key in ("chip_otsu_vs_hand", "event_otsu_vs_hand"):
            summary[f"real_{key.replace('_vs_', '_water_iou_vs_')}"] = (_iou(rc[(key, "all")]) if (key, "all") in rc
                                                                        else float("nan"))
        summary["real_chips_with_s1"] = real_info["n_chips_s1"]

    fig = _report_figure(accs, s2_tab, weak_tab, plt)

    paths = {"png": out / "realism_report.png", "md": out / "realism_report.md", "s1": out / "realism_s1_stats.csv",
             "s2": out / "realism_s2_means.csv", "weak": out / "realism_weak_labels.csv"}
    table = None
    if "real" in accs:
        table = realism_table(accs["real"].realism.result(), sim.realism.result())
        summary["realism_rows_passed"] = f"{int(table.passed.sum())}/{len(table)}"
        paths["table"] = out / "realism_table.csv"
        paths["table_png"] = out / "realism_table.png"
        with atomic_path(paths["table"]) as tmp:
            table.to_csv(tmp, index=False, float_format="%.4f")
        _table_figure(table, paths["table_png"], plt)
    with atomic_path(paths["png"]) as tmp_png:
        fig.savefig(tmp_png, dpi=90)
    plt.close(fig)
    for key, tab in (("s1", s1_tab), ("s2", s2_tab), ("weak", weak_tab)):
        with atomic_path(paths[key]) as tmp:
            tab.to_csv(tmp, index=False, float_format="%.4f")
    md = _report_markdown(root, real_root, summary, table, s1_tab, weak_tab)
    atomic_write_text(paths["md"], "\n".join(md))
    tables = {"s1_stats": s1_tab, "s2_means": s2_tab, "weak_labels": weak_tab}
    if table is not None:
        tables["realism"] = table
    return RealismReport(tables=tables, summary=summary, paths=paths)


def _weak_table(chips: pd.DataFrame, sim) -> tuple[pd.DataFrame, dict]:
    """Weak labels (and the hand label) vs truth per event plus an ``ALL`` row: water IoU of the
    summed confusion counts. Returns ``(table, the ALL row)``.
    """
    weak_rows = []
    for ev, g in chips.groupby("event", sort=True):
        row = {"event": ev, "n_chips": len(g), "truth_water_fraction": float(g.truth_water_fraction.mean())}
        for name in ("s1_otsu", "s2_index", "label"):
            cols = [f"{name}_{k}" for k in ("tp", "fp", "fn")]
            if all(c in g for c in cols):
                row[f"{name}_iou"] = _iou(g[cols].fillna(0).sum().to_numpy())
        if ("chip_otsu", ev) in sim.conf:
            row["chip_otsu_iou"] = _iou(sim.conf[("chip_otsu", ev)])
        weak_rows.append(row)
    all_row = {"event": "ALL", "n_chips": len(chips), "truth_water_fraction": float(chips.truth_water_fraction.mean())}
    for name in ("s1_otsu", "s2_index", "label"):
        cols = [f"{name}_{k}" for k in ("tp", "fp", "fn")]
        all_row[f"{name}_iou"] = _iou(chips[cols].fillna(0).sum().to_numpy())
    all_row["chip_otsu_iou"] = _iou(sum(v for k, v in sim.conf.items() if k[0] == "chip_otsu"))
    weak_rows.append(all_row)
    weak_tab = pd.DataFrame(weak_rows)
    return weak_tab, all_row


def _report_figure(accs: dict, s2_tab: pd.DataFrame, weak_tab: pd.DataFrame, plt):
    """The 2x2 realism figure: S1 densities by hand label, S2 band means per class, weak-label IoU per event."""
    fig, axes = plt.subplots(2, 2, figsize=(13, 9))
    centres = (BINS[:-1] + BINS[1:]) / 2
    for ax, band in zip(axes[0], S1_BANDS):
        for src, a in accs.items():
            for c, col in (("water", "#1f5fbf"), ("dry", "#b8860b")):
                h = a.hist[(band, c)]
                if h.sum():
                    ax.plot(centres, h / h.sum() / 0.5, color=col, ls="-" if src == "simulated" else "--",
                            label=f"{src} {c}")
        ax.set(title=f"S1 {band} by hand label (density)", xlabel="backscatter (dB)", ylabel="density")
        ax.legend(fontsize=8)
    ax = axes[1, 0]
    wl = np.array([float(S2_BANDS.index(b)) for b in S2_BANDS])
    for _, r in s2_tab.iterrows():
        if r["cls"] in ("water", "dry") or r["source"] == "sim, true class":
            ax.plot(wl, [r[b] for b in S2_BANDS], ls="--" if r["source"].startswith("real") else "-",
                    marker=".", label=f"{r['source']}: {r['cls']}", lw=1)
    ax.set_xticks(wl, S2_BANDS, fontsize=7)
    ax.set(title="S2 L1C band means per class", ylabel="TOA reflectance")
    ax.legend(fontsize=6, ncol=2)
    ax = axes[1, 1]
    ev_rows = weak_tab[weak_tab.event != "ALL"]
    x = np.arange(len(ev_rows))
    for k, (col, lab) in enumerate((("s1_otsu_iou", "S1 Otsu (event threshold)"), ("chip_otsu_iou", "S1 Otsu per chip"),
                                    ("s2_index_iou", "S2 index"))):
        if col in ev_rows:
            ax.bar(x + (k - 1) * 0.27, ev_rows[col], width=0.27, label=lab)
    ax.set_xticks(x, ev_rows.event, rotation=45, fontsize=7)
    ax.set(title="weak labels vs truth: water IoU (global, per event)", ylabel="water IoU", ylim=(0, 1))
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def _report_markdown(root: Path, real_root, summary: dict, table: pd.DataFrame | None, s1_tab: pd.DataFrame,
                     weak_tab: pd.DataFrame) -> list[str]:
    """Lines of ``realism_report.md``: headline IoUs, the realism table (with a real root), S1
    statistics and weak labels per event.
    """
    md = ["# floodnb simulator realism report", "", f"Simulated root: `{root}`; real root: `{real_root}`", "",
          "## Headline (water IoU, global confusion matrix)", ""]
    md += [f"- {k}: {v:.3f}" if isinstance(v, float) else f"- {k}: {v}" for k, v in summary.items()]
    if table is not None:
        md += ["", "## Realism table (real vs simulated, hand label splits water/dry)", "",
               "Real: the real root's S1Hand + LabelHand, chips with valid pixels; simulated: the hand chips read. "
               "`fitted`: simulator settings were chosen to match this statistic (statistics only, never a "
               "model's score on real labels); the others were not tuned. Definitions: `floodnb.simulate.stats`.",
               "", _markdown(table.round(3)), ""]
    md += ["", "## Sentinel-1 class-conditional statistics (dB, by hand label)", "",
           _markdown(s1_tab.round(2)), "", "## Weak labels vs truth per event (water IoU)", "",
           _markdown(weak_tab.round(3)), ""]
    return md


def _markdown(tab: pd.DataFrame) -> str:
    return tab.to_markdown(index=False) if _has_tabulate() else tab.to_string(index=False)


def _table_figure(table: pd.DataFrame, path: Path, plt) -> None:
    """Horizontal bars of (simulated - real) / tolerance per statistic; the band |x| <= 1 passes."""
    n = len(table)
    fig, ax = plt.subplots(figsize=(13, 0.32 * n + 1.2))
    z = (table.difference / table.tolerance).clip(-3, 3).fillna(0.0).to_numpy()
    y = np.arange(n)[::-1]
    ax.axvspan(-1, 1, color="#dff0d8")
    ax.barh(y, z, color=["#3c763d" if p else "#a94442" for p in table.passed])
    labels = [f"{r.statistic}{'' if r.fitted else ' (not fitted)'}: real {r.real:.2f}, sim {r.simulated:.2f} "
              f"± {r.tolerance:g}" for r in table.itertuples()]
    ax.set_yticks(y, labels, fontsize=7)
    ax.set(xlim=(-3, 3), xlabel="(simulated - real) / tolerance   (clipped at ±3)",
           title=f"simulator realism: {int(table.passed.sum())}/{n} statistics within tolerance")
    fig.subplots_adjust(left=0.42, right=0.98, top=0.94, bottom=0.08)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90)
    plt.close(fig)


def _has_tabulate() -> bool:
    try:
        import tabulate  # noqa: F401
    except ImportError:
        return False
    return True
