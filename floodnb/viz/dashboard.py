"""Panel dashboard of one ``floodnb run``: pick a chip from the worst-first table, inspect it on a map.

:func:`build_dashboard` returns a Panel layout for a run directory written by ``floodnb run``::

    runs/<name>/run.json                                   data_root, params, stages
    runs/<name>/02_weak_labels_and_noise/noise_chips.csv   chip_id, event, split, noise_rate, <scores>, rank
    runs/<name>/02_weak_labels_and_noise/noise_maps/<chip_id>_noise.tif   per-pixel noise map 0..1
    runs/<name>/05_evaluate/per_chip.csv                   chip_id, event, split, method, water_iou, ...
    runs/<name>/05_evaluate/metrics.json                   {method: {split: {water_iou, miou, ...}}}
    runs/<name>/05_evaluate/predictions[/<method>]/<chip_id>_pred.tif, _prob.tif   each model's prediction

Chip imagery (S1 dB, S2, hand label, weak labels) is read from the data root recorded in
``run.json`` (:mod:`floodnb.viz.chip_arrays`). Files are only ever opened by looking a chip id
and a model up in these tables: nothing a browser sends becomes part of a path.

Layout (fits 1280 x 720 with the map always in view): a sidebar (model, probability threshold,
basemap, layers grouped in collapsible cards, each with a toggle, a colour swatch and an opacity
slider), the map (Bokeh, Web Mercator; on-map legend, colour bars, scale bar; a "Side by side"
tab with two linked maps, e.g. prediction vs hand label or S1 vs S2) and a right column (selected
chip, pixel values read by clicking the map, exports, filters by event/split/chip id, the chip
table). The model selector switches both the table's metrics and the Prediction/probability
layers (each model's saved prediction; a model without saved predictions says so in the layer's
title). Offline the basemap tiles stay blank while everything else works. Only visible layers are
computed and sent to the browser; a layer turned on later is filled then.

A chip switch starts on the row's click and reaches the browser as two document patches: the
maps' changes (images, ranges, title, legend), then the texts and widgets. Chip arrays and layer
images come from a :class:`~floodnb.viz.layer_cache.LayerCache` (served: one per server, shared by
its sessions); after a switch the table's next rows and the previous one are loaded into it on a
background thread, so stepping through the worst-first table finds the next chip ready. The
side-by-side maps are built when their tab first opens.
"""

from __future__ import annotations

import functools
import html
from pathlib import Path

import numpy as np
import pandas as pd
import panel as pn
import param
from bokeh.events import Tap
from bokeh.models import ColumnDataSource, WMTSTileSource
from panel.io.document import unlocked

