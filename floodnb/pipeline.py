"""Headless pipeline: the notebooks run in order through papermill, results under ``runs/<name>/``.

``floodnb run`` (and :func:`run_pipeline`) executes::

    simulate (unless a data root is given) -> 01_explore_data -> 02_weak_labels_and_noise
        -> 03_train_teacher -> 04_distill_student -> 05_evaluate

Each notebook receives the same parameters (``data_root``, ``run_dir``, ``out_dir``, ``seed``,
``epochs``, ``fast`` and any extra ones) and writes only into its own ``out_dir =
runs/<name>/<notebook>/``; the executed notebook is kept at ``runs/<name>/notebooks/<notebook>.ipynb``.
``runs/<name>/run.json`` records every stage's status, parameters hash and wall time.
``notebooks/06_dashboard.ipynb`` is not run headless: it serves the finished run
(``floodnb dashboard runs/<name>`` or ``panel serve notebooks/06_dashboard.ipynb``).

Rerunning a run never silently redoes or skips work: a finished stage with the same parameters
is skipped *and reported*; a failed stage is rerun (and every stage after it, since its inputs
changed); a finished run with different parameters is refused unless ``force=True``.
A failing cell stops the run with :class:`PipelineError` naming the notebook and cell; the
executed notebook is kept and earlier stages' results are untouched.

Parameters are checked before any stage runs (:func:`check_params`): an unknown name, a name
``floodnb run`` sets itself (``run_dir``, ``out_dir``) or a value of the wrong type (the type of
the notebooks' default; ``epochs``/``crop``/``model`` by :data:`NONE_DEFAULT_TYPES`) is a
``ValueError`` naming the parameter and what was expected.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from floodnb.io_utils import atomic_write_json

NOTEBOOKS: tuple[str, ...] = (
    "01_explore_data",
    "02_weak_labels_and_noise",
    "03_train_teacher",
    "04_distill_student",
    "05_evaluate",
)
SIMULATE_STAGE = "simulate"
#: Simulated dataset sizes used when no data root is given. The default run (simulate + five
#: notebooks, unet_small on 128 px crops, :data:`floodnb.workflow.DEFAULTS` epochs) is sized to
#: finish in under 10 minutes on 2 CPU cores (``benchmarks/bench_run.py``).
SIM_DEFAULT: dict[str, int] = {"sim_hand": 120, "sim_weak": 120, "sim_size": 256}
SIM_FAST: dict[str, int] = {"sim_hand": 16, "sim_weak": 24, "sim_size": 64}
#: parameters set by the pipeline itself, never by the user
RESERVED_PARAMS: tuple[str, ...] = ("run_dir", "out_dir")
#: types of parameters whose notebook default is None (resolved by :func:`floodnb.workflow.setup`)
NONE_DEFAULT_TYPES: dict[str, type] = {"epochs": int, "crop": int, "model": str, "data_root": str}
#: integer parameters that must be >= 1
POSITIVE_PARAMS: tuple[str, ...] = ("epochs", "crop", "batch_size", "map_chips", "recompute_chips", "gallery",
                                    *SIM_DEFAULT)


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


def default_notebooks_dir() -> Path:
    """The repository's ``notebooks/`` folder (editable installs and source checkouts)."""
    return Path(__file__).resolve().parents[1] / "notebooks"


def stage_dir(run_dir: str | Path, stage: str) -> Path:
    """Output folder of a stage inside a run (``runs/<name>/<stage>/``)."""
    if not stage or "/" in stage or stage.startswith("."):
        raise ValueError(f"stage {stage!r} must be a plain name such as {NOTEBOOKS[0]!r}")
    return Path(run_dir) / stage


