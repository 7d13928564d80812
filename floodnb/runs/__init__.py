"""The owner of runs: folder layout, presets, ``run.json``, simulated data and stage records.

* :mod:`floodnb.runs.layout` — stage names and folders, ``run.json`` path, default run folders;
* :mod:`floodnb.runs.presets` — the default / fast presets (frozen dataclasses);
* :mod:`floodnb.runs.state` — the ``run.json`` schema, read and written by one pair of functions;
* :mod:`floodnb.runs.simulation` — the one "simulate if absent" routine;
* :mod:`floodnb.runs.records` — typed stage records (``write_stage_record`` / ``read_stage_record``).

``floodnb.pipeline`` (``floodnb run``), ``floodnb.workflow`` (the notebooks), the dashboard and
``floodnb.experiment`` use these; none of them hard-codes a stage folder or a preset.
"""

from floodnb.runs.layout import (
    DASHBOARD,
    EVALUATE,
    EXPLORE,
    NOISE,
    NOTEBOOKS,
    SIMULATE,
    STUDENT,
    TEACHER,
    dashboard_run_dir,
    default_run_dir,
    repo_root,
    stage_dir,
)
from floodnb.runs.presets import DEFAULT, FAST, Preset, SimSizes, TrainDefaults, preset
from floodnb.runs.records import (
    MetricsRecord,
    StageRecord,
    StudentRecord,
    TeacherRecord,
    read_stage_record,
    stage_file,
    write_stage_record,
)
from floodnb.runs.simulation import SimRequest, SimResult, SimulationMismatch, ensure_simulation, is_simulation
from floodnb.runs.state import RunState, RunStateError, StageState, params_hash, read_run_state, write_run_state

__all__ = [
    "DASHBOARD", "DEFAULT", "EVALUATE", "EXPLORE", "FAST", "NOISE", "NOTEBOOKS", "SIMULATE", "STUDENT", "TEACHER",
    "MetricsRecord", "Preset", "RunState", "RunStateError", "SimRequest", "SimResult", "SimSizes",
    "SimulationMismatch", "StageRecord", "StageState", "StudentRecord", "TeacherRecord", "TrainDefaults",
    "dashboard_run_dir", "default_run_dir", "ensure_simulation", "is_simulation", "params_hash", "preset",
    "read_run_state", "read_stage_record", "repo_root", "stage_dir", "stage_file", "write_run_state",
    "write_stage_record",
]
