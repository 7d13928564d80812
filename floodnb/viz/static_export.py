"""One self-contained HTML file of a run's dashboard map that works offline (``floodnb dashboard RUN --export``).

:func:`export_html` pre-renders every layer of the worst ``max_chips`` chips (the dashboard's table
order) as PNG data URLs and writes a single Bokeh document with BokehJS embedded (``INLINE``
resources): no server, no CDN, no network — it can be emailed and opened anywhere. The page holds
the same map as the live dashboard (:func:`floodnb.viz.mapfigure.chip_map`: legend, scale bar,
layers bottom first) with ``image_url`` glyphs, a chip menu (worst water IoU first), layer
check boxes, colour bars, and the selected chip's metrics. Switching chips and layers runs in the
browser (``CustomJS``). What needs the server stays out: the probability threshold (drawn at
0.5), click-to-read values, side-by-side maps and downloads.
"""

from __future__ import annotations

import base64
import html
import io
import re
from pathlib import Path

import numpy as np

from floodnb.io_utils import atomic_path
from floodnb.runs import layout as run_layout
from floodnb.viz import dashboard_text as text
from floodnb.viz import maplayers as ml
from floodnb.viz.chip_arrays import load_chip_arrays, scale_bar
from floodnb.viz.mapfigure import COLORBARS, chip_map, colorbar_html
from floodnb.viz.run_data import chip_table, load_run

#: the map's frame size in the exported page (px)
EXPORT_MAP_PX = 560


#: ``<script src>``/``<link href>`` tags of Panel's extensions (Tabulator, ...), which Bokeh adds to every
#: page once Panel has loaded them in this process; the export uses Bokeh models only and a file has no
#: server to load them from
_PANEL_ASSET = re.compile(r'<script[^>]*\ssrc="static/extensions/panel/[^"]*"[^>]*></script>\s*'
                          r'|<link[^>]*\shref="static/extensions/panel/[^"]*"[^>]*>\s*')