def _hash(params: dict[str, Any]) -> str:
    blob = json.dumps(params, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def notebook_parameters(nb_dir: str | Path, notebooks: tuple[str, ...]) -> dict[str, Any]:
    """``{name: default}`` of the ``parameters`` cells of ``notebooks`` (``.ipynb`` in ``nb_dir``)
    and of the pipeline's :data:`NOTEBOOKS` present there; a default that is not a Python literal
    is ``...`` (type not checked)."""
    import ast

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
        if key not in known and key not in SIM_DEFAULT:
            raise ValueError(f"unknown parameter {key!r}; the notebooks take "
                             f"{', '.join(sorted(k for k in known if k not in RESERVED_PARAMS))} "
                             f"(and {', '.join(SIM_DEFAULT)} for simulated data)")
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
        if key == "model":
            from floodnb.models import model_names

            if value not in model_names():
                raise ValueError(f"parameter model={value!r}: expected one of {', '.join(model_names())}")


def _load_state(path: Path) -> dict:
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise PipelineError(f"{path} is not valid JSON ({exc}); move it away or use a new run name") from exc


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
    simulator sizes ``sim_hand``, ``sim_weak``, ``sim_size`` when no ``data_root`` is given.
    """
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError
    from tqdm.auto import tqdm

    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"run name {name!r} must be a plain folder name")
    nb_dir = Path(notebooks_dir) if notebooks_dir else default_notebooks_dir()
    for nb in notebooks:
        if not (nb_dir / f"{nb}.ipynb").exists():
            raise FileNotFoundError(
                f"notebook {nb_dir / (nb + '.ipynb')} not found; the pipeline's notebooks are {NOTEBOOKS}"
            )

    check_params({"seed": seed, "epochs": epochs, "fast": fast, "data_root": data_root, **dict(params or {})},
                 notebook_parameters(nb_dir, notebooks))

    run_dir = Path(runs_dir) / name
    run_dir.mkdir(parents=True, exist_ok=True)
    state_path = run_dir / "run.json"
    state = _load_state(state_path)
    stages_state: dict[str, dict] = state.setdefault("stages", {})

    extra = dict(params or {})
    sim = {**(SIM_FAST if fast else SIM_DEFAULT), **{k: extra.pop(k) for k in list(extra) if k.startswith("sim_")}}
    if epochs is None:
        from floodnb.workflow import DEFAULTS

        epochs = DEFAULTS[bool(fast)]["epochs"]

    report = RunReport(run_dir=run_dir)
    invalidated = False  # once a stage reruns, every later stage must rerun too

    # ---- data: given root, or simulated once per run -------------------------------------
    if data_root is None:
        sim_params = {"seed": seed, **sim}
        h = _hash(sim_params)
        prev = stages_state.get(SIMULATE_STAGE, {})
        sim_root = stage_dir(run_dir, SIMULATE_STAGE)
        if prev.get("status") == "done" and prev.get("params_hash") == h and not force:
            report.stages.append(StageResult(SIMULATE_STAGE, "skipped", 0.0, "finished earlier with the same parameters"))
            data_root = prev["data_root"]
        else:
            if prev.get("status") == "done" and prev.get("params_hash") != h and not force:
                raise PipelineError(
                    f"run {name!r} already simulated data with other parameters ({prev.get('params')}); "
                    f"use a new --name or --force to redo"
                )
            from floodnb.simulate import simulate_dataset

            t0 = time.perf_counter()
            print(f"[floodnb run] simulate: {sim_params}", file=sys.stderr)
            data_root = simulate_dataset(
                sim_root, n_hand=sim["sim_hand"], n_weak=sim["sim_weak"], size=sim["sim_size"], seed=seed
            )
            dt = time.perf_counter() - t0
            stages_state[SIMULATE_STAGE] = {
                "status": "done", "params": sim_params, "params_hash": h, "seconds": round(dt, 2),
                "data_root": str(data_root),
            }
            atomic_write_json(state_path, state)
            reason = "first run" if not prev else "parameters changed (--force)" if prev.get("status") == "done" else "previous attempt did not finish"
            report.stages.append(StageResult(SIMULATE_STAGE, "ran", dt, reason))
            invalidated = bool(prev)
    data_root = str(Path(data_root).resolve())

    common = {"data_root": data_root, "run_dir": str(run_dir.resolve()), "seed": seed, "epochs": epochs, "fast": fast, **extra}
    h = _hash(common)
    if state.get("params_hash") not in (None, h) and not force:
        changed = sorted(k for k in set(common) | set(state.get("params", {}))
                         if common.get(k) != state.get("params", {}).get(k))
        raise PipelineError(
            f"run {name!r} exists with different parameters (changed: {', '.join(changed)}); "
            "use a new --name, or --force to redo its stages"
        )
    state.update(name=name, data_root=data_root, params=common, params_hash=h)
    atomic_write_json(state_path, state)

    executed_dir = run_dir / "notebooks"
    executed_dir.mkdir(exist_ok=True)
    bar = tqdm(notebooks, desc="floodnb run", unit="notebook", disable=not progress)
    for nb in bar:
        bar.set_postfix_str(nb)
        prev = stages_state.get(nb, {})
        if prev.get("status") == "done" and prev.get("params_hash") == h and not force and not invalidated:
            report.stages.append(StageResult(nb, "skipped", 0.0, "finished earlier with the same parameters"))
            print(f"[floodnb run] skip {nb}: finished earlier with the same parameters (--force redoes it)", file=sys.stderr)
            continue
        if not prev:
            reason = "first run"
        elif force and prev.get("status") == "done":
            reason = "--force"
        elif invalidated:
            reason = "an earlier stage was rerun"
        else:
            reason = f"previous attempt {prev.get('status')}"
        print(f"[floodnb run] run {nb} ({reason})", file=sys.stderr)
        out_dir = stage_dir(run_dir, nb)
        out_dir.mkdir(exist_ok=True)
        out_nb = executed_dir / f"{nb}.ipynb"
        stages_state[nb] = {"status": "running", "params_hash": h, "started": time.time()}
        atomic_write_json(state_path, state)
        t0 = time.perf_counter()
        try:
            pm.execute_notebook(
                str(nb_dir / f"{nb}.ipynb"), str(out_nb),
                parameters={**common, "out_dir": str(out_dir.resolve())},
                kernel_name=kernel_name, progress_bar=progress, cwd=str(out_dir),
            )
        except PapermillExecutionError as exc:
            dt = time.perf_counter() - t0
            msg = (f"notebook {nb} failed in cell {exc.cell_index} (execution count {exc.exec_count}): "
                   f"{exc.ename}: {exc.evalue}. Executed notebook kept at {out_nb}; "
                   "earlier stages' results are untouched")
            stages_state[nb] = {"status": "failed", "params_hash": h, "seconds": round(dt, 2), "error": msg,
                                "cell_index": exc.cell_index}
            atomic_write_json(state_path, state)
            report.stages.append(StageResult(nb, "failed", dt, msg))
            raise PipelineError(msg) from exc
        dt = time.perf_counter() - t0
        stages_state[nb] = {"status": "done", "params_hash": h, "seconds": round(dt, 2), "finished": time.time()}
        atomic_write_json(state_path, state)
        report.stages.append(StageResult(nb, "ran", dt, reason))
        invalidated = True
    return report
