"""Dashboard serving refuses what it must: Panel's module-importing ``/components/`` route is closed
(checked over HTTP on 127.0.0.1 against a real ``floodnb dashboard`` process), and login passwords
can come from a file or the environment instead of the process list.
"""

from __future__ import annotations

import argparse
import http.client
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
from _run_fixture import make_run_dir

from floodnb.commands import dashboard as dash_cmd

SENTINEL_MODULE = "floodnb_probe_sentinel"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(port: int, path: str, timeout: float = 30.0) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A ``floodnb dashboard`` subprocess on 127.0.0.1 whose PYTHONPATH holds a sentinel module that
    writes a marker file when imported.
    """
    base = tmp_path_factory.mktemp("dashsec")
    run_dir = make_run_dir(base, n_chips=3, size=32)
    mods = base / "mods"
    mods.mkdir()
    marker = base / "imported.marker"
    (mods / f"{SENTINEL_MODULE}.py").write_text(
        f"from pathlib import Path\nPath({str(marker)!r}).write_text('imported')\nclass C:\n    css = ['x.css']\n")
    port = _free_port()
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(mods), env.get("PYTHONPATH", "")])
    env.pop(dash_cmd.PASSWORD_ENV, None)
    log = base / "server.log"
    proc = subprocess.Popen([sys.executable, "-m", "floodnb.cli", "dashboard", str(run_dir), "--port", str(port),
                             "--basemap", "none"], stdout=log.open("w"), stderr=subprocess.STDOUT, env=env,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"dashboard exited ({proc.returncode}):\n{log.read_text()}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"dashboard did not listen:\n{log.read_text()}") from None
                time.sleep(0.3)
        yield port, marker
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def test_components_route_imports_no_module_and_dashboard_still_serves(served):
    port, marker = served
    status, body = _get(port, "/")
    assert status == 200 and b"bokeh" in body.lower()
    status, _ = _get(port, f"/components/{SENTINEL_MODULE}/C/css/x.css")
    assert status == 404
    assert not marker.exists(), "the /components/ route imported a module named in the URL"
    # a module that is not loaded yet (and not Panel) is not imported either
    status, _ = _get(port, "/components/antigravity/C/css/x.css")
    assert status == 404
    # Panel's own, already loaded components keep their resource checks (listed files only)
    status, _ = _get(port, "/components/panel.widgets/Tabulator/__css__/../../../etc/passwd")
    assert status in (403, 404)
    status, body = _get(port, "/")
    assert status == 200


def _args(**kw) -> argparse.Namespace:
    return argparse.Namespace(**{"basic_auth_file": None, "basic_auth": None, **kw})


def test_password_from_file_env_and_json_map(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv(dash_cmd.PASSWORD_ENV, raising=False)
    assert dash_cmd.login_secret(_args()) is None
    pw = tmp_path / "pw.txt"
    pw.write_text("  hunter2-flood\n")
    assert dash_cmd.login_secret(_args(basic_auth_file=str(pw))) == "hunter2-flood"
    users = tmp_path / "users.txt"
    users.write_text('{"ana": "a-pass", "bo": "b-pass"}')
    assert dash_cmd.login_secret(_args(basic_auth_file=str(users))) == str(users)
    monkeypatch.setenv(dash_cmd.PASSWORD_ENV, "from-env")
    assert dash_cmd.login_secret(_args()) == "from-env"
    assert capsys.readouterr().err == ""
    # the old flag still works, with a warning that the password shows in ps
    assert dash_cmd.login_secret(_args(basic_auth="visible")) == "visible"
    assert "visible to other users" in capsys.readouterr().err


@pytest.mark.parametrize("content, expect", [("", "is empty"), ('{"ana": ""}', "non-empty password"),
                                              (None, "not found")])
def test_bad_password_file_is_refused_with_its_name(tmp_path, content, expect):
    f = tmp_path / "secret"
    if content is not None:
        f.write_text(content)
    with pytest.raises((ValueError, FileNotFoundError), match=expect) as e:
        dash_cmd.login_secret(_args(basic_auth_file=str(f)))
    assert str(f) in str(e.value)


def test_cli_help_names_file_and_env_and_refuses_missing_file(tmp_path, capsys):
    from floodnb.cli import main

    with pytest.raises(SystemExit):
        main(["dashboard", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "--basic-auth-file" in out and dash_cmd.PASSWORD_ENV in out and "visible to other users" in out
    rc = main(["dashboard", str(tmp_path), "--basic-auth-file", str(tmp_path / "nope.txt")])
    assert rc == 2
    assert "nope.txt" in capsys.readouterr().err


def test_empty_env_password_is_refused(monkeypatch):
    monkeypatch.setenv(dash_cmd.PASSWORD_ENV, " ")
    with pytest.raises(ValueError, match=dash_cmd.PASSWORD_ENV):
        dash_cmd.login_secret(_args())
