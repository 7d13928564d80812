"""The Bokeh map of one chip: layer renderers, an on-map legend, colour bars and a scale bar.

:func:`chip_map` builds a Web Mercator figure with one renderer per layer of
:data:`floodnb.viz.maplayers.LAYER_SPECS` over given data sources, so the live dashboard
(:mod:`floodnb.viz.dashboard`, ``image_rgba`` sources) and the offline HTML export
(:mod:`floodnb.viz.static_export`, PNG ``image_url`` sources) draw the same map:

* legend (top right, inside the map): one swatch per colour of each visible categorical layer
  (:attr:`~floodnb.viz.maplayers.LayerSpec.swatches`), entries hidden with their layer;
* colour bars (HTML under the map, :func:`colorbar_html`) for the continuous layers: S1
  backscatter (dB, grey), water probability (viridis, 0..1) and a continuous label-noise score
  (magma, 0..1); :func:`colorbars_shown` says which apply;
* scale bar: a round ground length drawn in map coordinates (corrected for the Mercator
  stretch at the chip's latitude, :func:`floodnb.viz.chip_arrays.scale_bar`).

:func:`set_visibility` shows/hides a layer together with its legend entries and colour bar.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from bokeh.models import ColumnDataSource, ImageRGBA, ImageURL, Range1d
from bokeh.models.annotations import Legend, LegendItem
from bokeh.models.renderers import GlyphRenderer
from bokeh.palettes import Greys256, Magma256, Viridis256
from bokeh.plotting import figure

from floodnb.bands import S1_DB_RANGE
from floodnb.viz import maplayers as ml

#: colour bars of continuous layers: name -> (title, palette, low, high)
COLORBARS: dict[str, tuple[str, tuple[str, ...], float, float]] = {
    "s1_db": ("S1 backscatter (dB)", tuple(Greys256), S1_DB_RANGE[0], S1_DB_RANGE[1]),
    "probability": ("water probability", tuple(Viridis256), 0.0, 1.0),
    "noise": ("label-noise score", tuple(Magma256), 0.0, 1.0),
}


@dataclass
class ChipMap:
    """A chip map: the figure, its layer renderers and legend items."""

    figure: Any  # bokeh.plotting.figure
    renderers: dict = field(default_factory=dict)
    legend_items: dict = field(default_factory=dict)  # layer key -> [LegendItem]
    scale_source: ColumnDataSource | None = None
    noise_binary: bool = True  # the current chip's noise map is a 0/1 mask (swatch), else a score (colour bar)


def chip_map(sources: dict[str, ColumnDataSource], *, glyph: str = "image_rgba", size: int = 500,
             name: str = "chip-map", legend: bool = True, toolbar: bool = True,
             scale_source: ColumnDataSource | None = None) -> ChipMap:
    """A Web Mercator figure drawing layer ``sources`` (bottom first, as in ``LAYER_SPECS``).

    ``glyph`` "image_rgba" (columns image, x, y, dw, dh) or "image_url" (columns url, x, y, w, h;
    the image's lower-left corner at x, y). ``size``: frame width and height in screen pixels.
    ``scale_source``: the scale bar's data (shared between maps of the same chip; new if None).
    """
    tools = "pan,wheel_zoom,box_zoom,reset,save,tap" if toolbar else "pan,wheel_zoom,reset"
    fig = figure(x_axis_type="mercator", y_axis_type="mercator", x_range=Range1d(start=0, end=1),
                 y_range=Range1d(start=0, end=1), frame_width=size, frame_height=size, tools=tools,
                 active_scroll="wheel_zoom", toolbar_location="above", name=name)
    fig.xaxis.major_label_text_font_size = fig.yaxis.major_label_text_font_size = "8pt"
    cm = ChipMap(fig)
    for spec in ml.LAYER_SPECS:
        src = sources[spec.key]
        r: Any
        if glyph == "image_rgba":
            g: Any = ImageRGBA(image="image", x="x", y="y", dw="dw", dh="dh", global_alpha=spec.alpha)
        else:
            g = ImageURL(url="url", x="x", y="y", w="w", h="h", global_alpha=spec.alpha)
            g.anchor = "bottom_left"
        # built directly rather than by fig.image_rgba: that adds explicit non-selection and muted
        # copies of every glyph (22 more models for the page to build; images are never selected)
        r = GlyphRenderer(data_source=src, glyph=g, name=f"layer-{spec.key}", visible=spec.visible)
        fig.renderers.append(r)
        cm.renderers[spec.key] = r
    cm.scale_source = scale_source or ColumnDataSource(dict(x0=[0.0], x1=[0.0], y=[0.0], label=[""], ty=[0.0]))
    fig.segment(x0="x0", x1="x1", y0="y", y1="y", source=cm.scale_source, line_width=4, line_color="black")
    fig.text(x="x0", y="ty", text="label", source=cm.scale_source, text_font_size="9pt", text_color="black",
             text_font_style="bold", text_baseline="bottom", background_fill_color="white",
             background_fill_alpha=0.7)
    if legend:
        _add_legend(cm)
    set_visibility(cm, {s.key: s.visible for s in ml.LAYER_SPECS})
    return cm


def _add_legend(cm: ChipMap) -> None:
    """One legend entry per swatch of every layer, all drawn by a single off-screen scatter.

    Each :class:`LegendItem` points at its row (``index``) of the one proxy renderer, so the
    legend costs one glyph renderer and data source instead of one per swatch (a dozen fewer
    ones for the page to build; every model counts on a new session's first render).
    """
    swatches = [(spec.key, label, color) for spec in ml.LAYER_SPECS for label, color in spec.swatches]
    n = len(swatches)
    proxy = cm.figure.scatter(x=[np.nan] * n, y=[np.nan] * n, marker="square", size=12,
                              color=[c for _, _, c in swatches], name="legend-swatches")
    items = []
    for spec in ml.LAYER_SPECS:
        cm.legend_items[spec.key] = []
    for i, (key, label, _) in enumerate(swatches):
        item = LegendItem(label=label, renderers=[proxy], index=i, visible=ml.SPECS[key].visible)
        cm.legend_items[key].append(item)
        items.append(item)
    leg = Legend(items=items, location="top_right", label_text_font_size="8pt", glyph_height=12, glyph_width=12,
                 spacing=0, background_fill_alpha=0.8, name="map-legend")
    leg.padding = 4  # type: ignore[assignment]  # bokeh stub: Property, an int at runtime
    cm.figure.add_layout(leg)


def set_visibility(cm: ChipMap, visible: dict[str, bool], *, noise_binary: bool | None = None) -> None:
    """Show/hide layers ``{key: bool}`` with their legend entries.

    ``noise_binary``: whether the current chip's noise map is a 0/1 mask (legend swatch) or a
    score (colour bar); ``None`` keeps the last choice (initially: the swatch).
    """
    if noise_binary is not None:
        cm.noise_binary = bool(noise_binary)
    binary = cm.noise_binary
    for key, on in visible.items():
        cm.renderers[key].visible = on
        for item in cm.legend_items.get(key, []):
            item.visible = on and (key != "noise" or binary)


def colorbars_shown(visible: dict[str, bool], *, noise_binary: bool) -> tuple[str, ...]:
    """Names of :data:`COLORBARS` that apply to the visible layers ``{key: bool}``."""
    on = {"s1_db": visible.get("s1", False) or visible.get("s1_vh", False),
          "probability": visible.get("probability", False),
          "noise": visible.get("noise", False) and not noise_binary}
    return tuple(k for k, v in on.items() if v)


def colorbar_html(names: tuple[str, ...]) -> str:
    """Horizontal colour bars (CSS gradients sampled from the palettes) with their ranges and titles."""
    parts = []
    for name in names:
        title, palette, low, high = COLORBARS[name]
        stops = ",".join(palette[int(i)] for i in np.linspace(0, len(palette) - 1, 12))
        parts.append(
            f"<div class='colorbar' data-name='{name}' style='display:inline-block;margin:0 14px 0 0;"
            f"font-size:11px'>{html.escape(title)}<br><span style='display:inline-block;width:150px;"
            f"height:10px;border:1px solid #888;background:linear-gradient(90deg,{stops})'></span><br>"
            f"<span style='display:inline-block;width:75px'>{low:g}</span>"
            f"<span style='display:inline-block;width:77px;text-align:right'>{high:g}</span></div>")
    return "".join(parts)
