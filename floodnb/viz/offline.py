"""Figures and maps that work with no network: local Bokeh/Panel JavaScript in Jupyter, inlined Leaflet in maps.

Two places need JavaScript that would otherwise come from public CDNs:

* **hvplot / HoloViews figures in a live Jupyter session.** :func:`notebook_extension` loads the
  Bokeh extension (``hv.extension('bokeh')``) and rewrites every CDN address that Bokeh and Panel
  put into notebook outputs (``https://cdn.bokeh.org/bokeh/release/...``,
  ``https://cdn.holoviz.org/panel/<version>/dist/...``) to the copies that the Jupyter server
  itself serves through Panel's server extension (``<base>/panel-preview/static/...``, installed
  and enabled with ``panel``). Nothing is embedded, so an executed notebook stays small (inlining
  would add about 6 MB of JavaScript to every notebook).
* **Leaflet maps** (:func:`offline_map`): a ``folium.Map`` without basemap tiles whose HTML carries
  Leaflet 1.9.4 (BSD-2-Clause, vendored in ``floodnb/viz/assets/leaflet/`` with its LICENSE)
  inline — no jQuery, Bootstrap or Font Awesome — so a saved ``.html`` file, the same map shown in
  a notebook output, or an emailed copy draws its data layers with no network. Basemap tiles are
  never available offline; such maps say so in a note on the map.
"""

from __future__ import annotations

import base64
import os
import re
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from branca.element import MacroElement
from jinja2 import Template

#: folder inside the package with the vendored Leaflet files
LEAFLET_DIR = "assets/leaflet"
LEAFLET_VERSION = "1.9.4"
#: text of the note drawn on maps without basemap tiles
NO_BASEMAP_NOTE = "no basemap (offline map): data layers only"

_BOKEH_CDN = re.compile(r"https://cdn\.bokeh\.org/bokeh/(?:release|dev)/(bokeh[a-z-]*?)-\d[\w.-]*?(\.min)?\.js")
_PANEL_CDN = re.compile(r"https://cdn\.holoviz\.org/panel/[^/\"'\s]+/dist/")


def _asset(name: str) -> bytes:
    path = resources.files("floodnb.viz").joinpath(f"{LEAFLET_DIR}/{name}")
    if not path.is_file():
        raise FileNotFoundError(f"floodnb package data {LEAFLET_DIR}/{name} is missing; reinstall floodnb "
                                "(it ships Leaflet's dist files as package data)")
    return path.read_bytes()


@cache
def leaflet_js() -> str:
    """Leaflet's ``leaflet.js`` (vendored, version :data:`LEAFLET_VERSION`)."""
    return _asset("leaflet.js").decode("utf-8")


@cache
def leaflet_css() -> str:
    """Leaflet's ``leaflet.css`` with its layer-control icons inlined as ``data:`` URLs."""
    css = _asset("leaflet.css").decode("utf-8")
    for img in ("layers.png", "layers-2x.png"):
        uri = "data:image/png;base64," + base64.b64encode(_asset(f"images/{img}")).decode("ascii")
        css = css.replace(f"url(images/{img})", f"url({uri})")
    return css


def offline_map(center: tuple[float, float], *, zoom: int = 9, note: str | None = NO_BASEMAP_NOTE) -> Any:
    """A ``folium.Map`` at ``center`` (lat, lon in degrees) with Leaflet inlined and no basemap tiles.

    Scale bar on; ``note`` (default :data:`NO_BASEMAP_NOTE`) is drawn in the bottom-left corner,
    ``None`` for none. Add layers as usual (``ImageOverlay``, ``Rectangle``, ``LayerControl``):
    every one of them is core Leaflet, so the saved HTML (``m.save``) and the notebook output
    (``m._repr_html_``) need no network.
    """
    import folium
    from branca.element import Element

    m = folium.Map(location=list(center), zoom_start=zoom, tiles=None, control_scale=True)
    # instance attributes shadow folium's CDN lists (leaflet, jquery, bootstrap, awesome-markers)
    m.default_js = []
    m.default_css = []
    header = m.get_root().header  # type: ignore[attr-defined]  # the root of a Map is a branca Figure
    header.add_child(Element(f"<style>{leaflet_css()}</style>"), name="leaflet_css_inline")
    header.add_child(Element(f"<script>{leaflet_js()}</script>"), name="leaflet_js_inline")
    if note:
        MapNote(note).add_to(m)
    return m


