"""``floodnb dashboard RUN_DIR``: serve the Panel dashboard of a finished run."""

from __future__ import annotations

import argparse

HELP = "serve the map dashboard of a run directory (127.0.0.1 unless --address is given)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", metavar="RUN_DIR", help="run directory written by 'floodnb run' (runs/<name>)")
    parser.add_argument("--address", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1: this machine only). Serving to "
                             "others needs an explicit address, ideally with --basic-auth")
    parser.add_argument("--port", type=int, default=0, help="port (default 0: pick a free one and print it)")
    parser.add_argument("--basic-auth", default=None, metavar="PASSWORD_OR_FILE",
                        help="require a login: one password for any user name, or a JSON file "
                             "{\"user\": \"password\", ...}")
    parser.add_argument("--cookie-secret", default=None,
                        help="secret signing login cookies (default: random per start, so logins "
                             "end when the server restarts)")
    parser.add_argument("--allow-websocket-origin", action="append", default=None, metavar="HOST:PORT",
                        help="host:port browsers use to reach the app (needed with --address 0.0.0.0); "
                             "may be repeated")
    parser.add_argument("--data-root", default=None,
                        help="chip data root (default: the one recorded in RUN_DIR/run.json)")
    parser.add_argument("--method", default=None, help="model whose per-chip metrics fill the table "
                                                       "(default: the student if present)")
    parser.add_argument("--basemap", default="auto",
                        choices=["auto", "OpenStreetMap", "Esri World Imagery", "none"],
                        help="map tiles under the layers (auto: OpenStreetMap if reachable, else none)")
    parser.add_argument("--show", action="store_true", help="open the dashboard in a web browser")


def run(args: argparse.Namespace) -> int:
    from floodnb.viz.serve import serve_dashboard

    serve_dashboard(
        args.run_dir, address=args.address, port=args.port, basic_auth=args.basic_auth,
        cookie_secret=args.cookie_secret, websocket_origin=args.allow_websocket_origin,
        data_root=args.data_root, method=args.method, basemap=args.basemap, show=args.show,
    )
    return 0
