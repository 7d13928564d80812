"""Where a run's files live: stage names, stage folders, ``run.json`` and the default run folders.

A run is one folder ``runs/<name>/``::

    run.json                               the run's state (floodnb.runs.state)
    simulate/                              simulated data root (when no data root is given)
    01_explore_data/ ... 05_evaluate/      one output folder per notebook stage, each with metrics.json
    notebooks/<stage>.ipynb                the executed notebooks (floodnb run)

Every module that needs one of these names imports it from here.
"""

from __future__ import annotations

import os
from pathlib import Path

SIMULATE = "simulate"
EXPLORE = "01_explore_data"
NOISE = "02_weak_labels_and_noise"
TEACHER = "03_train_teacher"
STUDENT = "04_distill_student"
EVALUATE = "05_evaluate"
#: the pipeline's notebooks in the order ``floodnb run`` executes them
NOTEBOOKS: tuple[str, ...] = (EXPLORE, NOISE, TEACHER, STUDENT, EVALUATE)
#: served, never run headless
DASHBOARD = "06_dashboard"

RUN_JSON = "run.json"
#: folder of the executed notebooks inside a run
EXECUTED_DIR = "notebooks"
#: each stage's record (floodnb.runs.records), inside its stage folder
RECORD_FILE = "metrics.json"
#: files of the noise and evaluation stages the dashboard reads (relative to the run folder)
NOISE_TABLE = f"{NOISE}/noise_chips.csv"
NOISE_MAPS = f"{NOISE}/noise_maps"
PER_CHIP_TABLE = f"{EVALUATE}/per_chip.csv"
EVAL_METRICS = f"{EVALUATE}/{RECORD_FILE}"
PREDICTIONS = f"{EVALUATE}/predictions"

#: Environment variable overriding the default run directory of stand-alone notebooks.
RUN_DIR_ENV = "FLOODNB_RUN_DIR"


def repo_root() -> Path:
    """The source checkout holding ``floodnb/`` and ``notebooks/``."""
    return Path(__file__).resolve().parents[2]


def default_notebooks_dir() -> Path:
    """The repository's ``notebooks/`` folder (editable installs and source checkouts)."""
    return repo_root() / "notebooks"


def stage_dir(run_dir: str | Path, stage: str) -> Path:
    """Output folder of a stage inside a run (``runs/<name>/<stage>/``)."""
    if not stage or "/" in stage or stage.startswith("."):
        raise ValueError(f"stage {stage!r} must be a plain name such as {NOTEBOOKS[0]!r}")
    return Path(run_dir) / stage


def run_json_path(run_dir: str | Path) -> Path:
    """``<run_dir>/run.json``."""
    return Path(run_dir) / RUN_JSON


def default_run_dir() -> Path:
    """``$FLOODNB_RUN_DIR`` if set, else ``runs/interactive`` under the current working directory.

    Stand-alone notebook runs: a Jupyter kernel's working directory is the notebook's folder, so
    results land beside the notebook being run, never inside the installed package or checkout.
    """
    env = os.environ.get(RUN_DIR_ENV)
    return Path(env) if env else Path.cwd() / "runs" / "interactive"


def dashboard_run_dir(run_dir: str | Path | None) -> Path:
    """Run shown by ``06_dashboard``: ``run_dir`` if given, else ``$FLOODNB_RUN_DIR``, else
    ``<repo>/runs/default`` (``floodnb run``'s default) when it holds ``run.json``, else
    ``runs/interactive`` in the working directory (the stand-alone notebooks' run, :func:`default_run_dir`).
    """
    if run_dir:
        return Path(run_dir)
    env = os.environ.get(RUN_DIR_ENV)
    if env:
        return Path(env)
    default = repo_root() / "runs" / "default"
    return default if run_json_path(default).is_file() else default_run_dir()


#: model whose per-chip predictions sit directly in :data:`PREDICTIONS` (runs before per-model
#: folders saved only this one); every other model's go to ``PREDICTIONS/<method>/``
PREDICTIONS_DEFAULT_METHOD = "student"


def predictions_dir(base: str | Path, method: str) -> Path:
    """Folder of ``method``'s per-chip prediction GeoTIFFs under ``base`` (a run's or evaluate
    stage's ``predictions`` folder): ``base`` for :data:`PREDICTIONS_DEFAULT_METHOD`, else
    ``base/<method>``. ``method`` must be a plain name (letters, digits, ``_``, ``-``).
    """
    if not method or not all(c.isalnum() or c in "_-" for c in method):
        raise ValueError(f"method {method!r} must be a plain name (letters, digits, '_', '-') to name a folder")
    return Path(base) if method == PREDICTIONS_DEFAULT_METHOD else Path(base) / method
