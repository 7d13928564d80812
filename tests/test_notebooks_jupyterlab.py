"""Notebooks 01–05 run in a live JupyterLab 4 with the network cut off, and every figure and map draws.

JupyterLab is started on 127.0.0.1 by the test (stopped by it; its settings, workspaces and
runtime files in a temporary folder); Chromium opens each notebook — parameterised copies with the
fast test parameters of ``tests/test_notebooks.py`` (papermill, no execution) — and runs all
cells, one notebook after the other in one run folder. Every request to another host is aborted
by Playwright routing (:mod:`_offline_browser`) and recorded. Checks per notebook: no cell
raised; no request to another host was attempted; each Bokeh figure output (hvplot/HoloViews)
and each map output (an iframe holding a Leaflet map) has drawn pixels; at least the expected
number of figures and maps is there.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
from _offline_browser import Offline, drawn_px, launch, pixels
from papermill.iorw import load_notebook_node
from papermill.parameterize import parameterize_notebook

from floodnb.pipeline import NOTEBOOKS

pytestmark = [pytest.mark.browser, pytest.mark.slow]

NB_DIR = Path(__file__).resolve().parents[1] / "notebooks"
TOKEN = "floodnb-test"
#: (Bokeh figure outputs, map outputs) that each notebook shows at least
EXPECTED = {"01_explore_data": (3, 1), "02_weak_labels_and_noise": (3, 0), "03_train_teacher": (2, 0),
            "04_distill_student": (1, 0), "05_evaluate": (3, 1)}
#: no windowed rendering: every output stays in the page so it can be checked
SETTINGS = {"@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
            "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false",
                                                                                "checkForUpdates": False}}
NB_STATE = "window.jupyterapp && window.jupyterapp.shell.currentWidget"
KERNEL_IDLE = (f"(() => {{ const nb = {NB_STATE}; const k = nb && nb.sessionContext && nb.sessionContext.session "
               "&& nb.sessionContext.session.kernel; return !!k && k.status === 'idle'; })()")
#: the kernel is idle and every code cell ran, or one raised (run-all stops there)
ALL_RAN = (f"(() => {{ const nb = {NB_STATE}; const k = nb.sessionContext.session.kernel; "
           "const code = nb.content.widgets.filter(c => c.model.type === 'code'); "
           "const failed = code.some(c => Array.from({length: c.model.outputs.length}, "
           "(_, j) => c.model.outputs.get(j).type).includes('error')); "
           "return k.status === 'idle' && (failed || code.every(c => c.model.executionCount !== null)); })()")
ERRORS = (f"(() => {{ const nb = {NB_STATE}; const out = []; nb.content.widgets.forEach((c, i) => {{ "
          "if (c.model.type !== 'code') return; const o = c.model.outputs; "
          "for (let j = 0; j < o.length; j++) { const x = o.get(j).toJSON(); "
          "if (x.output_type === 'error') out.push(`cell ${i}: ${x.ename}: ${x.evalue}`); } }); return out; })()")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _prepare(tmp: Path, real_root: Path) -> Path:
    nbs = tmp / "nbs"
    nbs.mkdir()
    for name in NOTEBOOKS:
        nb = load_notebook_node(str(NB_DIR / f"{name}.ipynb"))
        params = {"data_root": None, "run_dir": str(tmp / "run"), "out_dir": None, "seed": 1, "epochs": 1,
                  "fast": True}
        if name == "05_evaluate":
            params["real_root"] = str(real_root)
        nbformat.write(parameterize_notebook(nb, params), nbs / f"{name}.ipynb")
    for rel, value in SETTINGS.items():
        path = tmp / "settings" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(value))
    return nbs


@pytest.fixture(scope="module")
def lab(tmp_path_factory, real_root):
    tmp = tmp_path_factory.mktemp("lab")
    _prepare(tmp, real_root)
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "FLOODNB_RUN_DIR"}
    env |= {"JUPYTER_RUNTIME_DIR": str(tmp / "runtime"), "PYTHONWARNINGS": "ignore",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(NB_DIR.parent), env.get("PYTHONPATH")]))}
    cmd = [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
           f"--IdentityProvider.token={TOKEN}", "--LabApp.expose_app_in_browser=True",
           f"--ServerApp.root_dir={tmp}", f"--LabApp.user_settings_dir={tmp / 'settings'}",
           f"--LabApp.workspaces_dir={tmp / 'workspaces'}", "--LabApp.news_url=",
           "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")
    log = tmp / "lab.log"
    proc = subprocess.Popen(cmd, env=env, cwd=tmp, stdout=log.open("w"), stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"jupyter lab exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"jupyter lab not up after 90 s:\n{log.read_text()[-3000:]}") from None
                time.sleep(0.3)
        yield f"http://127.0.0.1:{port}", tmp
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = launch(p)
        yield b
        b.close()


#: marks the visible outputs holding a Bokeh document (``[data-root-id]``), except the extension cell's
MARK_FIGURES = (f"(() => {{ const nb = {NB_STATE}; let n = 0; nb.content.widgets.forEach(c => {{ "
                "if (c.model.type !== 'code' || c.model.sharedModel.getSource().includes('notebook_extension')) "
                "return; "
                "c.node.querySelectorAll('.jp-OutputArea-output').forEach(o => { "
                "if (o.querySelector('[data-root-id]') && o.getBoundingClientRect().height > 20) "
                "o.setAttribute('data-floodnb-figure', String(n++)); }); }); "
                "return n; })()")


def _figures(page) -> list:
    """Output areas holding a HoloViews/hvplot figure (a Bokeh document), outside the extension's cell."""
    n = page.evaluate(MARK_FIGURES)
    return [page.locator(f'[data-floodnb-figure="{i}"]') for i in range(n)]


