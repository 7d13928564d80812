"""Run edges of the notebooks: resolve their parameters, find the data and earlier stages' outputs.

Every pipeline notebook (``notebooks/0*.ipynb``) starts with :func:`setup`, which turns the
notebook's ``parameters`` cell into a frozen :class:`Settings`, the same way whether the notebook
runs under ``floodnb run`` (papermill passes every parameter) or stand-alone in JupyterLab with
its defaults:

* ``run_dir=None`` -> :func:`default_run_dir` (``$FLOODNB_RUN_DIR``, else ``<repo>/runs/interactive``);
* ``out_dir=None`` -> ``<run_dir>/<stage>/`` (:func:`floodnb.pipeline.stage_dir`);
* ``data_root=None`` -> the simulated dataset of the run, ``<run_dir>/simulate/`` — the folder
  ``floodnb run`` simulates into — created with :data:`floodnb.pipeline.SIM_FAST` (``fast``) or
  :data:`~floodnb.pipeline.SIM_DEFAULT` sizes if it does not hold a finished simulation yet;
* ``epochs/model/crop=None`` -> the defaults of the ``fast`` switch (:data:`DEFAULTS`).

A run directory without ``run.json`` (a stand-alone notebook run) gets a minimal one recording the
data root, so the dashboard (:func:`floodnb.viz.dashboard.load_run`) can open it; an existing
``run.json`` (written by :mod:`floodnb.pipeline`) is never modified here.
:func:`upstream` finds an earlier stage's file and names the notebook to run when it is missing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from floodnb.io_utils import atomic_write_json

#: Environment variable overriding the default run directory of stand-alone notebooks.
RUN_DIR_ENV = "FLOODNB_RUN_DIR"
#: Training defaults per mode: ``fast`` (tests, smoke runs on 64 px chips) and the default run.
DEFAULTS: dict[bool, dict] = {
    False: {"epochs": 4, "model": "unet_small", "crop": 128},
    True: {"epochs": 1, "model": "unet_tiny", "crop": 64},
}


@dataclass(frozen=True)
class Settings:
    """Resolved parameters of one notebook run (paths absolute)."""

    stage: str
    data_root: Path
    run_dir: Path
    out_dir: Path
    seed: int
    epochs: int
    fast: bool
    model: str
    crop: int | None
    batch_size: int
    simulated: bool

    def train_config(self, *, progress: bool = True):
        """:class:`floodnb.distill.engine.TrainConfig` of these settings (epochs, batch size, seed)."""
        from floodnb.distill.engine import TrainConfig

        return TrainConfig(epochs=self.epochs, batch_size=self.batch_size, seed=self.seed,
                           checkpoint_every=0, progress=progress)


def repo_root() -> Path:
    """The source checkout holding ``floodnb/`` and ``notebooks/``."""
    return Path(__file__).resolve().parents[1]


def default_run_dir() -> Path:
    """``$FLOODNB_RUN_DIR`` if set, else ``<repo>/runs/interactive`` (stand-alone notebook runs)."""
    env = os.environ.get(RUN_DIR_ENV)
    return Path(env) if env else repo_root() / "runs" / "interactive"


def is_simulation(root: str | Path) -> bool:
    """Whether ``root`` holds a finished floodnb simulation (its manifest is present)."""
    from floodnb.simulate.writer import MANIFEST  # written last by simulate_dataset

    return (Path(root) / MANIFEST).is_file()


def ensure_data(run_dir: str | Path, *, fast: bool, seed: int, progress: bool = True) -> Path:
    """The run's simulated data root ``<run_dir>/simulate``; simulates it first when absent.

    Sizes: :data:`floodnb.pipeline.SIM_FAST` when ``fast`` else :data:`~floodnb.pipeline.SIM_DEFAULT`.
    A finished simulation already there is reused as is (whatever its sizes).
    """
    from floodnb.pipeline import SIM_DEFAULT, SIM_FAST, SIMULATE_STAGE, stage_dir

    root = stage_dir(run_dir, SIMULATE_STAGE)
    if is_simulation(root):
        return root.resolve()
    from floodnb.simulate import simulate_dataset

    sim = SIM_FAST if fast else SIM_DEFAULT
    return Path(simulate_dataset(root, n_hand=sim["sim_hand"], n_weak=sim["sim_weak"], size=sim["sim_size"],
                                 seed=seed, progress=progress)).resolve()


def setup(stage: str, *, data_root: str | Path | None, run_dir: str | Path | None, out_dir: str | Path | None,
          seed: int, epochs: int | None, fast: bool, model: str | None = None, crop: int | None = None,
          batch_size: int = 8, progress: bool = True) -> Settings:
    """Resolve a notebook's parameters into :class:`Settings`, create ``out_dir``, find or simulate the data.

    ``stage``: the notebook's name (e.g. ``"03_train_teacher"``). ``crop=0`` means whole chips.
    Raises ``FileNotFoundError`` for a ``data_root`` that does not exist, ``ValueError`` for
    negative/zero epochs, crop or batch size.
    """
    from floodnb.pipeline import stage_dir

    d = DEFAULTS[bool(fast)]
    epochs = d["epochs"] if epochs is None else int(epochs)
    crop = d["crop"] if crop is None else int(crop)
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    if crop < 0 or batch_size < 1:
        raise ValueError(f"crop must be >= 0 (0 = whole chips) and batch_size >= 1, got crop={crop}, "
                         f"batch_size={batch_size}")
    run = Path(run_dir) if run_dir else default_run_dir()
    run.mkdir(parents=True, exist_ok=True)
    out = Path(out_dir) if out_dir else stage_dir(run, stage)
    out.mkdir(parents=True, exist_ok=True)
    simulated = data_root is None or data_root == ""
    if simulated:
        root = ensure_data(run, fast=fast, seed=seed, progress=progress)
    else:
        root = Path(data_root).resolve()
        if not root.is_dir():
            raise FileNotFoundError(f"data_root {str(data_root)!r} is not a folder; expected a Sen1Floods11 "
                                    "(or simulated) data root, or None to simulate one")
    settings = Settings(stage=stage, data_root=root, run_dir=run.resolve(), out_dir=out.resolve(), seed=int(seed),
                        epochs=epochs, fast=bool(fast), model=model or d["model"], crop=crop or None,
                        batch_size=int(batch_size), simulated=simulated or is_simulation(root))
    record_run(settings)
    return settings


def record_run(settings: Settings) -> Path:
    """Write ``<run_dir>/run.json`` (name, data_root, params) if absent; never touches an existing one."""
    path = settings.run_dir / "run.json"
    if not path.exists():
        atomic_write_json(path, {
            "name": settings.run_dir.name, "data_root": str(settings.data_root),
            "params": {"seed": settings.seed, "epochs": settings.epochs, "fast": settings.fast},
            "stages": {}, "created_by": f"notebook {settings.stage} (stand-alone)"})
    return path


def upstream(settings: Settings, stage: str, name: str) -> Path:
    """Path of file ``name`` written by the earlier notebook ``stage`` in the same run.

    Raises ``FileNotFoundError`` naming the file and the notebook that writes it.
    """
    from floodnb.pipeline import stage_dir

    path = stage_dir(settings.run_dir, stage) / name
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: run notebook {stage}.ipynb first with run_dir="
                                f"{str(settings.run_dir)!r} (or 'floodnb run')")
    return path


def reference_for(catalog) -> str:
    """``"truth_water"`` when every hand-labelled chip has the simulator's truth, else ``"label"``."""
    hand = catalog[catalog["group"] == "hand"]
    if "truth_water_path" in hand.columns and len(hand) and bool(hand["truth_water_path"].notna().all()):
        return "truth_water"
    return "label"


