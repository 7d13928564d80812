"""Headless pipeline: the notebooks run in order through papermill, results under ``runs/<name>/``.

``floodnb run`` (and :func:`run_pipeline`) executes::

    simulate (unless a data root is given) -> 01_explore_data -> 02_weak_labels_and_noise
        -> 03_train_teacher -> 04_distill_student -> 05_evaluate

Each notebook receives the same parameters (``data_root``, ``run_dir``, ``out_dir``, ``seed``,
``epochs``, ``fast`` and any extra ones) and writes only into its own ``out_dir =
runs/<name>/<notebook>/``; the executed notebook is kept at ``runs/<name>/notebooks/<notebook>.ipynb``.
``runs/<name>/run.json`` records every stage's status, parameters hash and wall time. Stage names,
folders, the ``run.json`` schema, the presets and the simulate-if-absent rule (a simulation is
reused only when its manifest matches the requested sizes and seed) live in :mod:`floodnb.runs`.
``notebooks/06_dashboard.ipynb`` is not run headless: it serves the finished run
(``floodnb dashboard runs/<name>`` or ``panel serve notebooks/06_dashboard.ipynb``).

Rerunning a run never silently redoes or skips work: a finished stage with the same parameters
is skipped *and reported*; a failed stage is rerun (and every stage after it, since its inputs
changed); a finished run with different parameters is refused unless ``force=True``.
A failing cell stops the run with :class:`PipelineError` naming the notebook and cell; the
executed notebook is kept and earlier stages' results are untouched.

Parameters are checked before any stage runs (:func:`check_params`): an unknown name, a name
``floodnb run`` sets itself (``run_dir``, ``out_dir``) or a value of the wrong type (the type of
the notebooks' default; ``epochs``/``crop``/``model``/``precision`` by :data:`NONE_DEFAULT_TYPES`) is a
``ValueError`` naming the parameter and what was expected.

Speed: ``precision`` (None: the preset's, ``"auto"``: bfloat16 mixed precision where the CPU
computes it natively and a measured training step is faster in it, else float32; see
:func:`floodnb.runtime.resolve_precision`) is resolved here and recorded with the other parameters
in ``run.json``; torch threads come from ``$FLOODNB_THREADS`` or the machine in every notebook
(``floodnb run --threads N`` sets the variable).
"""

from __future__ import annotations

import ast
import contextlib
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from floodnb import runtime
from floodnb.runs.layout import EXECUTED_DIR, NOTEBOOKS, SIMULATE, default_notebooks_dir, stage_dir
from floodnb.runs.presets import SIM_PARAMS, preset
from floodnb.runs.simulation import SimRequest, SimulationMismatch, ensure_simulation
from floodnb.runs.state import RunState, RunStateError, StageState, params_hash, read_run_state, write_run_state

SIMULATE_STAGE = SIMULATE
#: parameters set by the pipeline itself, never by the user
RESERVED_PARAMS: tuple[str, ...] = ("run_dir", "out_dir")
#: types of parameters whose notebook default is None (resolved by :func:`floodnb.workflow.setup`)
NONE_DEFAULT_TYPES: dict[str, type] = {"epochs": int, "crop": int, "model": str, "data_root": str, "precision": str}
#: integer parameters that must be >= 1
POSITIVE_PARAMS: tuple[str, ...] = ("epochs", "crop", "batch_size", "map_chips", "recompute_chips", "gallery",
                                    *SIM_PARAMS)


class PipelineError(RuntimeError):
    """A stage of the pipeline failed; the message names the notebook and the cell."""


@dataclass(frozen=True)
class StageResult:
    name: str
    action: str  # "ran" | "skipped" | "failed"
    seconds: float
    reason: str


@dataclass
class RunReport:
    run_dir: Path
    stages: list[StageResult] = field(default_factory=list)

    def table(self) -> str:
        lines = [f"{'stage':<28} {'action':<8} {'seconds':>8}  reason"]
        for s in self.stages:
            lines.append(f"{s.name:<28} {s.action:<8} {s.seconds:8.1f}  {s.reason}")
        return "\n".join(lines)