class MapNote(MacroElement):
    """A short text drawn in a corner of a Leaflet map (core ``L.control``, no plugin)."""

    _template = Template("""
{% macro script(this, kwargs) %}
var {{ this.get_name() }} = L.control({position: "bottomleft"});
{{ this.get_name() }}.onAdd = function () {
    var div = L.DomUtil.create("div", "floodnb-map-note");
    div.style.cssText = "background: rgba(255,255,255,0.85); padding: 2px 6px; font: 12px sans-serif;";
    div.textContent = {{ this.text|tojson }};
    return div;
};
{{ this.get_name() }}.addTo({{ this._parent.get_name() }});
{% endmacro %}
""")

    def __init__(self, text: str):
        super().__init__()
        self._name = "MapNote"
        self.text = str(text)


def local_url(text: str, base_url: str | None = None) -> str:
    """``text`` with Bokeh and Panel CDN addresses replaced by the Jupyter server's own copies.

    ``https://cdn.bokeh.org/bokeh/release/bokeh-widgets-3.9.2.min.js`` ->
    ``<base>panel-preview/static/js/bokeh-widgets.min.js``;
    ``https://cdn.holoviz.org/panel/1.9.4/dist/X`` -> ``<base>panel-preview/static/extensions/panel/X``.
    ``base_url``: the Jupyter server's base URL; default ``$JUPYTERHUB_SERVICE_PREFIX`` or ``/``.
    """
    base = base_url if base_url is not None else os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/")
    if not base.startswith("/"):
        raise ValueError(f"base_url must be an absolute path such as '/' or '/user/me/', got {base!r}")
    base = base if base.endswith("/") else base + "/"
    text = _BOKEH_CDN.sub(lambda m: f"{base}panel-preview/static/js/{m.group(1)}{m.group(2) or ''}.js", text)
    return _PANEL_CDN.sub(f"{base}panel-preview/static/extensions/panel/", text)


def _rewrite(data: Any, base_url: str | None) -> Any:
    if isinstance(data, str):
        return local_url(data, base_url)
    if isinstance(data, dict):
        return {k: _rewrite(v, base_url) for k, v in data.items()}
    return data


def _install_rewriter(ip, base_url: str | None) -> None:
    """Wrap the kernel's display publisher and display hook so every output goes through :func:`local_url`."""
    pub = ip.display_pub
    if not getattr(pub, "_floodnb_local", False):
        publish = pub.publish

        def local_publish(data, metadata=None, *args, **kwargs):
            return publish(_rewrite(data, base_url), metadata, *args, **kwargs)

        pub.publish = local_publish
        pub._floodnb_local = True
    hook = ip.displayhook
    if not getattr(hook, "_floodnb_local", False) and hasattr(hook, "write_format_data"):
        write = hook.write_format_data

        def local_write(format_dict, md_dict=None):
            return write(_rewrite(format_dict, base_url), md_dict)

        hook.write_format_data = local_write
        hook._floodnb_local = True


def notebook_extension(*, base_url: str | None = None) -> None:
    """Load HoloViews' Bokeh extension with JavaScript and CSS served by the Jupyter server (offline-safe).

    Call it once near the top of a notebook, before any hvplot import (the notebooks import
    ``hvplot`` only through :func:`ensure_hvplot` in :mod:`floodnb.viz` functions): the
    extension is loaded here, once, and figure cells publish no loader of their own. Outside
    IPython it raises ``RuntimeError``. Needs Panel's Jupyter server extension
    (``panel.io.jupyter_server_extension``, enabled by installing ``panel``), which serves Bokeh's
    and Panel's files under ``panel-preview/static/``.
    """
    try:
        from IPython import get_ipython
    except ImportError as exc:  # pragma: no cover - IPython comes with the notebook stack
        raise RuntimeError("notebook_extension needs IPython (run it inside a Jupyter kernel)") from exc
    ip = get_ipython()
    if ip is None:
        raise RuntimeError("notebook_extension must run inside a Jupyter/IPython kernel")
    _install_rewriter(ip, base_url)
    import holoviews as hv
    import holoviews.plotting.mpl  # noqa: F401  (for with_png; publishes nothing)
    import pandas as pd
    import xarray as xr

    registered = hasattr(pd.DataFrame, "hvplot") and hasattr(xr.DataArray, "hvplot")
    ensure_hvplot()  # the first import of hvplot.pandas loads the extension, through the rewriter
    if registered:  # this cell ran before: load again (a reloaded page needs the loader)
        hv.extension("bokeh", logo=False)