def model_dir(settings: Settings, name: str, **config) -> Path:
    """Folder ``<out_dir>/<name>-<hash>`` of one trained model; the hash covers ``config`` and the settings'
    seed, epochs, model, crop and batch size, so a rerun with the same settings resumes (or reuses) its
    run and other settings train in a new folder without touching the old one."""
    import hashlib
    import json

    key = {"seed": settings.seed, "epochs": settings.epochs, "model": settings.model, "crop": settings.crop,
           "batch_size": settings.batch_size, "data_root": str(settings.data_root), **config}
    h = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:8]
    return settings.out_dir / f"{name}-{h}"


def dashboard_run_dir(run_dir: str | Path | None) -> Path:
    """Run shown by ``06_dashboard``: ``run_dir`` if given, else ``$FLOODNB_RUN_DIR``, else
    ``<repo>/runs/default`` (``floodnb run``'s default) when it holds ``run.json``, else
    ``<repo>/runs/interactive`` (the stand-alone notebooks' run)."""
    if run_dir:
        return Path(run_dir)
    env = os.environ.get(RUN_DIR_ENV)
    if env:
        return Path(env)
    default = repo_root() / "runs" / "default"
    return default if (default / "run.json").is_file() else repo_root() / "runs" / "interactive"


__all__ = ["DEFAULTS", "RUN_DIR_ENV", "Settings", "dashboard_run_dir", "default_run_dir", "ensure_data", "is_simulation", "model_dir", "record_run",
           "reference_for", "repo_root", "setup", "upstream"]
