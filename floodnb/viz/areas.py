"""Figure: predicted vs reference flooded area (km²) per event, with a 1:1 line (static PNG, works offline).

Input is a per-event area table (:func:`floodnb.compare.event_area_table`: columns ``method``,
``event``, the :data:`floodnb.area.AREA_COLUMNS`). Flooded area is ``flood_km2`` vs ``ref_flood_km2``
(water minus JRC permanent water) when the data has a permanent-water layer, else all water
(``water_km2`` vs ``ref_water_km2``); the axis labels say which. Drawn with matplotlib's
object-oriented API (no pyplot, so a notebook's backend is left alone).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from floodnb.io_utils import atomic_path


def area_columns(events: pd.DataFrame) -> tuple[str, str, str]:
    """``(predicted column, reference column, what)``: flood areas when any is known, else water areas."""
    if {"flood_km2", "ref_flood_km2"} <= set(events.columns) and events["ref_flood_km2"].notna().any():
        return "flood_km2", "ref_flood_km2", "flooded area (water minus JRC permanent water)"
    return "water_km2", "ref_water_km2", "water area (no permanent-water layer in the data)"


def event_area_figure(events: pd.DataFrame, path: str | Path, *, methods: tuple[str, ...] | None = None,
                      reference: str = "reference", dpi: int = 110) -> Path:
    """Scatter of predicted (y) vs ``reference`` (x) km² per event, one colour per method, 1:1 line;
    written atomically as PNG to ``path``. ``methods``: which methods (default all in ``events``).
    ValueError when the table lacks the columns or holds no finite pair.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    need = {"method", "event"}
    if not need <= set(events.columns):
        raise ValueError(f"per-event area table lacks columns {sorted(need - set(events.columns))}")
    pred_col, ref_col, what = area_columns(events)
    methods = tuple(methods or dict.fromkeys(events["method"]))
    data = events[events["method"].isin(methods)].dropna(subset=[pred_col, ref_col])
    if data.empty:
        raise ValueError(f"no event has both {pred_col} and {ref_col} for methods {list(methods)}")
    fig = Figure(figsize=(5.6, 5.0), dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    top = float(max(data[pred_col].max(), data[ref_col].max())) * 1.08 or 1.0
    ax.plot([0, top], [0, top], color="0.5", lw=1, ls="--", label="1:1")
    for method in methods:
        d = data[data["method"] == method]
        if len(d):
            ax.scatter(d[ref_col], d[pred_col], s=36, label=method, alpha=0.85)
    if len(methods) == 1:
        for _, r in data.iterrows():
            ax.annotate(str(r["event"]), (r[ref_col], r[pred_col]), fontsize=7, xytext=(3, 3),
                        textcoords="offset points")
    ax.set(xlim=(0, top), ylim=(0, top), aspect="equal", xlabel=f"{reference} {what.split(' (')[0]} (km²)",
           ylabel=f"predicted {what.split(' (')[0]} (km²)", title=f"per event: {what}")
    ax.title.set_fontsize(9)
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return path


__all__ = ["area_columns", "event_area_figure"]
