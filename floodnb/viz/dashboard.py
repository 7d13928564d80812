"""Panel dashboard of one ``floodnb run``: pick a chip from the worst-first table, inspect it on a map.

:func:`build_dashboard` returns a Panel layout for a run directory written by ``floodnb run``::

    runs/<name>/run.json                                   data_root, params, stages
    runs/<name>/02_weak_labels_and_noise/noise_chips.csv   chip_id, event, split, noise_rate, <scores>, rank
    runs/<name>/02_weak_labels_and_noise/noise_maps/<chip_id>_noise.tif   per-pixel noise score 0..1
    runs/<name>/05_evaluate/per_chip.csv                   chip_id, event, split, method, water_iou, ...
    runs/<name>/05_evaluate/metrics.json                   {method: {split: {water_iou, miou, ...}}}
    runs/<name>/05_evaluate/predictions/<chip_id>_pred.tif predicted class on the chip grid

Chip imagery (S1 dB, S2, hand label, weak labels) is read from the data root recorded in
``run.json`` through :func:`floodnb.data.catalog.build_catalog` and
:func:`floodnb.data.io.load_chip`. Files are only ever opened by looking a chip id up in these
tables: nothing a browser sends becomes part of a path.

The map (Bokeh, Web Mercator) stacks the layers of :data:`floodnb.viz.maplayers.LAYER_SPECS`
over an optional tile basemap; each layer has a toggle and an opacity slider. Offline the tiles
stay blank while overlays, axes and tools keep working. Only visible layers are computed and
sent to the browser; a layer turned on later is filled then. The primary metric is water IoU
(Bonafilia et al. 2020), per chip here and from the global confusion matrix per split in the
header, labelled as such.
"""

from __future__ import annotations

import functools
import html
import math
from pathlib import Path
from typing import Any

import numpy as np
import panel as pn
import param
from bokeh.models import ColumnDataSource, Range1d, WMTSTileSource
from bokeh.plotting import figure

from floodnb.bands import LABEL_NODATA
from floodnb.chip_ids import is_chip_id
from floodnb.runs import layout as run_layout
from floodnb.viz import maplayers as ml
from floodnb.viz.run_data import (  # noqa: F401  (the run's tables, re-exported for existing imports)
    EVAL_DIR,
    METRICS_FILE,
    NOISE_DIR,
    NOISE_TABLE,
    PER_CHIP_TABLE,
    RunData,
    chip_table,
    load_run,
)

#: Basemaps offered (name -> XYZ tile URL); "none" draws no tiles.
OSM_TILES = "https://tile.openstreetmap.org/{Z}/{X}/{Y}.png"
BASEMAPS: dict[str, str | None] = {
    "OpenStreetMap": OSM_TILES,
    "Esri World Imagery": "https://server.arcgisonline.com/ArcGIS/rest/services/World_Imagery/MapServer/tile/{Z}/{Y}/{X}",
    "none": None,
}
_ATTRIBUTION = {
    "OpenStreetMap": "&copy; OpenStreetMap contributors",
    "Esri World Imagery": "Tiles &copy; Esri",
}


@functools.lru_cache(maxsize=8)
def tiles_reachable(name: str, *, timeout: float = 1.5) -> bool:
    """Whether this machine can fetch the world tile (z=0) of basemap ``name`` (checked once)."""
    import urllib.request

    url = BASEMAPS[name]
    if url is None:
        return False
    probe = url.replace("{Z}", "0").replace("{X}", "0").replace("{Y}", "0")
    try:
        req = urllib.request.Request(probe, method="GET", headers={"User-Agent": "floodnb-dashboard"})
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return 200 <= resp.status < 300
    except (OSError, ValueError):
        return False


def resolve_basemap(basemap: str) -> str:
    """``"auto"`` -> "OpenStreetMap" when its tiles are reachable, else "none"; other names as given."""
    if basemap == "auto":
        return "OpenStreetMap" if tiles_reachable("OpenStreetMap") else "none"
    if basemap not in BASEMAPS:
        raise ValueError(f"basemap must be 'auto' or one of {list(BASEMAPS)}, got {basemap!r}")
    return basemap


MAP_PX = 620
_EMPTY = np.zeros((1, 1), np.uint32)