def ensure_hvplot() -> None:
    """Register the ``.hvplot`` accessors of pandas and xarray once, without reloading the extension.

    hvplot removes ``hvplot.pandas``/``hvplot.xarray`` from ``sys.modules`` before every IPython
    cell, so a plain ``import hvplot.pandas`` inside a plotting function re-imports the module and
    publishes the Bokeh/Panel loader again in every cell that draws. The accessors stay registered
    on the classes, so importing only when they are missing loads the extension at most once.
    """
    import pandas as pd
    import xarray as xr

    if not hasattr(pd.DataFrame, "hvplot"):
        import hvplot.pandas  # noqa: F401
    if not hasattr(xr.DataArray, "hvplot"):
        import hvplot.xarray  # noqa: F401


#: plot options carried from the Bokeh figure to its static PNG
_CARRIED = ("xlabel", "ylabel", "title", "xlim", "ylim")


#: environment variable: when true ("1", "true", "yes"), :func:`with_png` returns the static PNG
#: instead of the interactive figure. ``floodnb run`` sets it for the notebooks it executes, so the
#: executed notebooks it keeps hold images that render anywhere (nbconvert HTML, GitHub, e-mail),
#: with no JavaScript and no network; interactive sessions (JupyterLab) keep the Bokeh figures.
STATIC_ENV = "FLOODNB_STATIC_FIGURES"


def static_figures() -> bool:
    """Whether :data:`STATIC_ENV` asks for static figures in notebook outputs."""
    return os.environ.get(STATIC_ENV, "").strip().lower() in ("1", "true", "yes")


def _png_bytes(obj, dpi: int) -> bytes:
    """PNG of a HoloViews object through the matplotlib backend, carrying the Bokeh options over."""
    import holoviews as hv
    import holoviews.plotting.mpl  # noqa: F401  (registers the matplotlib renderer)

    def carry(el):
        opts = hv.Store.lookup_options("bokeh", el, "plot").kwargs
        keep = {k: opts[k] for k in _CARRIED if opts.get(k) not in (None, "")}
        if keep:
            el.opts(backend="matplotlib", **keep)

    obj.traverse(carry)
    renderer = hv.renderer("matplotlib").instance(dpi=dpi, fig="png")
    data, _ = renderer(obj, fmt="png")
    return data


def figure_or_png(obj, *, dpi: int = 72):
    """``obj`` (an interactive HoloViews/hvplot figure) for display, or in static mode
    (:func:`static_figures`) a PNG of that same figure (HoloViews' matplotlib backend, as
    :func:`with_png`) as ``IPython.display.Image``, written nowhere: for figures whose file copy is
    drawn separately (e.g. a full-resolution matplotlib figure), so notebooks show the light view.
    """
    if not static_figures():
        return obj
    from IPython.display import Image

    return Image(data=_png_bytes(obj, dpi), format="png")


def with_png(obj, path: str | Path, *, dpi: int = 100):
    """Write a static PNG of a HoloViews/hvplot object beside it; return the object, or the PNG in static mode.

    The PNG is drawn by HoloViews' matplotlib backend, with the Bokeh figure's axis labels,
    title and limits carried over, and written atomically (:func:`floodnb.io_utils.atomic_path`):
    a copy of every interactive notebook figure that any image viewer opens, offline and
    outside Jupyter. ``path`` must end in ``.png``. Returns ``obj`` unchanged, or an
    ``IPython.display.Image`` of the PNG when :func:`static_figures` (``$FLOODNB_STATIC_FIGURES``,
    set by ``floodnb run`` for headless executions).
    """
    from floodnb.io_utils import atomic_path

    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"figure path must end in .png, got {str(path)!r}")

    data = _png_bytes(obj, dpi)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    if static_figures():
        from IPython.display import Image

        return Image(data=data, format="png")
    return obj


__all__ = ["LEAFLET_VERSION", "NO_BASEMAP_NOTE", "leaflet_css", "leaflet_js", "local_url", "notebook_extension",
           "ensure_hvplot", "figure_or_png", "offline_map", "STATIC_ENV", "static_figures", "with_png"]