def png_data_url(rgba: np.ndarray) -> str:
    """``(H, W, 4)`` uint8 RGBA -> ``data:image/png;base64,...`` (lossless)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgba), "RGBA").save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _chip_payloads(run, table, ids: list[str], method: str | None, progress: bool) -> list[dict]:
    """Per chip: layer PNG URLs (empty string = not available), bounds, scale bar, info HTML."""
    from tqdm.auto import tqdm

    glob = run.metrics.get(method, {}) if method is not None else {}
    model = method or run_layout.PREDICTIONS_DEFAULT_METHOD
    out = []
    for cid in tqdm(ids, desc="export chips", unit="chip", disable=not progress):
        arrays = load_chip_arrays(run, cid, method=method)
        rgba = arrays.rgba(ml.LAYER_KEYS, threshold=0.5)
        note = model if arrays.pred is not None else f"{model}: no prediction saved in this run"
        row = table[table["chip_id"] == cid].iloc[0]
        out.append({
            "id": cid, "merc": list(arrays.merc), "bar": scale_bar(arrays.merc, arrays.lat),
            "urls": {k: ("" if v is None else png_data_url(v)) for k, v in rgba.items()},
            "binary": bool(arrays.noise is not None and ml.noise_is_binary(arrays.noise)),
            "info": text.chip_html(row, run.catalog.loc[cid], method=method, prediction_note=note,
                                   split_metrics=glob),
        })
    return out


_SWITCH_JS = """
const i = sel.options.indexOf(sel.value);
const c = chips[Math.max(0, i)];
for (const [k, src] of Object.entries(sources)) {
  const [x0, y0, x1, y1] = c.merc;
  src.data = {url: [c.urls[k]], x: [x0], y: [y0], w: [x1 - x0], h: [y1 - y0]};
}
const [x0, y0, x1, y1] = c.merc;
const cx = (x0 + x1) / 2, cy = (y0 + y1) / 2, half = Math.max(x1 - x0, y1 - y0) * 0.55;
fig.x_range.setv({start: cx - half, end: cx + half});
fig.y_range.setv({start: cy - half, end: cy + half});
fig.title.text = c.id;
bar.data = c.bar;
info.text = c.info;
binary.value = c.binary ? 1 : 0;
"""

_LAYERS_JS = """
const on = new Set(boxes.active.map(j => keys[j]));
for (const k of keys) {
  renderers[k].visible = on.has(k);
  for (const it of (items[k] || [])) { it.visible = on.has(k) && (k !== 'noise' || binary.value === 1); }
}
"""


def _document(payloads: list[dict], *, title: str, summary: str):
    """The Bokeh layout of the export (map, chip menu, layer boxes, colour bars, info) with its CustomJS."""
    from bokeh.layouts import column, row
    from bokeh.models import ColumnDataSource, CustomJS
    from bokeh.models.widgets import CheckboxGroup, Div, NumericInput, Select

    sources = {k: ColumnDataSource(dict(url=[""], x=[0.0], y=[0.0], w=[1.0], h=[1.0])) for k in ml.LAYER_KEYS}
    cm = chip_map(sources, glyph="image_url", size=EXPORT_MAP_PX, name="export-map")
    sel = Select(title="Chip (worst water IoU first)", options=[p["id"] for p in payloads],
                 value=payloads[0]["id"], width=330, name="chip-select")
    boxes = CheckboxGroup(labels=[s.title for s in ml.LAYER_SPECS], name="layer-boxes",
                          active=[i for i, s in enumerate(ml.LAYER_SPECS) if s.visible])
    info = Div(text=payloads[0]["info"], width=330, name="chip-info")
    binary = NumericInput(value=1 if payloads[0]["binary"] else 0, visible=False)
    layers_cb = CustomJS(args=dict(boxes=boxes, keys=list(ml.LAYER_KEYS), renderers=cm.renderers,
                                   items=cm.legend_items, binary=binary), code=_LAYERS_JS)
    switch = CustomJS(args=dict(sel=sel, chips=payloads, sources=sources, fig=cm.figure, bar=cm.scale_source,
                                info=info, binary=binary), code=_SWITCH_JS)
    sel.js_on_change("value", switch, layers_cb)
    boxes.js_on_change("active", layers_cb)
    _apply_first(payloads[0], sources, cm)
    head = Div(text=f"<h2 style='margin:4px 0'>{title}</h2><p style='margin:2px 0'>{summary}</p>"
                    "<p style='margin:2px 0'><small>Offline copy of the floodnb dashboard: every chip's layers "
                    "are embedded; the probability layer is drawn at threshold 0.5.</small></p>", width=1000)
    bars = Div(text=colorbar_html(tuple(COLORBARS)), width=EXPORT_MAP_PX)
    return column(head, row(column(sel, Div(text="<b>Layers</b>"), boxes, info), column(cm.figure, bars)))


def _apply_first(p: dict, sources: dict, cm) -> None:
    x0, y0, x1, y1 = p["merc"]
    for k, src in sources.items():
        src.data = dict(url=[p["urls"][k]], x=[x0], y=[y0], w=[x1 - x0], h=[y1 - y0])
    cx, cy, half = (x0 + x1) / 2, (y0 + y1) / 2, max(x1 - x0, y1 - y0) * 0.55
    cm.figure.x_range.update(start=cx - half, end=cx + half)
    cm.figure.y_range.update(start=cy - half, end=cy + half)
    cm.figure.title.text = p["id"]
    cm.scale_source.data = p["bar"]
    for key, items in cm.legend_items.items():
        for it in items:
            it.visible = ml.SPECS[key].visible and (key != "noise" or p["binary"])


def export_html(run_dir: str | Path, out: str | Path, *, data_root: str | Path | None = None,
                method: str | None = None, max_chips: int = 50, progress: bool = True) -> Path:
    """Write the offline dashboard of ``run_dir`` to ``out`` (one ``.html`` file); returns its path.

    ``method``: the model whose metrics order the chips and whose prediction is drawn (default:
    the student if present, as the live dashboard). ``max_chips``: the worst chips kept (every
    layer of every chip is embedded, about 0.1-1 MB per 512 px chip). Written atomically.
    """
    from bokeh.embed import file_html
    from bokeh.resources import INLINE

    out = Path(out)
    if out.suffix.lower() not in (".html", ".htm"):
        raise ValueError(f"--export {out}: expected a file name ending in .html")
    if int(max_chips) < 1:
        raise ValueError(f"max_chips must be >= 1, got {max_chips}")
    run = load_run(run_dir, data_root=data_root)
    if method is None:
        method = next((m for m in ("student", "distilled", "teacher") if m in run.methods),
                      run.methods[0] if run.methods else None)
    table = chip_table(run, method=method)
    ids = [str(c) for c in table["chip_id"].head(int(max_chips))]
    if not ids:
        raise ValueError(f"run {run.run_dir} lists no chip present in the data root {run.data_root}")
    payloads = _chip_payloads(run, table, ids, method, progress)
    summary = text.summary_html(run.name, run.methods, run.metrics, len(table), live=False)
    layout = _document(payloads, title=f"floodnb — run {html.escape(run.name)}", summary=summary)
    page = _PANEL_ASSET.sub("", file_html(layout, resources=INLINE, title=f"floodnb — {run.name}"))
    with atomic_path(out) as tmp:
        Path(tmp).write_text(page, encoding="utf-8")
    return out


__all__ = ["EXPORT_MAP_PX", "export_html", "png_data_url"]