def notebook_parameters(nb_dir: str | Path, notebooks: tuple[str, ...]) -> dict[str, Any]:
    """``{name: default}`` of the ``parameters`` cells of ``notebooks`` (``.ipynb`` in ``nb_dir``)
    and of the pipeline's :data:`NOTEBOOKS` present there; a default that is not a Python literal
    is ``...`` (type not checked).
    """
    import papermill as pm

    out: dict[str, Any] = {}
    for nb in dict.fromkeys((*NOTEBOOKS, *notebooks)):
        path = Path(nb_dir) / f"{nb}.ipynb"
        if not path.exists():
            continue
        for name, info in pm.inspect_notebook(str(path)).items():
            try:
                out.setdefault(name, ast.literal_eval(info["default"]))
            except (ValueError, SyntaxError):
                out.setdefault(name, ...)
    return out


def _type_ok(value: Any, typ: type) -> bool:
    if typ is bool:
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    if typ is float:
        return isinstance(value, (int, float))
    if typ is str:
        return isinstance(value, (str, Path))
    return isinstance(value, typ)


_TYPE_WORDS = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


def check_params(params: dict[str, Any], known: dict[str, Any]) -> None:
    """Refuse unknown, reserved or mistyped ``params`` (``ValueError`` naming the parameter).

    ``known``: :func:`notebook_parameters`. ``None`` is accepted where the notebooks' default is
    None (the notebook picks the value). Integers of :data:`POSITIVE_PARAMS` must be >= 1 and
    ``model`` must be a name :func:`floodnb.models.build_model` knows.
    """
    for key, value in params.items():
        if key in RESERVED_PARAMS:
            raise ValueError(f"parameter {key!r} is set by floodnb run itself (runs/<name>/<stage>); leave it out")
        if key not in known and key not in SIM_PARAMS:
            raise ValueError(f"unknown parameter {key!r}; the notebooks take "
                             f"{', '.join(sorted(k for k in known if k not in RESERVED_PARAMS))} "
                             f"(and {', '.join(SIM_PARAMS)} for simulated data)")
        default = known.get(key, 0)
        if value is None and (default is None or key in NONE_DEFAULT_TYPES):
            continue
        typ = NONE_DEFAULT_TYPES.get(key) if default is None else type(default)
        if typ is None or default is ... or typ not in _TYPE_WORDS:
            continue
        positive = key in POSITIVE_PARAMS and typ is int
        if not _type_ok(value, typ) or (positive and value < 1):
            want = _TYPE_WORDS[typ] + (" >= 1" if positive else "") + (" or null" if default is None else "")
            raise ValueError(f"parameter {key}={value!r}: expected {want}")
        if key == "precision" and value != runtime.AUTO:  # valid as it is; resolving it may measure the machine
            from floodnb.runtime import resolve_precision

            resolve_precision(value, "cpu", name="parameter precision")
        if key == "model":
            from floodnb.models import model_names

            if value not in model_names():
                raise ValueError(f"parameter model={value!r}: expected one of {', '.join(model_names())}")


def _log(msg: str) -> None:
    print(f"[floodnb run] {msg}", file=sys.stderr)


def _notebooks_dir(name: str, notebooks: tuple[str, ...], notebooks_dir: str | Path | None) -> Path:
    """The folder holding ``notebooks`` (checked to exist); ``ValueError`` for a run name that is no folder name."""
    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"run name {name!r} must be a plain folder name")
    nb_dir = Path(notebooks_dir) if notebooks_dir else default_notebooks_dir()
    for nb in notebooks:
        if not (nb_dir / f"{nb}.ipynb").exists():
            raise FileNotFoundError(
                f"notebook {nb_dir / (nb + '.ipynb')} not found; the pipeline's notebooks are {NOTEBOOKS}"
            )
    return nb_dir


@dataclass
class _Run:
    """One ``run_pipeline`` call: the run folder, its state and the report being filled."""

    name: str
    run_dir: Path
    state: RunState
    report: RunReport
    force: bool

    def save(self) -> None:
        write_run_state(self.run_dir, self.state)

    def add(self, stage: str, action: str, seconds: float, reason: str) -> None:
        self.report.stages.append(StageResult(stage, action, seconds, reason))