def _drawn(locator, *, least: int, timeout: float = 30.0) -> int:
    """Drawn pixels of an output once at least ``least`` (Bokeh draws after the output arrives)."""
    deadline = time.monotonic() + timeout
    while True:
        n = drawn_px(pixels(locator.screenshot()))
        if n > least or time.monotonic() > deadline:
            return n
        time.sleep(0.5)


def _maps(page) -> list:
    outs = page.locator(".jp-OutputArea-output")
    return [outs.nth(i) for i in range(outs.count()) if outs.nth(i).locator("iframe").count()]


def _run_notebook(browser, url: str, name: str):
    net = Offline(browser, width=1400, height=1000)
    page = net.page()
    try:
        page.goto(f"{url}/lab/tree/nbs/{name}.ipynb?token={TOKEN}")
        page.wait_for_function(KERNEL_IDLE, timeout=120_000)
        page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
        page.wait_for_timeout(2000)
        page.wait_for_function(ALL_RAN, timeout=600_000, polling=1000)
        page.wait_for_timeout(3000)  # Bokeh draws after the output arrives
        return net, page
    except Exception:
        net.close()
        raise


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs_offline_in_jupyterlab_and_every_figure_draws(lab, browser, name):
    url, tmp = lab
    net, page = _run_notebook(browser, url, name)
    try:
        errors = page.evaluate(ERRORS)
        assert errors == [], f"{name}: cells raised {errors}"
        figures, maps = _figures(page), _maps(page)
        want_figs, want_maps = EXPECTED[name]
        assert len(figures) >= want_figs and len(maps) >= want_maps, \
            f"{name}: {len(figures)} figures, {len(maps)} maps; expected at least {EXPECTED[name]}"
        for i, fig in enumerate(figures):
            n = _drawn(fig, least=2000)
            assert n > 2000, f"{name}: figure {i} is blank ({n} drawn px)"
        for i, m in enumerate(maps):
            frame = m.frame_locator("iframe").first
            frame.locator(".leaflet-image-layer").first.wait_for(state="attached", timeout=30_000)
            assert frame.locator(".floodnb-map-note").count() == 1
            n = _drawn(m, least=5000)
            assert n > 5000, f"{name}: map {i} is blank ({n} drawn px)"
        assert net.blocked == [], f"{name}: requests to other hosts: {sorted(set(net.blocked))[:10]}"
    finally:
        page.evaluate(f"{NB_STATE} && {NB_STATE}.sessionContext.shutdown()")
        net.close()