from floodnb.runs import layout as run_layout
from floodnb.viz import dashboard_text as text
from floodnb.viz import maplayers as ml
from floodnb.viz.chip_arrays import ChipArrays, pixel_values, scale_bar
from floodnb.viz.dashboard_exports import ExportPanel
from floodnb.viz.layer_cache import LayerCache
from floodnb.viz.mapfigure import ChipMap, chip_map, colorbar_html, colorbars_shown, set_visibility
from floodnb.viz.run_data import (  # noqa: F401  (the run's tables, re-exported for existing imports)
    EVAL_DIR,
    METRICS_FILE,
    NOISE_DIR,
    NOISE_TABLE,
    PER_CHIP_TABLE,
    RunData,
    chip_table,
    hidden_columns,
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



#: screen sizes (px) chosen so header + map fit a 1280 x 720 viewport
MAP_PX, COMPARE_PX, SIDEBAR_W, RIGHT_W, BODY_H = 470, 250, 250, 440, 660
_EMPTY = np.zeros((1, 1), np.uint32)
_ALL = "all"


def _empty_image() -> dict:
    return dict(image=[_EMPTY], x=[0.0], y=[0.0], dw=[1.0], dh=[1.0])


class Dashboard(param.Parameterized):
    """One session's dashboard: widgets, the Bokeh maps and the callbacks between them.

    ``view`` is the servable Panel layout; :meth:`select_chip` moves the maps to a chip (the
    table's row selection calls it too). ``sources[key]`` holds the image of layer ``key``,
    shared by the main map and the two side-by-side maps. ``cache``: where chips and layer
    images are kept (a new :class:`~floodnb.viz.layer_cache.LayerCache` if None); ``prefetch``:
    how many table rows after the shown chip (plus the one before) are loaded in the
    background after each switch (0: none).
    """

    method: param.Selector[str | None] = param.Selector(default=None, objects=[None],
                                                       doc="model whose metrics fill the table and whose "
                                                           "prediction the map shows")
    basemap: param.Selector[str] = param.Selector(default="OpenStreetMap", objects=list(BASEMAPS))
    threshold = param.Number(default=0.5, bounds=(0.0, 1.0), doc="water-probability layer: drawn where >= this")

    def __init__(self, run: RunData, *, chip: str | None = None, method: str | None = None,
                 basemap: str = "auto", cache: LayerCache | None = None, prefetch: int = 2):
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
        if int(prefetch) < 0:
            raise ValueError(f"prefetch must be >= 0 table rows, got {prefetch}")
        self.cache = cache if cache is not None else LayerCache()
        self.prefetch = int(prefetch)
        self._stale: set[str] = set()
        self._full = chip_table(run, method=self.method)
        self.message = pn.pane.Alert("", alert_type="warning", visible=False, sizing_mode="stretch_width")
        self._build_maps()
        self._build_controls()
        self._build_table()
        self.chip_info = pn.pane.HTML("", sizing_mode="stretch_width", name="chip-metrics")
        self.pixel_info = pn.pane.HTML(text.pixel_html(None), sizing_mode="stretch_width", name="pixel-values")
        self.exports = ExportPanel(self, width=RIGHT_W - 20)
        self.param.watch(self._on_method, "method")
        self.param.watch(self._on_basemap, "basemap")
        self.param.watch(self._on_threshold, "threshold")
        known = chip is not None and chip in set(self._full["chip_id"])
        start = chip if known else (str(self.table.value["chip_id"].iloc[0]) if len(self.table.value) else None)
        if start is not None:
            self.select_chip(start, prefetch=False)
            pn.state.onload(functools.partial(self._after_load, start))  # served: once the page is shown
        if chip is not None and not known:  # a ?chip= argument: looked up, never used as a path
            self._warn(f"chip {chip!r} is not in this run's table; showing the worst chip instead")
        self.view = self._layout()

    def _after_load(self, chip_id: str) -> None:
        """Once the page is shown: prefetch around the first chip; warm the chip panel.

        Served, Panel resolves the chip panel's stylesheets on its first update in a session, and
        that change makes Bokeh re-index every model of the document (0.1-0.3 s here): done now,
        not during the reviewer's first chip switch. Its text is unchanged.
        """
        self.chip_info.param.trigger("object")
        self._prefetch_around(chip_id)

    @property
    def full_table(self) -> pd.DataFrame:
        """The selected model's chip table before the event/split/search filters."""
        return self._full

    # ---------------------------------------------------------------- maps
    def _build_maps(self) -> None:
        self.sources: dict[str, ColumnDataSource] = {k: ColumnDataSource(_empty_image()) for k in ml.LAYER_KEYS}
        self.map = chip_map(self.sources, size=MAP_PX)
        self.figure, self.renderers = self.map.figure, self.map.renderers
        self.tiles = self.figure.add_tile(WMTSTileSource(url=OSM_TILES, attribution=_ATTRIBUTION["OpenStreetMap"]))
        self.figure.renderers.insert(0, self.figure.renderers.pop())  # tiles under every layer
        self._apply_basemap(self.basemap)
        self.figure.on_event(Tap, self._on_tap)
        self.compare: dict[str, ChipMap] = {}  # the side-by-side maps, built when their tab first opens
        self.compare_maps = pn.Row(name="compare-maps", margin=0)
        self.map_pane = pn.pane.Bokeh(self.figure, name="map")
        self.colorbars = pn.pane.HTML("", margin=(0, 5, 0, 60), name="colorbars")
        self.compare_choice = {
            side: pn.widgets.Select(label=f"{side} map", options={s.title: s.key for s in ml.LAYER_SPECS},
                                    value=default, width=COMPARE_PX)
            for side, default in (("left", "prediction"), ("right", "label"))}
        for side, sel in self.compare_choice.items():
            sel.param.watch(lambda e, sd=side: self._on_compare(sd), "value")

    def _build_compare(self) -> None:
        """The two side-by-side maps (once): the main map's sources, ranges, scale bar and opacities.

        Built on demand because two more Bokeh figures cost a new session about as much time as
        the rest of the page.
        """
        if self.compare:
            return
        binary = self._entry_binary()
        for side in ("left", "right"):
            cm = chip_map(self.sources, size=COMPARE_PX, name=f"compare-{side}", toolbar=False,
                          scale_source=self.map.scale_source)
            cm.figure.x_range, cm.figure.y_range = self.figure.x_range, self.figure.y_range
            cm.figure.axis.visible = False
            for key, slider in self.opacity.items():
                cm.renderers[key].glyph.global_alpha = slider.value
            set_visibility(cm, self._compare_visible(side), noise_binary=binary)
            cm.figure.on_event(Tap, self._on_tap)
            self.compare[side] = cm
        self.compare_maps.objects = [pn.pane.Bokeh(self.compare[s].figure) for s in ("left", "right")]

    def _on_compare_tab(self, event) -> None:
        if event.new == 1:
            self._build_compare()
            for side in self.compare:
                self._on_compare(side)

    def _on_doc(self, fn) -> None:
        """Run ``fn`` (which changes Bokeh models and widgets) where the browser will see it.

        Served, Panel calls widget watchers without Bokeh's document lock, and raw Bokeh model
        changes made there never reach the browser by themselves: Panel's ``unlocked`` holds the
        document while ``fn`` runs and then sends every change it made as one patch message.
        Elsewhere in a served session a next-tick callback runs ``fn`` under the lock. Before the
        page exists (building it, tests, notebooks) ``fn`` runs at once.
        """
        doc = self.figure.document
        if doc is None or getattr(doc, "session_context", None) is None:
            fn()
        elif getattr(pn.state, "_unblocked", lambda _doc: False)(doc):  # private in Panel 1.x: absent -> next tick
            with unlocked():
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

    def _compare_visible(self, side: str) -> dict[str, bool]:
        """Layers the side-by-side map ``side`` draws: its chosen layer, over S1 VV for overlays."""
        choice = self.compare_choice[side].value
        base = {"s1"} if ml.SPECS[choice].group != "Imagery" else set()
        return {k: k in base | {choice} for k in ml.LAYER_KEYS}

    def _compare_shown(self) -> bool:
        tabs = getattr(self, "map_tabs", None)
        return tabs is not None and tabs.active == 1

    def _needed(self) -> tuple[str, ...]:
        """Layers some map draws now (main map toggles; both side-by-side choices while that tab is open)."""
        on = {k for k in ml.LAYER_KEYS if self.toggles[k].value}
        for side in self.compare_choice if self._compare_shown() else ():
            on |= {k for k, v in self._compare_visible(side).items() if v}
        return tuple(k for k in ml.LAYER_KEYS if k in on)

    def _on_compare(self, side: str) -> None:
        if side not in self.compare:  # not built yet: done when the tab opens
            return
        data = {}
        if self.chip_id is not None:
            stale = tuple(k for k, v in self._compare_visible(side).items() if v and k in self._stale)
            data = self._layer_data(self.chip_id, stale) if stale else {}
        binary = self._entry_binary()

        def apply():
            self._apply_layers(data)
            set_visibility(self.compare[side], self._compare_visible(side), noise_binary=binary)

        self._on_doc(apply)

    def _on_tap(self, event) -> None:
        if self.chip_id is None:
            return
        entry = self._load(self.chip_id)
        self.pixel_info.object = text.pixel_html(pixel_values(entry, float(event.x), float(event.y)))
        self.info_tabs.active = 1

    # ---------------------------------------------------------------- controls
    def _layer_row(self, spec: ml.LayerSpec) -> pn.Row:
        cb = pn.widgets.Checkbox(label=spec.title, value=spec.visible, width=162, margin=(4, 2, 0, 4))
        sl = pn.widgets.FloatSlider(start=0.0, end=1.0, step=0.05, value=spec.alpha, show_value=False,
                                    width=40, margin=(2, 2, 0, 2))
        colors = [c for _, c in spec.swatches] or ["linear-gradient(90deg,#000,#fff)"]
        swatch = "".join(f"<span style='display:inline-block;width:9px;height:12px;background:{c}'></span>"
                         for c in colors)
        cb.param.watch(lambda e, k=spec.key: self._on_toggle(k, e.new), "value")
        sl.param.watch(lambda e, k=spec.key: self._on_doc(functools.partial(self._set_alpha, k, e.new)), "value")
        self.toggles[spec.key], self.opacity[spec.key] = cb, sl
        tip = html.escape(spec.legend, quote=True)
        return pn.Row(cb, pn.pane.HTML(f"<div title='{tip}'>{swatch}</div>", width=22, margin=(6, 0, 0, 0)), sl,
                      margin=0)

    def _set_alpha(self, key: str, alpha: float) -> None:
        for cm in (self.map, *self.compare.values()):
            cm.renderers[key].glyph.global_alpha = alpha

    def _build_controls(self) -> None:
        self.toggles: dict[str, pn.widgets.Checkbox] = {}
        self.opacity: dict[str, pn.widgets.FloatSlider] = {}
        self.layer_cards = {}
        for group in ml.GROUPS:
            rows = [self._layer_row(s) for s in ml.LAYER_SPECS if s.group == group]
            self.layer_cards[group] = pn.Card(*rows, header=pn.pane.HTML(f"<b>{group}</b>", margin=(0, 4)),
                                              collapsed=group == "Diagnostics", width=SIDEBAR_W - 12,
                                              margin=(2, 2), name=f"layers-{group}")
        self.layer_controls = pn.Column(*self.layer_cards.values(), name="layers", margin=0)
        self.method_select = pn.widgets.Select.from_param(self.param.method, label="Model (table and map)",
                                                          width=SIDEBAR_W - 20)
        self.threshold_slider = pn.widgets.FloatSlider.from_param(
            self.param.threshold, label="Water-probability threshold", step=0.05, width=SIDEBAR_W - 20)
        self.basemap_select = pn.widgets.Select.from_param(self.param.basemap, label="Basemap", width=SIDEBAR_W - 20)

    def _build_table(self) -> None:
        events = sorted(str(e) for e in self._full["event"].dropna().unique())
        splits = sorted(str(s) for s in self._full["split"].dropna().unique())
        self.event_filter = pn.widgets.Select(label="event", options=[_ALL, *events], value=_ALL, width=120)
        self.split_filter = pn.widgets.Select(label="split", options=[_ALL, *splits], value=_ALL, width=100)
        self.search = pn.widgets.TextInput(label="chip id", placeholder="search…", width=170)
        for w in (self.event_filter, self.split_filter):
            w.param.watch(self._on_filter, "value")
        self.search.param.watch(self._on_filter, "value_input")
        self.table = pn.widgets.Tabulator(
            self._filtered(), selectable=1, disabled=True, show_index=False, pagination="local", page_size=8,
            width=RIGHT_W - 10, height=300, layout="fit_columns", widths={"chip_id": 130},
            formatters=text.formatters(),
            titles=dict(text.TITLES), hidden_columns=hidden_columns(self._full))
        self.table.param.watch(self._on_selection, "selection")
        self.table.on_click(self._on_cell_click)

    def _filtered(self) -> pd.DataFrame:
        t = self._full
        if self.event_filter.value != _ALL:
            t = t[t["event"] == self.event_filter.value]
        if self.split_filter.value != _ALL:
            t = t[t["split"] == self.split_filter.value]
        q = (self.search.value_input or "").strip().lower()
        if q:
            t = t[t["chip_id"].str.lower().str.contains(q, regex=False)]
        return t.reset_index(drop=True)

    def _on_filter(self, event) -> None:
        self.table.selection = []
        self.table.value = self._filtered()
        self.summary.object = self._summary()
        self.exports.update()

    def _on_method(self, event) -> None:
        self._full = chip_table(self.run, method=event.new)
        self.table.selection = []
        self.table.value = self._filtered()
        self.table.hidden_columns = hidden_columns(self._full)
        if self.chip_id is not None:
            self.select_chip(self.chip_id)

    def _on_threshold(self, event) -> None:
        self._stale.add("probability")  # the cache keys images by threshold: recomputed, never stale
        if "probability" in self._needed() and self.chip_id is not None:
            data = self._layer_data(self.chip_id, ("probability",))
            self._on_doc(functools.partial(self._apply_layers, data))

    def _on_selection(self, event) -> None:
        if event.new:
            self._show_row(event.new[0])

    def _on_cell_click(self, event) -> None:
        """A click on a row: the browser sends it before the row's selection change (the same
        chip, then already shown), so the switch starts one message earlier.
        """
        self._show_row(event.row)

    def _show_row(self, idx: int) -> None:
        if 0 <= idx < len(self.table.value):
            chip_id = str(self.table.value["chip_id"].iloc[idx])
            if chip_id != self.chip_id:
                self.select_chip(chip_id)

    # ---------------------------------------------------------------- chip data
    def _load(self, chip_id: str) -> ChipArrays:
        return self.cache.chip(self.run, chip_id, self.method)

    def _prefetch_around(self, chip_id: str) -> None:
        """Load the :attr:`prefetch` table rows after ``chip_id`` and the one before it, in the background."""
        ids = [str(c) for c in self.table.value["chip_id"]]
        if self.prefetch <= 0 or chip_id not in ids:
            return
        i = ids.index(chip_id)
        rows = [j for j in (*range(i + 1, i + 1 + self.prefetch), i - 1) if 0 <= j < len(ids)]
        self.cache.prefetch(self.run, [ids[j] for j in rows], self.method, self._needed(),
                            threshold=float(self.threshold))

    def _entry_binary(self) -> bool | None:
        if self.chip_id is None:
            return None
        noise = self._load(self.chip_id).noise
        return None if noise is None else ml.noise_is_binary(noise)

    def _prediction_note(self, entry: ChipArrays) -> str:
        model = self.method or run_layout.PREDICTIONS_DEFAULT_METHOD
        return model if entry.pred is not None else f"{model}: no prediction saved in this run"

    def _layer_data(self, chip_id: str, keys: tuple[str, ...]) -> dict[str, tuple[dict, str]]:
        """Layer ``key`` -> (Bokeh source data, toggle title) of a chip (computed, not applied)."""
        entry = self._load(chip_id)
        images = self.cache.images(self.run, chip_id, self.method, keys, threshold=float(self.threshold))
        x0, y0, x1, y1 = entry.merc
        out = {}
        for key in keys:
            img = images[key]
            title = ml.SPECS[key].title
            if key in ("prediction", "probability"):
                title = f"{title} ({self._prediction_note(entry)})"
            if img is None and key != "prediction":
                title = f"{title} (not available for this chip)"
            data = dict(image=[_EMPTY if img is None else img], x=[x0], y=[y0], dw=[x1 - x0], dh=[y1 - y0])
            out[key] = (data, title)
            self._stale.discard(key)
        return out

    def _apply_layers(self, layers: dict[str, tuple[dict, str]]) -> None:
        """Put :meth:`_layer_data`'s images into the sources and titles on the toggles."""
        for key, (data, title) in layers.items():
            self.sources[key].data = data
            self.toggles[key].label = title

    def _on_toggle(self, key: str, visible: bool) -> None:
        data = {}
        if visible and key in self._stale and self.chip_id is not None:
            data = self._layer_data(self.chip_id, (key,))
        binary = self._entry_binary()

        def apply():
            self._apply_layers(data)
            set_visibility(self.map, {key: visible}, noise_binary=binary)
            self._update_colorbars(binary)

        self._on_doc(apply)

    def _update_colorbars(self, binary: bool | None) -> None:
        shown = {k: self.toggles[k].value for k in ml.LAYER_KEYS}
        self.colorbars.object = colorbar_html(colorbars_shown(shown, noise_binary=binary is not False))

    def select_chip(self, chip_id: str, *, prefetch: bool = True) -> None:
        """Show chip ``chip_id`` (a value of the run's chip table) on the maps.

        ``prefetch``: then load the neighbouring table rows in the background (:attr:`prefetch`).
        """
        if chip_id not in set(self._full["chip_id"]):
            raise ValueError(f"chip {chip_id!r} is not in this run's table")
        try:
            entry = self._load(chip_id)
            needed = self._needed()
            data = self._layer_data(chip_id, needed)
        except (OSError, ValueError) as exc:
            self._on_doc(functools.partial(self._warn, f"cannot show chip {chip_id}: {exc}"))
            return
        self.chip_id = chip_id
        hidden = set(ml.LAYER_KEYS) - set(needed)
        self._stale |= hidden  # filled when turned on
        self._on_doc(functools.partial(self._show, chip_id, entry, data, hidden))
        self._on_doc(functools.partial(self._show_text, entry, self._chip_html(chip_id, entry)))
        if prefetch:
            self._prefetch_around(chip_id)

    def _show(self, chip_id: str, entry: ChipArrays, data: dict[str, tuple[dict, str]], hidden: set[str]) -> None:
        """The maps' changes of a chip switch: one patch to the browser under :meth:`_on_doc`."""
        x0, y0, x1, y1 = entry.merc
        cx, cy, half = (x0 + x1) / 2, (y0 + y1) / 2, max(x1 - x0, y1 - y0) * 0.55
        binary = None if entry.noise is None else ml.noise_is_binary(entry.noise)
        self._apply_layers(data)
        for k in hidden:  # drop the previous chip's image (once: an emptied source stays as it is)
            if self.sources[k].data["image"][0] is not _EMPTY:
                self.sources[k].data = _empty_image()
        self.figure.x_range.update(start=cx - half, end=cx + half)
        self.figure.y_range.update(start=cy - half, end=cy + half)
        self.figure.title.text = chip_id
        if self.map.scale_source is not None:
            self.map.scale_source.data = scale_bar(entry.merc, entry.lat)
        set_visibility(self.map, {k: self.toggles[k].value for k in ml.LAYER_KEYS}, noise_binary=binary)
        for side, cm in self.compare.items():
            set_visibility(cm, self._compare_visible(side), noise_binary=binary)
        self._update_colorbars(binary)

    def _show_text(self, entry: ChipArrays, chip_html: str) -> None:
        """The texts and widgets of a chip switch, a second patch (the browser draws the map first)."""
        self.chip_info.object = chip_html
        self.pixel_info.object = text.pixel_html(None)
        self.exports.update()
        if entry.notes:
            self._warn("; ".join(entry.notes))
        else:
            self.message.visible = False

    def _warn(self, message: str) -> None:
        self.message.object = html.escape(message, quote=False)
        self.message.visible = True

    # ---------------------------------------------------------------- text
    def _chip_html(self, chip_id: str, entry: ChipArrays) -> str:
        row = self._full[self._full["chip_id"] == chip_id].iloc[0]
        glob = self.run.metrics.get(self.method, {}) if self.method is not None else {}
        return text.chip_html(row, self.run.catalog.loc[chip_id], method=self.method,
                              prediction_note=self._prediction_note(entry), split_metrics=glob)

    def _summary(self) -> str:
        return text.summary_html(self.run.name, self.run.methods, self.run.metrics, len(self.table.value))

    # ---------------------------------------------------------------- layout
    def _layout(self):
        """Header; sidebar (model, threshold, basemap, layer cards); map tabs; right column (chip, table).

        Fixed heights keep the map in view at 1280 x 720: the sidebar and the right column scroll
        on their own. A plain Panel layout on purpose: Panel's templates pull web fonts from a CDN.
        """
        header = pn.pane.HTML(
            f"<span style='font-size:1.2em;font-weight:600'>floodnb — run {html.escape(self.run.name)}</span>"
            "<span style='opacity:0.85'>&nbsp;&nbsp;Sentinel-1 flood map review</span>",
            styles={"background": "#1f5fbf", "color": "white", "padding": "6px 14px"},
            sizing_mode="stretch_width", height=36, margin=0)
        sidebar = pn.Column(self.method_select, self.threshold_slider, self.basemap_select,
                            pn.pane.HTML("<b>Layers</b> <small>(hover a swatch for its meaning)</small>",
                                         margin=(4, 5, 0, 5)),
                            self.layer_controls, width=SIDEBAR_W, height=BODY_H, scroll=True, name="sidebar")
        compare = pn.Column(
            pn.pane.HTML("<small>Two linked maps: pan or zoom one, the other follows.</small>", margin=(2, 5)),
            pn.Row(self.compare_choice["left"], self.compare_choice["right"]),
            self.compare_maps, name="compare")
        self.map_tabs = pn.Tabs(("Map", pn.Column(self.map_pane, self.colorbars, margin=0)), ("Side by side", compare),
                                dynamic=True, margin=0)
        self.map_tabs.param.watch(self._on_compare_tab, "active")
        self.summary = pn.pane.HTML(self._summary(), sizing_mode="stretch_width", margin=(0, 5))
        self.info_tabs = pn.Tabs(("Selected chip", pn.Column(self.chip_info, height=215, scroll=True)),
                                 ("Pixel", self.pixel_info), *self._extra_tabs(), dynamic=True, height=255,
                                 width=RIGHT_W - 10)
        right = pn.Column(self.message, self.info_tabs,
                          pn.Row(self.event_filter, self.split_filter, self.search, margin=0),
                          self.summary, self.table, width=RIGHT_W, height=BODY_H, scroll=True, name="right")
        return pn.Column(header, pn.Row(sidebar, self.map_tabs, right), name="floodnb-dashboard", margin=0)

    def _extra_tabs(self) -> list:
        return [("Export", self.exports.view)]


def build_dashboard(run_dir: str | Path, *, data_root: str | Path | None = None, chip: str | None = None,
                    method: str | None = None, basemap: str = "auto") -> pn.viewable.Viewable:
    """The dashboard of run ``run_dir`` as a Panel object (``.servable()`` it, or display it).

    ``data_root`` overrides the one in ``run.json``; ``chip`` picks the first chip shown (looked
    up in the run's table; unknown ids show a warning); ``method`` the model whose metrics fill
    the table and whose prediction the map shows (default: the student if present); ``basemap``
    one of :data:`BASEMAPS`, or "auto": OpenStreetMap when its tiles are reachable from this
    machine, else none (offline the map works the same, without tiles; the basemap menu can
    still switch them on). Works served (``.servable()``, :func:`floodnb.viz.serve.serve_dashboard`)
    and in a notebook.
    """
    return Dashboard(load_run(run_dir, data_root=data_root), chip=chip, method=method,
                     basemap=basemap).view
