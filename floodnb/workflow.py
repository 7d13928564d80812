"""Run edges of the notebooks: resolve their parameters, find the data and earlier stages' outputs.

Every pipeline notebook (``notebooks/0*.ipynb``) starts with :func:`setup`, which turns the
notebook's ``parameters`` cell into a frozen :class:`Settings`, the same way whether the notebook
runs under ``floodnb run`` (papermill passes every parameter) or stand-alone in JupyterLab with
its defaults:

* ``run_dir=None`` -> :func:`default_run_dir` (``$FLOODNB_RUN_DIR``, else ``runs/interactive`` in the current
  working directory, which is the notebook's folder in Jupyter);
* ``out_dir=None`` -> ``<run_dir>/<stage>/`` (:func:`floodnb.runs.layout.stage_dir`);
* ``data_root=None`` -> the simulated dataset of the run, ``<run_dir>/simulate/`` — the folder
  ``floodnb run`` simulates into — with the sizes of the ``fast`` or default preset
  (:mod:`floodnb.runs.presets`), simulated by :func:`floodnb.runs.simulation.ensure_simulation`;
* ``epochs/model/crop/precision=None`` -> the training defaults of the ``fast`` or default preset;
* ``threads=0`` -> torch threads from ``$FLOODNB_THREADS`` or the machine (:mod:`floodnb.runtime`;
  ``floodnb run --threads N`` sets the variable for its notebooks).

A run directory without ``run.json`` (a stand-alone notebook run) gets a minimal one recording the
data root, so the dashboard (:func:`floodnb.viz.dashboard.load_run`) can open it; an existing
``run.json`` (written by :mod:`floodnb.pipeline`) is never modified here. Stages hand results to
later ones as typed records (:mod:`floodnb.runs.records`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from floodnb.runs.layout import RUN_DIR_ENV, SIMULATE, dashboard_run_dir, default_run_dir, repo_root, stage_dir
from floodnb.runs.presets import preset
from floodnb.runs.simulation import SimRequest, ensure_simulation, is_simulation
from floodnb.runs.state import params_hash, record_standalone_run


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
    precision: str = "float32"
    threads: int = 1

    def describe(self, reference: str | None = None) -> str:
        """Short text of where this run reads and writes, without absolute paths.

        The run folder is shown relative to the working directory when inside it (else by name),
        the data root and outputs relative to the run folder when inside it (else by name).
        """
        def rel(path: Path, base: Path) -> str:
            try:
                return str(path.relative_to(base)) or "."
            except ValueError:
                return f"…/{path.name}"

        lines = [f"run folder: {rel(self.run_dir, Path.cwd().resolve())}",
                 f"data: {rel(self.data_root, self.run_dir)} ({'simulated' if self.simulated else 'real'})",
                 f"this notebook's outputs: {rel(self.out_dir, self.run_dir)}/"]
        if reference is not None:
            lines.append(f"reference for scores: {reference}")
        return "\n".join(lines)

    def train_config(self, *, progress: bool = True):
        """:class:`floodnb.distill.engine.TrainConfig` of these settings (epochs, batch size, seed, precision)."""
        from floodnb.distill.engine import TrainConfig

        return TrainConfig(epochs=self.epochs, batch_size=self.batch_size, seed=self.seed,
                           checkpoint_every=0, progress=progress, precision=self.precision)


def ensure_data(run_dir: str | Path, *, fast: bool, seed: int, progress: bool = True) -> Path:
    """The run's simulated data root ``<run_dir>/simulate``; simulates it first when absent.

    Sizes: the ``fast`` preset's or the default one's (:mod:`floodnb.runs.presets`). A finished
    simulation there is reused only when it has these sizes and seed, refused otherwise, and an
    interrupted one is redone (:func:`floodnb.runs.simulation.ensure_simulation`).
    """
    sim = preset(fast).sim
    want = SimRequest(n_hand=sim.hand, n_weak=sim.weak, size=sim.size, seed=int(seed))
    result = ensure_simulation(stage_dir(run_dir, SIMULATE), want, progress=progress,
                               hint="use another run_dir, or the fast/seed settings it was simulated with")
    return result.root.resolve()


def setup(stage: str, *, data_root: str | Path | None, run_dir: str | Path | None, out_dir: str | Path | None,
          seed: int, epochs: int | None, fast: bool, model: str | None = None, crop: int | None = None,
          batch_size: int = 8, progress: bool = True, precision: str | None = None, threads: int = 0) -> Settings:
    """Resolve a notebook's parameters into :class:`Settings`, create ``out_dir``, find or simulate the data.

    ``stage``: the notebook's name (e.g. ``"03_train_teacher"``). ``crop=0`` means whole chips.
    ``precision``: None = the preset's; ``threads``: torch threads, set here (0 = from the machine).
    Raises ``FileNotFoundError`` for a ``data_root`` that does not exist, ``ValueError`` for
    negative/zero epochs, crop or batch size, an unknown precision or float16 (CUDA only).
    """
    from floodnb import runtime

    d = preset(bool(fast)).train
    precision = runtime.resolve_precision(d.precision if precision is None else precision, "cpu")
    n_threads = runtime.apply_threads(threads)
    epochs = d.epochs if epochs is None else int(epochs)
    crop = d.crop if crop is None else int(crop)
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
    if data_root is None or data_root == "":
        root = ensure_data(run, fast=fast, seed=seed, progress=progress)
    else:
        root = Path(data_root).resolve()
        if not root.is_dir():
            raise FileNotFoundError(f"data_root {str(data_root)!r} is not a folder; expected a Sen1Floods11 "
                                    "(or simulated) data root, or None to simulate one")
    settings = Settings(stage=stage, data_root=root, run_dir=run.resolve(), out_dir=out.resolve(), seed=int(seed),
                        epochs=epochs, fast=bool(fast), model=model or d.model, crop=crop or None,
                        batch_size=int(batch_size), simulated=simulated or is_simulation(root), precision=precision,
                        threads=n_threads)
    record_run(settings)
    return settings


def record_run(settings: Settings) -> Path:
    """Write ``<run_dir>/run.json`` (name, data_root, params) if absent; never touches an existing one."""
    return record_standalone_run(settings.run_dir, stage=settings.stage, data_root=settings.data_root,
                                 seed=settings.seed, epochs=settings.epochs, fast=settings.fast)


def reference_for(catalog) -> str:
    """``"truth_water"`` when every hand-labelled chip has the simulator's truth, else ``"label"``."""
    hand = catalog[catalog["group"] == "hand"]
    if "truth_water_path" in hand.columns and len(hand) and bool(hand["truth_water_path"].notna().all()):
        return "truth_water"
    return "label"


def model_dir(settings: Settings, name: str, **config) -> Path:
    """Folder ``<out_dir>/<name>-<hash>`` of one trained model; the hash covers ``config`` and the settings'
    seed, epochs, model, crop, batch size and precision, so a rerun with the same settings resumes (or reuses) its
    run and other settings train in a new folder without touching the old one.
    """
    key = {"seed": settings.seed, "epochs": settings.epochs, "model": settings.model, "crop": settings.crop,
           "batch_size": settings.batch_size, "data_root": str(settings.data_root), "precision": settings.precision,
           **config}
    return settings.out_dir / f"{name}-{params_hash(key)[:8]}"


__all__ = ["RUN_DIR_ENV", "Settings", "dashboard_run_dir", "default_run_dir", "ensure_data", "is_simulation",
           "model_dir", "record_run", "reference_for", "repo_root", "setup"]
