"""Serve a run's dashboard with Panel's server: local by default, own JS/CSS, optional basic auth.

:func:`serve_dashboard` starts a Bokeh/Panel server for :func:`floodnb.viz.dashboard.build_dashboard`:

* binds ``127.0.0.1`` unless another ``address`` is given explicitly; a wildcard address
  (``0.0.0.0``/``::``) needs ``websocket_origin`` naming the host clients will use;
* every JS/CSS file comes from the server itself (Bokeh ``server`` resources, Panel's bundled
  extensions, a login page without CDN assets) so the app works without internet;
* ``basic_auth`` (a password, or a JSON file ``{"user": "password"}``) puts Panel's built-in
  login in front of the app, with signed cookies (``cookie_secret``, random per start unless
  given);
* each browser session builds its own :class:`~floodnb.viz.dashboard.Dashboard` over tables read
  once (:func:`~floodnb.viz.run_data.load_run`) and one :class:`~floodnb.viz.layer_cache.LayerCache`
  of chip arrays and layer images shared by every session; one throwaway dashboard is built before
  the port opens (:func:`warm_up`), so the first visitor does not pay the first-use costs. The
  only request data the app uses is the ``chip`` query argument, which is looked up in the run's
  table; the server has no static folder of its own, so no URL maps onto the run directory or the
  data root;
* Panel's ``/components/<module>/...`` route, which imports any installed module named in the
  URL (unauthenticated), is replaced by :func:`component_route`: it serves only resources of
  ``panel`` modules that are already imported, and imports nothing.
"""

from __future__ import annotations

import ipaddress
import secrets
import socket
import sys
from pathlib import Path

LOGIN_TEMPLATE = Path(__file__).with_name("login.html")


