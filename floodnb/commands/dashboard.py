"""``floodnb dashboard RUN_DIR``: serve the Panel dashboard of a finished run (or ``--export`` it to one HTML file).

Login secrets never need to appear on the command line (where ``ps`` shows them to every user
of the machine): ``--basic-auth-file`` names a file holding the password (or a JSON map of
user -> password) and :data:`PASSWORD_ENV` carries a password in the environment. The older
``--basic-auth PASSWORD`` still works but warns that the password is visible to other users.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

#: environment variable holding the dashboard password (any user name)
PASSWORD_ENV = "FLOODNB_DASHBOARD_PASSWORD"

HELP = "serve the map dashboard of a run directory (127.0.0.1 unless --address is given)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", metavar="RUN_DIR", help="run directory written by 'floodnb run' (runs/<name>)")
    parser.add_argument("--address", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1: this machine only). Serving to "
                             "others needs an explicit address, ideally with a login (--basic-auth-file or "
                             f"${PASSWORD_ENV})")
    parser.add_argument("--port", type=int, default=0, help="port (default 0: pick a free one and print it)")
    parser.add_argument("--basic-auth-file", default=None, metavar="FILE",
                        help="require a login: FILE holds one password (any user name) or a JSON map "
                             "{\"user\": \"password\", ...}. Alternatively set the environment variable "
                             f"{PASSWORD_ENV}. Both keep the secret out of the process list")
    parser.add_argument("--basic-auth", default=None, metavar="PASSWORD_OR_JSON_FILE",
                        help="older form: a password or a JSON file of user -> password. A password given "
                             "here is visible to other users of this machine (ps); prefer --basic-auth-file "
                             f"or {PASSWORD_ENV}")
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
    parser.add_argument("--prefix", default="", metavar="/PATH",
                        help="serve under this URL path (behind a reverse proxy forwarding https://host/PATH/)")
    parser.add_argument("--use-xheaders", action="store_true",
                        help="trust X-Forwarded-* headers from a reverse proxy in front of the dashboard")
    parser.add_argument("--export", default=None, metavar="FILE.html",
                        help="write one self-contained HTML file instead of serving: JavaScript embedded, every "
                             "chip's layers pre-rendered, works offline (e.g. sent by email)")
    parser.add_argument("--export-chips", type=int, default=50, metavar="N",
                        help="with --export: the N worst chips (default 50)")


def login_secret(args: argparse.Namespace) -> str | None:
    """The ``basic_auth`` value for :func:`floodnb.viz.serve.serve_dashboard` from the options.

    ``--basic-auth-file``: a JSON object file is passed on as a path (user -> password); any
    other file's stripped text is the password. Otherwise ``--basic-auth`` (warning on stderr when
    it is a password rather than a file), else ``$FLOODNB_DASHBOARD_PASSWORD``. ``None``: no login.
    """
    given = [name for name, v in (("--basic-auth-file", args.basic_auth_file), ("--basic-auth", args.basic_auth))
             if v is not None]
    if len(given) > 1:
        raise ValueError("give one of --basic-auth-file and --basic-auth, not both")
    if args.basic_auth_file is not None:
        path = Path(args.basic_auth_file)
        if not path.is_file():
            raise FileNotFoundError(f"--basic-auth-file {path}: not found (expected a file holding the password "
                                    "or a JSON map {\"user\": \"password\"})")
        text = path.read_text(encoding="utf-8").strip()
        try:
            users = json.loads(text)
        except json.JSONDecodeError:
            users = None
        if isinstance(users, dict):
            if not users or not all(isinstance(k, str) and isinstance(v, str) and v for k, v in users.items()):
                raise ValueError(f"--basic-auth-file {path}: expected a JSON map of user name -> non-empty password")
            return str(path)
        if not text:
            raise ValueError(f"--basic-auth-file {path} is empty; expected the password (or a JSON user map)")
        return text
    env = os.environ.get(PASSWORD_ENV)
    if args.basic_auth is None:
        if env is not None and not env.strip():
            raise ValueError(f"${PASSWORD_ENV} is set but empty; set it to the dashboard password or unset it")
        return env.strip() if env else None
    if not Path(args.basic_auth).is_file():
        print(f"floodnb dashboard: WARNING --basic-auth PASSWORD is visible to other users of this machine "
              f"(ps, /proc); use --basic-auth-file FILE or ${PASSWORD_ENV} instead", file=sys.stderr)
    return args.basic_auth


def run(args: argparse.Namespace) -> int:
    if args.export is not None:
        from floodnb.viz.static_export import export_html

        path = export_html(args.run_dir, args.export, data_root=args.data_root, method=args.method,
                           max_chips=args.export_chips)
        print(f"floodnb dashboard: wrote {path} ({path.stat().st_size / 1e6:.1f} MB, works offline)")
        return 0
    from floodnb.viz.serve import serve_dashboard

    serve_dashboard(
        args.run_dir, address=args.address, port=args.port, basic_auth=login_secret(args),
        cookie_secret=args.cookie_secret, websocket_origin=args.allow_websocket_origin,
        data_root=args.data_root, method=args.method, basemap=args.basemap, show=args.show,
        prefix=args.prefix, use_xheaders=args.use_xheaders,
    )
    return 0