def _open_run(name: str, runs_dir: str | Path, force: bool) -> _Run:
    run_dir = Path(runs_dir) / name
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        state = read_run_state(run_dir)
    except RunStateError as exc:
        raise PipelineError(str(exc)) from exc
    return _Run(name=name, run_dir=run_dir, state=state, report=RunReport(run_dir=run_dir), force=force)


def _simulate_stage(run: _Run, *, seed: int, sim: dict[str, int]) -> tuple[str, bool]:
    """The run's simulated data root (simulated or reused, see :func:`ensure_simulation`) and whether
    it was simulated again after an earlier attempt (later stages must then rerun).
    """
    sim_params = {"seed": seed, **sim}
    h = params_hash(sim_params)
    prev = run.state.stage(SIMULATE)
    want = SimRequest(n_hand=sim["sim_hand"], n_weak=sim["sim_weak"], size=sim["sim_size"], seed=seed)
    try:
        result = ensure_simulation(stage_dir(run.run_dir, SIMULATE), want, replace=run.force,
                                   hint="use a new --name or --force to redo",
                                   log=lambda msg: _log(f"simulate: {msg}"))
    except SimulationMismatch as exc:
        raise PipelineError(f"run {run.name!r}: {exc}") from exc
    if not result.simulated:
        run.add(SIMULATE, "skipped", 0.0, "finished earlier with the same parameters")
    elif not prev:
        run.add(SIMULATE, "ran", result.seconds, "first run")
    else:
        reason = "parameters changed (--force)" if prev.done else "previous attempt did not finish"
        run.add(SIMULATE, "ran", result.seconds, reason)
    if result.simulated or prev is None or not prev.done or prev.params_hash != h:
        run.state.stages[SIMULATE] = StageState(status="done", params=sim_params, params_hash=h,
                                                seconds=round(result.seconds, 2), data_root=str(result.root))
        run.save()
    return str(result.root), result.simulated and prev is not None


def _record_params(run: _Run, common: dict[str, Any]) -> str:
    """Record the notebooks' parameters in ``run.json``; refuse other ones than a finished run's unless forced."""
    h = params_hash(common)
    old = run.state.params
    if run.state.params_hash not in (None, h) and not run.force:
        changed = sorted(k for k in set(common) | set(old) if common.get(k) != old.get(k))
        raise PipelineError(
            f"run {run.name!r} exists with different parameters (changed: {', '.join(changed)}); "
            "use a new --name, or --force to redo its stages"
        )
    run.state.name, run.state.data_root = run.name, common["data_root"]
    run.state.params, run.state.params_hash = common, h
    run.save()
    return h


def _rerun_reason(prev: StageState | None, h: str, *, force: bool, invalidated: bool) -> str | None:
    """Why a notebook stage runs (again); None when it finished earlier with the same parameters."""
    if prev is not None and prev.done and prev.params_hash == h and not force and not invalidated:
        return None
    if prev is None:
        return "first run"
    if force and prev.done:
        return "--force"
    if invalidated:
        return "an earlier stage was rerun"
    return f"previous attempt {prev.status}"


@contextlib.contextmanager
def _static_figures():
    """Executed notebooks keep static PNG figures (``floodnb.viz.offline.STATIC_ENV``, inherited by the
    kernel) unless the caller set the variable; restored afterwards.
    """
    from floodnb.viz.offline import STATIC_ENV

    before = os.environ.get(STATIC_ENV)
    if before is None:
        os.environ[STATIC_ENV] = "1"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(STATIC_ENV, None)