def _fmt(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if isinstance(v, (float, np.floating)):
        return f"{v:.3f}"
    return html.escape(str(v))


class Dashboard(param.Parameterized):
    """One session's dashboard: widgets, the Bokeh map and the callbacks between them.

    ``view`` is the servable Panel layout; :meth:`select_chip` moves the map to a chip
    (the table's row selection calls it too). ``sources[key]`` holds the image of layer ``key``.
    """

    method: param.Selector[str | None] = param.Selector(default=None, objects=[None],
                                                       doc="model whose per-chip metrics fill the table")
    basemap: param.Selector[str] = param.Selector(default="OpenStreetMap", objects=list(BASEMAPS))

    def __init__(self, run: RunData, *, chip: str | None = None, method: str | None = None,
                 basemap: str = "auto"):
        methods: list[str | None] = list(run.methods) or [None]
        preferred = method if method is not None else next(
            (m for m in ("student", "distilled", "teacher") if m in methods), methods[0])
        if preferred not in methods:
            raise ValueError(f"method {preferred!r} not in {PER_CHIP_TABLE}; expected one of {run.methods}")
        basemap = resolve_basemap(basemap)
        self.param.method.objects = methods
        super().__init__(method=preferred, basemap=basemap)
        self.run = run
        self.chip_id: str | None = None
        self._chip_cache: dict[str, dict] = {}
        self._stale: set[str] = set()
        self.message = pn.pane.Alert("", alert_type="warning", visible=False, sizing_mode="stretch_width")
        self._build_map()
        self._build_controls()
        self.table = pn.widgets.Tabulator(
            chip_table(run, method=self.method), selectable=1, disabled=True, show_index=False,
            pagination="local", page_size=12, sizing_mode="stretch_width", height=420,
            formatters=self._formatters(),
        )
        self.table.param.watch(self._on_selection, "selection")
        self.param.watch(self._on_method, "method")
        self.param.watch(self._on_basemap, "basemap")
        self.chip_info = pn.pane.HTML("", sizing_mode="stretch_width", name="chip-metrics")
        known = chip is not None and chip in set(self.table.value["chip_id"])
        start = chip if known else (str(self.table.value["chip_id"].iloc[0]) if len(self.table.value) else None)
        if start is not None:
            self.select_chip(start)
        if chip is not None and not known:  # a ?chip= argument: looked up, never used as a path
            self._warn(f"chip {chip!r} is not in this run's table; showing the worst chip instead")
        self.view = self._layout()

    # ---------------------------------------------------------------- map
    def _build_map(self) -> None:
        fig = figure(x_axis_type="mercator", y_axis_type="mercator", x_range=Range1d(start=0, end=1),
                     y_range=Range1d(start=0, end=1), frame_width=MAP_PX, frame_height=MAP_PX,
                     tools="pan,wheel_zoom,box_zoom,reset,save", active_scroll="wheel_zoom",
                     toolbar_location="above", name="chip-map")
        fig.xaxis.axis_label = "longitude"
        fig.yaxis.axis_label = "latitude"
        self.tiles = fig.add_tile(WMTSTileSource(url=OSM_TILES,
                                                 attribution=_ATTRIBUTION["OpenStreetMap"]))
        self._apply_basemap(self.basemap)
        self.sources: dict[str, ColumnDataSource] = {}
        self.renderers = {}
        for spec in ml.LAYER_SPECS:
            src = ColumnDataSource(dict(image=[_EMPTY], x=[0.0], y=[0.0], dw=[1.0], dh=[1.0]))
            r = fig.image_rgba(image="image", x="x", y="y", dw="dw", dh="dh", source=src,
                               global_alpha=spec.alpha, name=f"layer-{spec.key}")
            r.visible = spec.visible
            self.sources[spec.key], self.renderers[spec.key] = src, r
        self.figure = fig
        self.map_pane = pn.pane.Bokeh(fig, name="map")

    def _on_doc(self, fn) -> None:
        """Run ``fn`` (which changes Bokeh models) where the browser will see it.

        Served, Panel calls widget watchers without Bokeh's document lock, and raw Bokeh model
        changes made there never reach the browser; a next-tick callback runs under the lock.
        Before the page exists (building it, tests, notebooks) ``fn`` runs at once.
        """
        doc = self.figure.document
        if doc is None or getattr(doc, "session_context", None) is None:
            fn()
        else:
            doc.add_next_tick_callback(fn)

    def _apply_basemap(self, name: str) -> None:
        url = BASEMAPS[name]
        if url is None:
            self.tiles.visible = False
            return
        self.tiles.tile_source = WMTSTileSource(url=url, attribution=_ATTRIBUTION[name])
        self.tiles.visible = True

    def _on_basemap(self, event) -> None:
        self._on_doc(functools.partial(self._apply_basemap, event.new))

    # ---------------------------------------------------------------- controls
    def _build_controls(self) -> None:
        self.toggles: dict[str, pn.widgets.Checkbox] = {}
        self.opacity: dict[str, pn.widgets.FloatSlider] = {}
        rows = []
        for spec in ml.LAYER_SPECS:
            cb = pn.widgets.Checkbox(label=spec.title, value=spec.visible, margin=(6, 5, 0, 5))
            sl = pn.widgets.FloatSlider(label="opacity", start=0.0, end=1.0, step=0.05, value=spec.alpha,
                                        show_value=False, width=120, margin=(0, 5, 4, 25))
            cb.param.watch(lambda e, k=spec.key: self._on_toggle(k, e.new), "value")
            sl.param.watch(lambda e, k=spec.key: self._on_doc(
                functools.partial(setattr, self.renderers[k].glyph, "global_alpha", e.new)), "value")
            self.toggles[spec.key], self.opacity[spec.key] = cb, sl
            rows.append(pn.Column(cb, sl, pn.pane.HTML(f"<small>{html.escape(spec.legend)}</small>",
                                                       margin=(0, 5, 6, 25)), margin=0))
        self.layer_controls = pn.Column(*rows, name="layers")
        self.method_select = pn.widgets.Select.from_param(self.param.method, label="Model (table metrics)", width=270)
        self.basemap_select = pn.widgets.Select.from_param(self.param.basemap, label="Basemap", width=270)

    def _on_method(self, event) -> None:
        self.table.value = chip_table(self.run, method=event.new)
        if self.chip_id is not None:
            self.chip_info.object = self._chip_html(self.chip_id)

    def _on_selection(self, event) -> None:
        if not event.new:
            return
        idx = event.new[0]
        if 0 <= idx < len(self.table.value):
            self.select_chip(str(self.table.value["chip_id"].iloc[idx]))

    # ---------------------------------------------------------------- chip data
    def _run_file(self, rel_dir: str, chip_id: str, suffix: str) -> Path | None:
        """``<run_dir>/<rel_dir>/<chip_id><suffix>`` for a chip id from the tables, if it exists."""
        if not is_chip_id(chip_id):
            raise ValueError(f"chip id {chip_id!r} is not a '<Event>_<id>' name")
        folder = (self.run.run_dir / rel_dir).resolve()
        path = (folder / f"{chip_id}{suffix}").resolve()
        if path.parent != folder:
            raise ValueError(f"chip id {chip_id!r} would leave {folder}")
        return path if path.is_file() else None

    def _load(self, chip_id: str) -> dict:
        if chip_id in self._chip_cache:
            return self._chip_cache[chip_id]
        import rasterio

        from floodnb.data.io import load_chip

        row = self.run.catalog.loc[chip_id]
        chip = load_chip(row)
        shape = (chip.sizes["y"], chip.sizes["x"])
        pred = noise = None
        notes = []
        p = self._run_file(run_layout.PREDICTIONS, chip_id, "_pred.tif")
        if p is not None:
            with rasterio.open(p) as ds:
                a = ds.read(1, masked=True)
            pred = np.where(np.ma.getmaskarray(a), LABEL_NODATA, np.ma.getdata(a)).astype(np.int16)
            if pred.shape != shape:
                notes.append(f"prediction {p.name} has shape {pred.shape}, chip has {shape}: not shown")
                pred = None
        n = self._run_file(run_layout.NOISE_MAPS, chip_id, "_noise.tif")
        if n is not None:
            with rasterio.open(n) as ds:
                a = ds.read(1, masked=True).astype(np.float32)
            noise = np.ma.filled(a, np.nan)
            if noise.shape != shape:
                notes.append(f"noise map {n.name} has shape {noise.shape}, chip has {shape}: not shown")
                noise = None
        crs = chip.rio.crs if hasattr(chip, "rio") else None
        xs, ys = chip["x"].values, chip["y"].values
        rx = abs(float(xs[1] - xs[0])) if len(xs) > 1 else 1.0
        ry = abs(float(ys[1] - ys[0])) if len(ys) > 1 else 1.0
        bounds = (float(xs.min()) - rx / 2, float(ys.min()) - ry / 2,
                  float(xs.max()) + rx / 2, float(ys.max()) + ry / 2)
        entry: dict[str, Any] = dict(chip=chip, pred=pred, noise=noise, notes=notes,
                     merc=ml.mercator_bounds(bounds, crs if crs is not None else "EPSG:4326"), layers={})
        if len(self._chip_cache) >= 4:
            self._chip_cache.pop(next(iter(self._chip_cache)))
        self._chip_cache[chip_id] = entry
        return entry

    def _layer_data(self, chip_id: str, keys: tuple[str, ...]) -> dict[str, dict]:
        """Image data of layers ``keys`` of a chip for the Bokeh sources (computed, not applied)."""
        entry = self._load(chip_id)
        todo = tuple(k for k in keys if k not in entry["layers"])
        if todo:
            entry["layers"].update(ml.chip_layers(entry["chip"], pred=entry["pred"], noise=entry["noise"], keys=todo))
        x0, y0, x1, y1 = entry["merc"]
        out = {}
        for key in keys:
            rgba = entry["layers"][key]
            img = _EMPTY if rgba is None else ml.rgba_to_uint32(rgba)
            out[key] = dict(image=[img], x=[x0], y=[y0], dw=[x1 - x0], dh=[y1 - y0])
            spec = next(s for s in ml.LAYER_SPECS if s.key == key)
            self.toggles[key].label = spec.title if rgba is not None else f"{spec.title} (not available for this chip)"
            self._stale.discard(key)
        return out

    def _on_toggle(self, key: str, visible: bool) -> None:
        data = {}
        if visible and key in self._stale and self.chip_id is not None:
            data = self._layer_data(self.chip_id, (key,))

        def apply():
            for k, d in data.items():
                self.sources[k].data = d
            self.renderers[key].visible = visible

        self._on_doc(apply)

    def select_chip(self, chip_id: str) -> None:
        """Show chip ``chip_id`` (a value of the table's ``chip_id`` column) on the map."""
        if chip_id not in set(self.table.value["chip_id"]):
            raise ValueError(f"chip {chip_id!r} is not in this run's table")
        try:
            entry = self._load(chip_id)
            visible = tuple(k for k in ml.LAYER_KEYS if self.toggles[k].value)
            data = self._layer_data(chip_id, visible)
        except (OSError, ValueError) as exc:
            self._warn(f"cannot show chip {chip_id}: {exc}")
            return
        self.chip_id = chip_id
        hidden = set(ml.LAYER_KEYS) - set(visible)
        self._stale |= hidden  # filled when turned on
        x0, y0, x1, y1 = entry["merc"]
        cx, cy, half = (x0 + x1) / 2, (y0 + y1) / 2, max(x1 - x0, y1 - y0) * 0.55

        def apply():
            for k, d in data.items():
                self.sources[k].data = d
            for k in hidden:  # drop the previous chip's image
                self.sources[k].data = dict(image=[_EMPTY], x=[0.0], y=[0.0], dw=[1.0], dh=[1.0])
            self.figure.x_range.update(start=cx - half, end=cx + half)
            self.figure.y_range.update(start=cy - half, end=cy + half)
            self.figure.title.text = chip_id

        self._on_doc(apply)
        self.chip_info.object = self._chip_html(chip_id)
        if entry["notes"]:
            self._warn("; ".join(entry["notes"]))
        else:
            self.message.visible = False

    def _warn(self, text: str) -> None:
        self.message.object = html.escape(text, quote=False)
        self.message.visible = True

    # ---------------------------------------------------------------- text
    def _chip_html(self, chip_id: str) -> str:
        row = self.table.value[self.table.value["chip_id"] == chip_id].iloc[0]
        cat = self.run.catalog.loc[chip_id]
        items = [("chip", chip_id), ("event", row.get("event")), ("split", row.get("split"))]
        for col, label in (("s1_date", "S1 date"), ("s2_date", "S2 date")):
            if col in cat.index:
                items.append((label, cat[col]))
        method = self.method if self.method is not None else "–"
        items += [(f"water IoU (this chip, {method})", row.get("water_iou")),
                  ("water precision (this chip)", row.get("water_precision")),
                  ("water recall (this chip)", row.get("water_recall")),
                  ("valid pixels", row.get("valid_pixels")),
                  ("label-noise rate (this chip)", row.get("noise_rate")),
                  ("noise rank (1 = noisiest)", row.get("rank"))]
        body = "".join(f"<tr><th style='text-align:left;padding-right:1em'>{html.escape(k)}</th>"
                       f"<td>{_fmt(v)}</td></tr>" for k, v in items if v is not None)
        split = row.get("split")
        glob = self.run.metrics.get(self.method, {}) if self.method is not None else {}
        ctx = glob.get(split, {}) if isinstance(glob, dict) and isinstance(split, str) else {}
        extra = ""
        if isinstance(ctx, dict) and "water_iou" in ctx:
            extra = (f"<p><small>water IoU ({html.escape(str(split))} split, global confusion matrix, "
                     f"{html.escape(str(method))}): {_fmt(ctx['water_iou'])}</small></p>")
        return f"<table class='chip-metrics'>{body}</table>{extra}"

    def _summary_html(self) -> str:
        parts = []
        for m in self.run.methods:
            per_split = self.run.metrics.get(m, {})
            if isinstance(per_split, dict):
                vals = ", ".join(f"{html.escape(s)} {_fmt(v['water_iou'])}" for s, v in per_split.items()
                                 if isinstance(v, dict) and "water_iou" in v)
                if vals:
                    parts.append(f"<b>{html.escape(m)}</b>: {vals}")
        head = (f"<p>Run <b>{html.escape(self.run.name)}</b> — {len(self.table.value)} chips. "
                "Table sorted worst water IoU first (click a header to re-sort, a row to show the chip).</p>")
        if parts:
            head += "<p>water IoU per split (global confusion matrix): " + "; ".join(parts) + "</p>"
        return head

    def _formatters(self) -> dict:
        from bokeh.models.widgets.tables import NumberFormatter

        return {c: NumberFormatter(format="0.000") for c in
                ("water_iou", "water_precision", "water_recall", "noise_rate", "miou", "accuracy")}

    # ---------------------------------------------------------------- layout
    def _layout(self):
        """Header, sidebar (model, basemap, layers) and main area (map + chip metrics, table).

        A plain Panel layout on purpose: Panel's templates pull web fonts from a CDN.
        """
        header = pn.pane.HTML(
            f"<div style='font-size:1.5em;font-weight:600'>floodnb — run {html.escape(self.run.name)}</div>"
            "<div style='opacity:0.85'>Sentinel-1 flood map review: pick a chip in the table, "
            "compare layers on the map</div>",
            styles={"background": "#1f5fbf", "color": "white", "padding": "10px 18px"},
            sizing_mode="stretch_width", margin=0)
        sidebar = pn.Column(self.method_select, self.basemap_select, pn.pane.Markdown("### Layers"),
                            self.layer_controls, width=300, name="sidebar")
        main = pn.Column(
            self.message, pn.pane.HTML(self._summary_html(), sizing_mode="stretch_width"),
            pn.Row(self.map_pane, pn.Column(pn.pane.Markdown("### Selected chip"), self.chip_info,
                                            width=360)),
            pn.pane.Markdown("### Chips — worst water IoU first"), self.table,
            sizing_mode="stretch_width")
        return pn.Column(header, pn.Row(sidebar, main, sizing_mode="stretch_width"),
                         sizing_mode="stretch_width", name="floodnb-dashboard")


def build_dashboard(run_dir: str | Path, *, data_root: str | Path | None = None, chip: str | None = None,
                    method: str | None = None, basemap: str = "auto") -> pn.viewable.Viewable:
    """The dashboard of run ``run_dir`` as a Panel object (``.servable()`` it, or display it).

    ``data_root`` overrides the one in ``run.json``; ``chip`` picks the first chip shown (looked
    up in the run's table; unknown ids show a warning); ``method`` the model whose metrics fill
    the table (default: the student if present); ``basemap`` one of :data:`BASEMAPS`, or
    "auto": OpenStreetMap when its tiles are reachable from this machine, else none (offline the
    map works the same, without tiles; the basemap menu can still switch them on).
    Works served (``.servable()``, :func:`floodnb.viz.serve.serve_dashboard`) and in a notebook.
    """
    return Dashboard(load_run(run_dir, data_root=data_root), chip=chip, method=method,
                     basemap=basemap).view
