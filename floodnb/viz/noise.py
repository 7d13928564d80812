"""Label-noise visuals: heat maps over imagery, disagreement overlays, confusion tables, gallery.

Library functions for the notebooks and the dashboard. matplotlib functions build a
``matplotlib.figure.Figure`` without pyplot (no global state; safe in threads and servers) and,
given ``path``, also save it as PNG atomically (temp file in the same folder, then
``os.replace``). hvplot functions return HoloViews objects.

Backgrounds: Sentinel-1 VV in dB on a grey ramp over :data:`~floodnb.bands.S1_DB_RANGE`, or
Sentinel-2 true colour (B4, B3, B2) with a 2-98 % percentile stretch
(:mod:`floodnb.viz.stretch`). Colours: water ``CLASS_COLORS[WATER]``, disagreement
:data:`~floodnb.bands.DISAGREE_COLOR`, noise scores on :data:`~floodnb.bands.NOISE_CMAP`
(magma; bright = label likely wrong).

Arrays: ``score (H, W)`` float in [0, 1] (NaN = no score), labels ``(H, W)`` int in {-1, 0, 1},
``s1 (2, H, W)`` dB, ``s2 (13, H, W)`` reflectance (DN / 10000), NaN = nodata.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from floodnb.bands import CLASS_COLORS, DISAGREE_COLOR, NOISE_CMAP, WATER
from floodnb.io_utils import atomic_path
from floodnb.viz.offline import ensure_hvplot
from floodnb.viz.stretch import s1_db_display, s2_true_color

TABLE_COLUMNS: tuple[str, ...] = ("event", "chips", "valid_pixels", "agreement", "kappa", "water_iou",
                                  "n00", "n01", "n10", "n11")


def save_figure(fig, path: str | Path, *, dpi: int = 110) -> Path:
    """Save ``fig`` as PNG at ``path`` atomically (:func:`floodnb.io_utils.atomic_path`)."""
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"figure path must end in .png, got {str(path)!r}")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png", bbox_inches="tight")
    return path


def _new_axes(ax, figsize=(5, 5)):
    if ax is not None:
        return ax.figure, ax
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    return fig, fig.add_subplot(1, 1, 1)


def _shape_check(name: str, arr: np.ndarray, shape: tuple[int, int]) -> None:
    if arr.shape[-2:] != shape:
        raise ValueError(f"{name} grid {arr.shape[-2:]} != score/label grid {shape}")


def draw_background(ax, *, shape: tuple[int, int], s1=None, s2=None, background: str = "auto") -> str:
    """Draw S1 (grey dB) or S2 (true colour) on ``ax``; returns what was drawn ("s1", "s2", "none").

    ``background``: "s1", "s2", "none" or "auto" (S2 if given, else S1, else none).
    """
    if background not in ("auto", "s1", "s2", "none"):
        raise ValueError(f"background must be 'auto', 's1', 's2' or 'none', got {background!r}")
    if background == "auto":
        background = "s2" if s2 is not None else "s1" if s1 is not None else "none"
    if background == "s2":
        if s2 is None:
            raise ValueError("background='s2' needs s2 (13, H, W)")
        s2 = np.asarray(s2)
        _shape_check("s2", s2, shape)
        ax.imshow(np.nan_to_num(s2_true_color(s2), nan=1.0), interpolation="nearest")
    elif background == "s1":
        if s1 is None:
            raise ValueError("background='s1' needs s1 (2, H, W) in dB")
        s1 = np.asarray(s1)
        _shape_check("s1", s1, shape)
        ax.imshow(s1_db_display(s1, band="VV"), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    else:
        ax.imshow(np.ones(shape + (3,)), interpolation="nearest")
    return background


def noise_heatmap(score, *, s1=None, s2=None, background: str = "auto", ax=None, title: str | None = None,
                  alpha: float = 0.75, colorbar: bool = True, path: str | Path | None = None):
    """Noise score ``(H, W)`` on the magma colour map over S1/S2 imagery; returns the Figure.

    Pixels with NaN score stay see-through; opacity is ``alpha * min(1, 2 * score)`` so clean
    pixels show the imagery and suspicious ones stand out.
    """
    s = np.asarray(score, dtype=np.float32)
    if s.ndim != 2:
        raise ValueError(f"score must be (H, W), got {s.shape}")
    fig, ax = _new_axes(ax)
    drawn = draw_background(ax, shape=s.shape, s1=s1, s2=s2, background=background)
    # opacity rises with the score (as in the dashboard) so clean pixels show the imagery
    a = np.where(np.isfinite(s), alpha * np.clip(2 * np.nan_to_num(s), 0, 1), 0.0)
    im = ax.imshow(np.ma.masked_invalid(s), cmap=NOISE_CMAP, vmin=0, vmax=1, alpha=a,
                   interpolation="nearest")
    if colorbar:
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02, label="noise score (1 = label likely wrong)")
    ax.set_title(title or f"label-noise score over {drawn.upper() if drawn != 'none' else 'blank'}")
    ax.set_axis_off()
    if path is not None:
        save_figure(fig, path)
    return fig


def disagreement_overlay(a, b, *, names: tuple[str, str] = ("a", "b"), s1=None, s2=None,
                         background: str = "auto", ax=None, title: str | None = None,
                         path: str | Path | None = None):
    """Where two label sources disagree, over imagery; returns the Figure.

    Water of ``a`` is drawn in ``CLASS_COLORS[WATER]`` (half transparent), pixels where ``a`` and
    ``b`` disagree in :data:`~floodnb.bands.DISAGREE_COLOR`; nodata in either source is left
    uncoloured. The title gives the disagreement rate over pixels valid in both.
    """
    from matplotlib.colors import to_rgba
    from matplotlib.patches import Patch

    from floodnb.labels.noise import disagreement_map

    d = disagreement_map(a, b, a_name=names[0], b_name=names[1])
    if d.ndim != 2:
        raise ValueError(f"a and b must be single chips (H, W), got {d.shape}")
    a = np.asarray(a)
    fig, ax = _new_axes(ax)
    draw_background(ax, shape=d.shape, s1=s1, s2=s2, background=background)
    over = np.zeros(d.shape + (4,), np.float32)
    water = to_rgba(CLASS_COLORS[WATER])
    over[(a == WATER) & (d == 0)] = (*water[:3], 0.45)
    over[d == 1] = to_rgba(DISAGREE_COLOR)
    ax.imshow(over, interpolation="nearest")
    valid = d >= 0
    rate = float((d[valid] == 1).mean()) if valid.any() else float("nan")
    ax.set_title(title or f"{names[0]} vs {names[1]}: {rate:.1%} of {int(valid.sum())} px disagree")
    ax.legend(handles=[Patch(color=CLASS_COLORS[WATER], label=f"water ({names[0]})"),
                       Patch(color=DISAGREE_COLOR, label="disagree")],
              loc="lower right", fontsize=7, framealpha=0.8)
    ax.set_axis_off()
    if path is not None:
        save_figure(fig, path)
    return fig


def _single_pair(events: pd.DataFrame) -> tuple[str, str] | None:
    """``(source_a, source_b)`` when the table compares one pair of sources, else ``None``."""
    if not {"source_a", "source_b"} <= set(events.columns):
        return None
    pairs = events[["source_a", "source_b"]].drop_duplicates()
    return (str(pairs.iloc[0, 0]), str(pairs.iloc[0, 1])) if len(pairs) == 1 else None


def table_headers(events: pd.DataFrame) -> dict[str, str]:
    """Readable column names of a per-event confusion table (:func:`floodnb.labels.noise.event_confusion`).

    The counts ``n00 n01 n10 n11`` (first digit: first source's class) are named after the two
    sources when the table holds a single pair (``source_a``/``source_b``), else "first"/"second".
    """
    a, b = _single_pair(events) or ("first", "second")
    return {"pair": "sources", "event": "event", "chips": "chips", "valid_pixels": "valid\npixels",
            "agreement": "agreement", "kappa": "Cohen's\nkappa", "water_iou": "water\nIoU",
            "n00": "px both\ndry", "n01": f"px {a} dry,\n{b} water", "n10": f"px {a} water,\n{b} dry",
            "n11": "px both\nwater"}


def event_confusion_figure(events: pd.DataFrame, *, title: str | None = None, path: str | Path | None = None):
    """Per-event confusion table (:func:`floodnb.labels.noise.event_confusion`) drawn as a figure.

    One row per event (and "all"); columns :data:`TABLE_COLUMNS` present in ``events`` under the
    readable names of :func:`table_headers`, rates rounded to 3 decimals, pixel counts with
    thousands separators. The figure is sized from the text so nothing is clipped. Several
    source pairs (``source_a``/``source_b`` columns) get a "sources" column.
    """
    if not isinstance(events, pd.DataFrame) or events.empty:
        raise ValueError("events must be a non-empty DataFrame from floodnb.labels.noise.event_confusion")
    if "event" not in events.columns:
        raise ValueError(f"events lacks an 'event' column; columns are {list(events.columns)}")
    df = events.copy()
    cols = [c for c in TABLE_COLUMNS if c in df.columns]
    names = table_headers(df)
    pair = _single_pair(df)
    several = pair is None and {"source_a", "source_b"} <= set(df.columns)
    if several:
        df["pair"] = df["source_a"].astype(str) + " vs " + df["source_b"].astype(str)
        cols = ["pair", *cols]
    cells = [[_fmt(v) for v in row] for row in df[cols].itertuples(index=False)]
    heads = [names.get(c, c) for c in cols]
    chars = [max(max(len(line) for line in h.split("\n")), *(len(r[i]) for r in cells)) for i, h in enumerate(heads)]
    from matplotlib.figure import Figure
    from matplotlib.transforms import Bbox

    width = 0.085 * sum(chars) + 0.25 * len(cols) + 0.4
    fig = Figure(figsize=(width, 0.26 * len(cells) + 0.9))
    ax = fig.add_axes((0.01, 0.01, 0.98, 0.98 - 0.45 / fig.get_figheight()))
    ax.set_axis_off()
    table = ax.table(cellText=cells, colLabels=heads, cellLoc="right", colLoc="center",
                     bbox=Bbox.from_bounds(0, 0, 1, 1),
                     colWidths=[c / sum(chars) for c in chars])
    table.auto_set_font_size(False)
    table.set_fontsize(8)
    for (row, _), cell in table.get_celld().items():
        if row == 0:
            cell.set_facecolor("#e8e8e8")
            cell.set_height(cell.get_height() * 2)
    which = f": {pair[0]} vs {pair[1]}" if pair else ""
    fig.suptitle(title or f"per-event agreement of the label sources{which} "
                 "(pixel counts and rates over pixels valid in both)", fontsize=9, y=0.995, va="top")
    if path is not None:
        save_figure(fig, path)
    return fig


def _fmt(v) -> str:
    if isinstance(v, (float, np.floating)):
        return "nan" if not np.isfinite(v) else f"{v:.3f}"
    if isinstance(v, (int, np.integer)):
        return f"{int(v):,}"
    return str(v)


def worst_chips_gallery(items: Sequence[Mapping], *, ncols: int = 4, title: str | None = None,
                        alpha: float = 0.55, path: str | Path | None = None):
    """Gallery of the worst chips: noise heat map over imagery, one panel per chip; returns the Figure.

    ``items``: dicts with ``chip_id`` (str), ``score`` ``(H, W)``, optional ``s1``/``s2``,
    ``noise_rate`` (float) and ``rank`` — typically the top rows of the ranked chip table
    (:func:`floodnb.labels.stream.score_stream`) with arrays loaded for them. The score is drawn
    at most ``alpha`` opaque so the imagery stays visible under flagged pixels; one colour bar
    for all panels.
    """
    if len(items) == 0:
        raise ValueError("worst_chips_gallery needs at least one chip")
    if ncols < 1:
        raise ValueError(f"ncols must be >= 1, got {ncols}")
    from matplotlib.figure import Figure

    n = len(items)
    ncols = min(ncols, n)
    nrows = -(-n // ncols)
    fig = Figure(figsize=(3.2 * ncols + 0.8, 3.4 * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for i, ax in enumerate(axes.ravel()):
        if i >= n:
            ax.set_axis_off()
            continue
        it = items[i]
        if "chip_id" not in it or "score" not in it:
            raise ValueError(f"gallery item {i} needs 'chip_id' and 'score'; it has {sorted(it)}")
        rate = it.get("noise_rate")
        rank = it.get("rank")
        head = f"#{rank} " if rank is not None and not pd.isna(rank) else ""
        tail = f"\nnoise rate {rate:.3f}" if rate is not None and np.isfinite(rate) else "\nno score"
        noise_heatmap(it["score"], s1=it.get("s1"), s2=it.get("s2"), ax=ax, colorbar=False, alpha=alpha,
                      title=f"{head}{it['chip_id']}{tail}")
        ax.title.set_fontsize(8)
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    bar = ScalarMappable(norm=Normalize(0, 1), cmap=NOISE_CMAP)
    fig.colorbar(bar, ax=axes.ravel().tolist(), fraction=0.03, pad=0.01, shrink=0.9,
                 label="label-noise score (1 = likely wrong)")
    fig.suptitle(title or "worst chips first: label-noise score (magma) over the imagery (S2 true colour, "
                 "else S1 VV dB)", fontsize=10)
    if path is not None:
        save_figure(fig, path)
    return fig


def noise_heatmap_hv(score, *, s1=None, alpha: float = 0.75, title: str = "label-noise score",
                     width: int = 420, height: int = 400, max_px: int = 96):
    """Interactive hvplot version of :func:`noise_heatmap`: S1 VV dB (grey) * noise (magma).

    ``score``: ``(H, W)`` array or ``xr.DataArray`` with ``y``/``x`` coords (kept, e.g. lon/lat).
    Returns a HoloViews Overlay (or Image without ``s1``). Maps larger than ``max_px`` on a side
    are thinned by an integer stride (nearest pixel).
    """
    ensure_hvplot()
    import xarray as xr

    da = score if isinstance(score, xr.DataArray) else xr.DataArray(
        np.asarray(score, dtype=np.float32), dims=("y", "x"),
        coords={"y": np.arange(np.asarray(score).shape[0])[::-1], "x": np.arange(np.asarray(score).shape[1])})
    if da.ndim != 2:
        raise ValueError(f"score must be (H, W), got {da.shape}")
    if s1 is not None:
        s1 = np.asarray(s1)
        _shape_check("s1", s1, (da.shape[0], da.shape[1]))
    step = max(1, -(-max(da.shape) // max_px))  # thinned: the figure's data is embedded in the notebook
    if step > 1:
        da = da[::step, ::step]
        s1 = None if s1 is None else s1[:, ::step, ::step]
    heat = da.rename("noise").hvplot.image(x="x", y="y", cmap=NOISE_CMAP, clim=(0, 1), alpha=alpha,
                                           width=width, height=height, title=title, colorbar=True)
    if s1 is None:
        return heat
    grey = xr.DataArray(s1_db_display(s1, band="VV"), dims=("y", "x"), coords=da.coords, name="VV")
    base = grey.hvplot.image(x="x", y="y", cmap="gray", clim=(0, 1), colorbar=False, width=width, height=height)
    return base * heat


def event_confusion_hv(events: pd.DataFrame, *, height: int = 220):
    """Per-event confusion as an interactive HoloViews table (hvplot)."""
    ensure_hvplot()

    if not isinstance(events, pd.DataFrame) or events.empty:
        raise ValueError("events must be a non-empty DataFrame from floodnb.labels.noise.event_confusion")
    cols = [c for c in ("source_a", "source_b", *TABLE_COLUMNS) if c in events.columns]
    names = {k: v.replace("\n", " ") for k, v in table_headers(events).items()}
    names |= {"source_a": "first source", "source_b": "second source"}
    table = events[cols].round(3).rename(columns=names)
    return table.hvplot.table(columns=list(table.columns), height=height)


__all__ = [
    "TABLE_COLUMNS", "disagreement_overlay", "draw_background", "event_confusion_figure", "event_confusion_hv",
    "noise_heatmap", "noise_heatmap_hv", "save_figure", "worst_chips_gallery",
]