def _run_notebook(run: _Run, nb: str, nb_path: Path, parameters: dict[str, Any], h: str, *, reason: str,
                  kernel_name: str | None, progress: bool) -> None:
    """Execute one notebook into its stage folder, recording running / done / failed in ``run.json``."""
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    _log(f"run {nb} ({reason})")
    out_dir = stage_dir(run.run_dir, nb)
    out_dir.mkdir(exist_ok=True)
    out_nb = run.run_dir / EXECUTED_DIR / f"{nb}.ipynb"
    run.state.stages[nb] = StageState(status="running", params_hash=h, started=time.time())
    run.save()
    t0 = time.perf_counter()
    try:
        with _static_figures():
            pm.execute_notebook(str(nb_path), str(out_nb),
                                parameters={**parameters, "out_dir": str(out_dir.resolve())},
                                kernel_name=kernel_name, progress_bar=progress, cwd=str(out_dir))
    except PapermillExecutionError as exc:
        dt = time.perf_counter() - t0
        msg = (f"notebook {nb} failed in cell {exc.cell_index} (execution count {exc.exec_count}): "
               f"{exc.ename}: {exc.evalue}. Executed notebook kept at {out_nb}; "
               "earlier stages' results are untouched")
        run.state.stages[nb] = StageState(status="failed", params_hash=h, seconds=round(dt, 2), error=msg,
                                          cell_index=exc.cell_index)
        run.save()
        run.add(nb, "failed", dt, msg)
        raise PipelineError(msg) from exc
    dt = time.perf_counter() - t0
    run.state.stages[nb] = StageState(status="done", params_hash=h, seconds=round(dt, 2), finished=time.time())
    run.save()
    run.add(nb, "ran", dt, reason)


def run_pipeline(
    name: str,
    *,
    runs_dir: str | Path = "runs",
    data_root: str | Path | None = None,
    seed: int = 0,
    epochs: int | None = None,
    fast: bool = False,
    params: dict[str, Any] | None = None,
    notebooks: tuple[str, ...] = NOTEBOOKS,
    notebooks_dir: str | Path | None = None,
    force: bool = False,
    kernel_name: str | None = None,
    progress: bool = True,
) -> RunReport:
    """Run the notebook pipeline headless; returns what ran, what was skipped and why.

    ``params`` are extra notebook parameters (e.g. ``{"teacher_inputs": "s2,s1"}``) and the
    simulator sizes ``sim_hand``, ``sim_weak``, ``sim_size`` when no ``data_root`` is given
    (defaults: :mod:`floodnb.runs.presets`).
    """
    from tqdm.auto import tqdm

    nb_dir = _notebooks_dir(name, notebooks, notebooks_dir)
    check_params({"seed": seed, "epochs": epochs, "fast": fast, "data_root": data_root, **dict(params or {})},
                 notebook_parameters(nb_dir, notebooks))
    run = _open_run(name, runs_dir, force)
    extra = dict(params or {})
    sim = {**preset(fast).sim.params(), **{k: extra.pop(k) for k in list(extra) if k.startswith("sim_")}}
    epochs = preset(fast).train.epochs if epochs is None else epochs
    # resolved once ("auto" -> what this machine runs fastest), so every notebook and the run record agree
    extra["precision"] = runtime.resolve_precision(extra.get("precision") or preset(fast).train.precision, "cpu",
                                                   name="precision")
    invalidated = False  # once a stage reruns, every later stage must rerun too
    if data_root is None:
        data_root, invalidated = _simulate_stage(run, seed=seed, sim=sim)
    common = {"data_root": str(Path(data_root).resolve()), "run_dir": str(run.run_dir.resolve()), "seed": seed,
              "epochs": epochs, "fast": fast, **extra}
    h = _record_params(run, common)
    (run.run_dir / EXECUTED_DIR).mkdir(exist_ok=True)
    bar = tqdm(notebooks, desc="floodnb run", unit="notebook", disable=not progress)
    for nb in bar:
        bar.set_postfix_str(nb)
        reason = _rerun_reason(run.state.stage(nb), h, force=force, invalidated=invalidated)
        if reason is None:
            run.add(nb, "skipped", 0.0, "finished earlier with the same parameters")
            _log(f"skip {nb}: finished earlier with the same parameters (--force redoes it)")
            continue
        _run_notebook(run, nb, nb_dir / f"{nb}.ipynb", common, h, reason=reason, kernel_name=kernel_name,
                      progress=progress)
        invalidated = True
    return run.report
