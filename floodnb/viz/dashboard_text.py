"""Text of the dashboard: the selected chip's panel, the run summary, pixel read-outs, table formats.

Pure functions from table rows and metrics to escaped HTML (no widgets), used by
:mod:`floodnb.viz.dashboard`. The primary metric is water IoU (Bonafilia et al. 2020): per chip
here, and from the global confusion matrix per split, labelled as such. Areas are km² from
:mod:`floodnb.area` (flood = water minus JRC permanent water) when the run has them.
"""

from __future__ import annotations

import html
import math

import numpy as np
import pandas as pd

#: table header titles (column -> short title, the table is narrow: IoU = water IoU, "water" / "flood" =
#: predicted water / flood area in km² (said in the summary line), "noise" = label-noise rate)
TITLES: dict[str, str] = {
    "chip_id": "chip", "water_iou": "IoU", "water_km2": "water", "flood_km2": "flood",
    "noise_rate": "noise", "rank": "noise rank",
}
_FLOAT3 = ("water_iou", "water_precision", "water_recall", "noise_rate", "miou", "accuracy")
_FLOAT2 = ("water_km2", "ref_water_km2", "permanent_km2", "flood_km2", "ref_flood_km2", "valid_km2")


def fmt(v) -> str:
    """A table value as text: NaN/None "–", floats to 3 decimals, everything else escaped."""
    if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA:
        return "–"
    if isinstance(v, (float, np.floating)):
        return f"{v:.3f}"
    return html.escape(str(v))


def formatters() -> dict:
    """Tabulator number formats: 3 decimals for scores, 2 for km²."""
    from bokeh.models.widgets.tables import NumberFormatter

    out = {c: NumberFormatter(format="0.000") for c in _FLOAT3}
    out.update({c: NumberFormatter(format="0.00") for c in _FLOAT2})
    return out


def chip_html(row: pd.Series, catalog_row: pd.Series, *, method: str | None, prediction_note: str,
              split_metrics: dict) -> str:
    """The selected chip's panel: ids, dates, this chip's metrics and areas, the split's global IoU."""
    items = [("chip", row.get("chip_id")), ("event", row.get("event")), ("split", row.get("split"))]
    for col, label in (("s1_date", "S1 date"), ("s2_date", "S2 date")):
        if col in catalog_row.index:
            items.append((label, catalog_row[col]))
    m = method if method is not None else "–"
    items += [(f"water IoU (this chip, {m})", row.get("water_iou")),
              ("water precision (this chip)", row.get("water_precision")),
              ("water recall (this chip)", row.get("water_recall")),
              ("valid pixels", row.get("valid_pixels")),
              ("predicted water (km²)", row.get("water_km2")),
              ("reference water (km²)", row.get("ref_water_km2")),
              ("permanent water, JRC (km²)", row.get("permanent_km2")),
              ("flood = water − permanent (km²)", row.get("flood_km2")),
              ("reference flood (km²)", row.get("ref_flood_km2")),
              ("valid area (km²)", row.get("valid_km2")),
              ("label-noise rate (this chip)", row.get("noise_rate")),
              ("noise rank (1 = noisiest)", row.get("rank")),
              ("map layer 'Prediction'", prediction_note)]
    body = "".join(f"<tr><th style='text-align:left;padding-right:1em'>{html.escape(k)}</th>"
                   f"<td>{fmt(v)}</td></tr>" for k, v in items if v is not None and v is not pd.NA)
    split = row.get("split")
    ctx = split_metrics.get(split, {}) if isinstance(split_metrics, dict) and isinstance(split, str) else {}
    extra = ""
    if isinstance(ctx, dict) and "water_iou" in ctx:
        extra = (f"<p style='margin:2px 0'><small>water IoU ({html.escape(str(split))} split, global confusion "
                 f"matrix, {html.escape(str(m))}): {fmt(ctx['water_iou'])}</small></p>")
    return f"<table class='chip-metrics' style='font-size:0.85em'>{body}</table>{extra}"


def summary_html(name: str, methods: tuple[str, ...], metrics: dict, n_chips: int, *, live: bool = True) -> str:
    """Chip count and the water IoU per model and split (global confusion matrix); ``live``: table hint."""
    parts = []
    for m in methods:
        per_split = metrics.get(m, {})
        if isinstance(per_split, dict):
            vals = ", ".join(f"{html.escape(s)} {fmt(v['water_iou'])}" for s, v in per_split.items()
                             if isinstance(v, dict) and "water_iou" in v)
            if vals:
                parts.append(f"<b>{html.escape(m)}</b>: {vals}")
    head = f"{n_chips} chips, worst water IoU first" + (" (click a row to show the chip; areas in km²)" if live else "")
    if parts:
        head += ". Water IoU per split (global confusion matrix): " + "; ".join(parts)
    return f"<small>{head}</small>"


def _value(v) -> str:
    if isinstance(v, float):
        return "–" if math.isnan(v) else f"{v:.2f}"
    return html.escape(str(v))


def pixel_html(values: dict | None) -> str:
    """Click-to-read table of one pixel's values (:func:`floodnb.viz.chip_arrays.pixel_values`)."""
    if values is None:
        return "<small>Click the map to read a pixel's values (dB, probability, labels).</small>"
    rows = "".join(f"<tr><th style='text-align:left;padding-right:1em'>{html.escape(str(k))}</th>"
                   f"<td>{_value(v)}</td></tr>" for k, v in values.items())
    return f"<table class='pixel-values' style='font-size:0.85em'>{rows}</table>"
