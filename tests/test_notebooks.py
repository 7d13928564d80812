"""Notebooks: committed clean (no outputs, one ``parameters`` cell, imports first) and all of them run
under nbval (``--nbval-lax``) on a small simulated dataset, in pipeline order, sharing one run folder.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from papermill.iorw import load_notebook_node
from papermill.parameterize import parameterize_notebook
from papermill.translators import PythonTranslator

from floodnb.pipeline import NOTEBOOKS

NB_DIR = Path(__file__).resolve().parents[1] / "notebooks"
ALL = (*NOTEBOOKS, "06_dashboard", "07_generative_augmentation")
REQUIRED_PARAMS = {"data_root", "run_dir", "out_dir", "seed", "epochs", "fast"}


def _code_cells(nb):
    return [c for c in nb.cells if c.cell_type == "code"]


def test_every_notebook_is_committed_and_no_stray_ones():
    assert sorted(p.stem for p in NB_DIR.glob("*.ipynb")) == sorted(ALL)


@pytest.mark.parametrize("name", ALL)
def test_committed_clean_with_one_parameters_cell_and_imports_first(name):
    nb = nbformat.read(NB_DIR / f"{name}.ipynb", as_version=4)
    nbformat.validate(nb)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    code = _code_cells(nb)
    for i, c in enumerate(code):
        assert c.outputs == [], f"{name}: code cell {i} has outputs; clear them before committing"
        assert c.execution_count is None, f"{name}: code cell {i} has an execution count"
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, f"{name}: expected exactly one cell tagged 'parameters', found {len(tagged)}"
    # imports first: the first code cell holds only import statements, the parameters cell is next
    first = ast.parse(code[0].source)
    assert first.body and all(isinstance(n, (ast.Import, ast.ImportFrom)) for n in first.body), \
        f"{name}: the first code cell must hold only imports"
    later = [n for c in code[1:] for n in ast.walk(ast.parse(c.source))]
    imported_later = any(isinstance(n, (ast.Import, ast.ImportFrom)) for n in later)
    assert not imported_later, f"{name}: imports after the first code cell"
    assert code[1] is tagged[0], f"{name}: the parameters cell must follow the imports cell"
    params = {p.name for p in PythonTranslator.inspect(tagged[0])}
    assert REQUIRED_PARAMS <= params, f"{name}: parameters cell lacks {REQUIRED_PARAMS - params}"
    # the parameters cell only assigns literals (papermill overrides them)
    for node in ast.parse(tagged[0].source).body:
        assert isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant), \
            f"{name}: parameters cell line {node.lineno} is not 'name = literal'"


def test_nbval_runs_every_notebook_on_small_simulated_data(tmp_path, real_root):
    """Parameterised copies (papermill, no execution) of all six notebooks run by nbval in order.

    ``data_root=None``: the first notebook simulates the small (``fast``) dataset into the run
    folder, as a stand-alone JupyterLab session would; the later ones find it there.
    """
    run_dir = tmp_path / "run"
    copies = tmp_path / "nbs"
    copies.mkdir()
    for name in ALL:
        nb = load_notebook_node(str(NB_DIR / f"{name}.ipynb"))
        params = {"data_root": None, "run_dir": str(run_dir), "out_dir": None, "seed": 1, "epochs": 1, "fast": True}
        if name == "06_dashboard":
            params["basemap"] = "none"
        if name == "05_evaluate":  # the sim-to-real section on the real chips
            params["real_root"] = str(real_root)
        nb = parameterize_notebook(nb, params)
        nbformat.write(nb, copies / f"{name}.ipynb")
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    env.pop("FLOODNB_RUN_DIR", None)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "--nbval-lax", "-q", "-p", "no:cacheprovider", "--timeout", "600",
         *[str(copies / f"{n}.ipynb") for n in ALL]],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    assert re.search(r"\b\d+ passed", out) and not re.search(r"\b\d+ (failed|errors?)\b", out), out[-2000:]

    # the stand-alone runs simulated their data, recorded the run and wrote every stage's results
    assert (run_dir / "simulate" / "floodnb_simulation.json").is_file()
    assert json.loads((run_dir / "run.json").read_text())["data_root"] == str((run_dir / "simulate").resolve())
    for name in NOTEBOOKS:
        assert (run_dir / name / "metrics.json").is_file(), name
    metrics = json.loads((run_dir / "05_evaluate" / "metrics.json").read_text())
    assert {"otsu", "s1_weak", "teacher", "student"} <= set(metrics)
    assert metrics["reference"] == "truth_water"
    assert any((run_dir / "05_evaluate" / "predictions").glob("*_pred.tif"))
    areas = pd.read_csv(run_dir / "05_evaluate" / "per_event_area.csv")  # flooded km² per method and event
    assert {"student", "otsu"} <= set(areas["method"]) and areas["flood_km2"].notna().all()
    assert metrics["areas_km2"]["student"]["test"]["water_km2"] > 0
    assert (run_dir / "05_evaluate" / "event_area.png").stat().st_size > 5000
    assert (run_dir / "05_evaluate" / "predictions_map.html").stat().st_size > 1000
    assert (run_dir / "01_explore_data" / "chips_map.html").stat().st_size > 1000
    transfer = pd.read_csv(run_dir / "05_evaluate" / "transfer.csv")
    assert {"otsu_event", "s1_weak", "student"} <= set(transfer["method"])