def free_port(address: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``address`` right now (the OS picks it)."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((address, 0))
        return int(s.getsockname()[1])


def _is_loopback(address: str) -> bool:
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def _is_wildcard(address: str) -> bool:
    return address in ("0.0.0.0", "::", "")


#: module prefix whose component resources (CSS/JS listed on Panel components) may be served
COMPONENT_MODULES: tuple[str, ...] = ("panel",)


def component_route() -> tuple:
    """Tornado route ``(pattern, handler, kwargs)`` that shadows Panel's ``/components/`` route.

    Panel's ``ComponentResourceHandler`` runs ``importlib.import_module(<first URL segment>)``
    for any request, before authentication, so any installed module could be imported by a URL.
    This handler answers 404 unless the module is ``panel`` or a ``panel.`` submodule that is
    already in ``sys.modules``; such requests are handed to Panel's handler unchanged (its own
    check that the file is listed on the component still applies). Put it before Panel's routes.
    """
    from panel.io.resources import COMPONENT_PATH
    from panel.io.server import ComponentResourceHandler
    from tornado.web import HTTPError

    class LoadedPanelComponentHandler(ComponentResourceHandler):
        def parse_url_path(self, path: str) -> str:
            mod = path.split("/", 1)[0]
            allowed = any(mod == m or mod.startswith(m + ".") for m in COMPONENT_MODULES)
            if not allowed or mod not in sys.modules:
                raise HTTPError(404, "Module not found")
            return super().parse_url_path(path)

    return (f"/{COMPONENT_PATH}(.*)", LoadedPanelComponentHandler, {})


def serve_dashboard(run_dir: str | Path, *, address: str = "127.0.0.1", port: int = 0,
                    basic_auth: str | None = None, cookie_secret: str | None = None,
                    websocket_origin: list[str] | None = None, data_root: str | Path | None = None,
                    method: str | None = None, basemap: str = "auto", show: bool = False,
                    start: bool = True, verbose: bool = True, prefix: str = "", use_xheaders: bool = False):
    """Serve the dashboard of ``run_dir`` at ``http://address:port/``; returns the Bokeh server.

    ``port=0`` picks a free port (read it from ``server.port``). ``start=True`` runs the IO loop
    and blocks until interrupted; ``start=False`` returns the started-but-not-looping server (for
    embedding). ``prefix`` (e.g. ``/floods``) serves every route under that path, for a reverse
    proxy that forwards ``https://host/floods/`` here; ``use_xheaders`` trusts the proxy's
    ``X-Forwarded-*`` headers (client address, scheme). Raises FileNotFoundError/ValueError naming
    the run files or arguments at fault before anything is served.
    """
    import panel as pn

    from floodnb.viz.dashboard import resolve_basemap
    from floodnb.viz.run_data import load_run

    if not isinstance(address, str) or not address:
        raise ValueError(f"address must be a host name or IP address, got {address!r}")
    if not 0 <= int(port) <= 65535:
        raise ValueError(f"port must be 0 (pick a free one) or 1..65535, got {port}")
    if prefix and (not prefix.startswith("/") or prefix.endswith("/") or "//" in prefix or ".." in prefix):
        raise ValueError(f"prefix must look like '/name' (leading '/', no trailing '/'), got {prefix!r}")
    basemap = resolve_basemap(basemap)  # probe tiles once, not per session
    if basic_auth is not None and not str(basic_auth):
        raise ValueError("basic_auth must be a non-empty password or a JSON file of user -> password")
    if basic_auth is not None and str(basic_auth).endswith(".json") and not Path(basic_auth).is_file():
        raise FileNotFoundError(f"basic-auth file {basic_auth} not found (expected JSON {{\"user\": \"password\"}})")
    run = load_run(run_dir, data_root=data_root)  # fail early, read once, shared by sessions
    # validate method/basemap once, outside any session
    if method is not None and method not in run.methods:
        raise ValueError(f"method {method!r} not in the run's per_chip.csv; expected one of {run.methods}")

    port = int(port) or free_port("127.0.0.1" if _is_wildcard(address) else address)
    websocket_origin = _websocket_origin(address, port, websocket_origin)
    if not _is_loopback(address) and basic_auth is None and verbose:
        print(f"floodnb dashboard: WARNING serving on {address} without a login (--basic-auth-file): "
              "anyone who can reach this address can see the run", file=sys.stderr)

    pn.extension("tabulator", inline=True)
    # Panel extension JS/CSS inlined or served locally, never from a CDN (a settable param; the stub says read-only)
    pn.config.inline = True  # type: ignore[misc]

    app = _session_app(run, method=method, basemap=basemap)
    kwargs: dict = {"extra_patterns": [component_route()]}
    if prefix:
        kwargs["prefix"] = prefix
    if use_xheaders:
        kwargs["use_xheaders"] = True
    if basic_auth is not None:
        kwargs.update(basic_auth=str(basic_auth), cookie_secret=cookie_secret or secrets.token_hex(32),
                      basic_login_template=str(LOGIN_TEMPLATE))
    server = pn.serve(
        {"/": app}, address=address, port=port, websocket_origin=websocket_origin, show=False,
        start=False, title=f"floodnb — {run.name}", verbose=False, **kwargs,
    )
    url = f"http://{address}:{server.port}{prefix}/"
    if verbose:
        print(f"floodnb dashboard: serving run {run.run_dir} at {url}", flush=True)
    server.start()
    if show:
        server.io_loop.add_callback(server.show, "/login" if basic_auth else "/")
    if start:
        try:
            server.io_loop.start()
        except KeyboardInterrupt:
            pass
        finally:
            server.stop()
    return server


def _websocket_origin(address: str, port: int, websocket_origin: list[str] | None) -> list[str]:
    """Origins allowed to open the dashboard's websocket: the given ones, else ``address:port``
    (plus ``localhost``/``127.0.0.1`` for a loopback address). ValueError for a wildcard address
    without explicit origins.
    """
    if websocket_origin is not None:
        return websocket_origin
    if _is_wildcard(address):
        raise ValueError(
            f"address {address!r} listens on every interface: pass websocket_origin (e.g. "
            "'myhost.example.org:PORT') naming the host clients will open")
    origins = [f"{address}:{port}"]
    if _is_loopback(address):
        origins += [f"localhost:{port}", f"127.0.0.1:{port}"]
    return origins


def warm_up(run, *, method: str | None, basemap: str, cache) -> float:
    """Build one throwaway dashboard and its Bokeh document before serving; returns seconds taken.

    The first session of a fresh server otherwise pays for first-use work no later session
    repeats: lazy imports, Bokeh/Panel model class set-up, reading the first chip and drawing its
    layer images (kept in ``cache``, which every session shares). Measured with
    ``benchmarks/bench_dashboard.py``, that made the first visitor's first render about 1 s slower
    than the next ones'.
    """
    import time

    from bokeh.document import Document

    from floodnb.viz.dashboard import Dashboard

    t0 = time.perf_counter()
    Dashboard(run, method=method, basemap=basemap, cache=cache, prefetch=0).view.get_root(Document())
    return time.perf_counter() - t0


def _session_app(run, *, method: str | None, basemap: str):
    """The per-session Panel app of :func:`serve_dashboard`: a new :class:`~floodnb.viz.dashboard.Dashboard`
    over the shared ``run`` and a shared layer cache, opened on the chip named by the ``?chip=`` URL
    argument (if any).
    """
    import panel as pn
    from panel.io.resources import LOCAL_DIST

    from floodnb.viz.dashboard import Dashboard
    from floodnb.viz.layer_cache import LayerCache

    cache = LayerCache()
    warm_up(run, method=method, basemap=basemap, cache=cache)

    def app():
        # Panel resolves stylesheet URLs of models created later in a session from this template
        # variable and falls back to its CDN when it is unset; under concurrent sessions that
        # fallback was seen in the browser (Panel 1.9). Pin it to the app's own static route.
        doc = pn.state.curdoc
        if doc is not None and "dist_url" not in doc._template_variables:
            doc._template_variables["dist_url"] = LOCAL_DIST
        chip = None
        args = pn.state.session_args or {}
        if "chip" in args and args["chip"]:
            chip = args["chip"][0].decode("utf-8", errors="replace")
        return Dashboard(run, chip=chip, method=method, basemap=basemap, cache=cache).view

    return app
