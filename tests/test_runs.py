"""floodnb.runs: run layout, presets, run.json schema, the one simulate-if-absent rule, typed stage records."""

from __future__ import annotations

import dataclasses
import json

import pytest

from floodnb import workflow
from floodnb.runs import layout, presets
from floodnb.runs.records import (
    BaselineModel,
    MetricsRecord,
    StudentModel,
    StudentRecord,
    TeacherRecord,
    read_stage_record,
    write_stage_record,
)
from floodnb.runs.simulation import SimRequest, SimulationMismatch, ensure_simulation, manifest_settings
from floodnb.runs.state import (
    RunState,
    RunStateError,
    StageState,
    params_hash,
    read_run_state,
    record_standalone_run,
    write_run_state,
)
from floodnb.simulate.writer import INCOMPLETE, MANIFEST


def test_layout_names_and_stage_folders(tmp_path, monkeypatch):
    assert layout.NOTEBOOKS == ("01_explore_data", "02_weak_labels_and_noise", "03_train_teacher",
                                "04_distill_student", "05_evaluate")
    assert layout.stage_dir(tmp_path, layout.TEACHER) == tmp_path / "03_train_teacher"
    for bad in ("", "../x", ".hidden"):
        with pytest.raises(ValueError, match="plain name"):
            layout.stage_dir(tmp_path, bad)
    assert layout.PER_CHIP_TABLE == "05_evaluate/per_chip.csv" and layout.NOISE_TABLE.startswith(layout.NOISE)
    monkeypatch.setenv(layout.RUN_DIR_ENV, str(tmp_path / "env"))
    assert layout.default_run_dir() == tmp_path / "env"
    assert layout.dashboard_run_dir(None) == tmp_path / "env"
    assert layout.dashboard_run_dir(tmp_path / "given") == tmp_path / "given"
    monkeypatch.delenv(layout.RUN_DIR_ENV)
    monkeypatch.chdir(tmp_path)  # stand-alone notebooks write beside the notebook (the kernel's cwd)
    assert layout.default_run_dir() == tmp_path / "runs" / "interactive"
    assert layout.repo_root() not in layout.default_run_dir().parents


def test_presets_are_frozen_and_feed_the_pipeline_parameters():
    assert presets.preset(True) is presets.FAST and presets.preset(False) is presets.DEFAULT
    assert presets.FAST.train == presets.TrainDefaults(epochs=1, model="unet_tiny", crop=64)
    assert presets.DEFAULT.sim.params() == {"sim_hand": 120, "sim_weak": 120, "sim_size": 256}
    assert presets.SIM_PARAMS == ("sim_hand", "sim_weak", "sim_size")
    assert presets.SimSizes.from_params(presets.FAST.sim.params()) == presets.FAST.sim
    with pytest.raises(dataclasses.FrozenInstanceError):
        presets.DEFAULT.train.epochs = 9


def test_run_state_round_trip_keeps_unknown_keys(tmp_path):
    assert read_run_state(tmp_path) == RunState()
    h = params_hash({"b": 1, "a": [1, 2]})
    assert h == params_hash({"a": [1, 2], "b": 1}) and len(h) == 16 and h != params_hash({"a": [1, 2], "b": 2})
    state = RunState(name="r", data_root="/d", params={"seed": 0}, params_hash=h,
                     stages={"a": StageState(status="done", params_hash=h, seconds=1.5)}, extra={"note": [1]})
    write_run_state(tmp_path, state)
    on_disk = json.loads((tmp_path / "run.json").read_text())
    assert on_disk["stages"]["a"] == {"status": "done", "params_hash": h, "seconds": 1.5} and on_disk["note"] == [1]
    back = read_run_state(tmp_path)
    assert back == state and back.stage("a").done and back.stage("b") is None
    with pytest.raises(RunStateError, match="status"):
        StageState(status="finished")
    (tmp_path / "run.json").write_text("{not json")
    with pytest.raises(RunStateError, match="not valid JSON"):
        read_run_state(tmp_path)


def test_standalone_record_never_touches_an_existing_run_json(tmp_path):
    path = record_standalone_run(tmp_path, stage="01_explore_data", data_root="/d", seed=1, epochs=2, fast=True)
    state = read_run_state(tmp_path)
    assert (state.name, state.data_root, state.params) == (tmp_path.name, "/d", {"seed": 1, "epochs": 2, "fast": True})
    assert state.created_by == "notebook 01_explore_data (stand-alone)" and state.stages == {}
    before = path.read_bytes()
    record_standalone_run(tmp_path, stage="02_weak_labels_and_noise", data_root="/other", seed=5, epochs=1, fast=False)
    assert path.read_bytes() == before


def test_ensure_simulation_reuses_only_a_matching_simulation_and_redoes_an_interrupted_one(tmp_path):
    root = tmp_path / "sim"
    small = SimRequest(n_hand=8, n_weak=1, size=32, seed=0)
    first = ensure_simulation(root, small, workers=1, progress=False)
    assert first.simulated and manifest_settings(root) == small
    stamp = (root / MANIFEST).stat().st_mtime_ns
    again = ensure_simulation(root, small, workers=1, progress=False)
    assert not again.simulated and (root / MANIFEST).stat().st_mtime_ns == stamp

    other = dataclasses.replace(small, size=48)
    with pytest.raises(SimulationMismatch, match=r"use another folder \(nothing was changed\)"):
        ensure_simulation(root, other, workers=1, progress=False)
    assert manifest_settings(root) == small and (root / MANIFEST).stat().st_mtime_ns == stamp
    replaced = ensure_simulation(root, other, replace=True, workers=1, progress=False)
    assert replaced.simulated and manifest_settings(root) == other

    (root / MANIFEST).unlink()  # as if interrupted: the writer's marker is there, the manifest is not
    (root / INCOMPLETE).write_text("{}")
    redone = ensure_simulation(root, small, workers=1, progress=False)
    assert redone.simulated and manifest_settings(root) == small and not (root / INCOMPLETE).exists()


def test_notebooks_setup_uses_the_same_rule(tmp_path):
    run = tmp_path / "run"
    root = workflow.ensure_data(run, fast=True, seed=0, progress=False)
    assert root == (run / "simulate").resolve()
    assert manifest_settings(root) == SimRequest(n_hand=16, n_weak=24, size=64, seed=0)
    with pytest.raises(SimulationMismatch, match="run_dir"):
        workflow.ensure_data(run, fast=True, seed=1, progress=False)


def _teacher(**kw) -> TeacherRecord:
    base = dict(method="teacher", inputs=["s2"], metadata=False, model="unet_tiny", epochs=1, crop=64,
                checkpoint="teacher-ab/best.safetensors", pool_probs="teacher-ab/pool_probs.npy", pool_chips=3,
                pool_cloud_mask={"enabled": True, "masked_fraction": 0.1}, pool_quality=None, best_epoch=0,
                reference="truth_water", metric="water_iou", splits={"test": {"water_iou": 0.5}})
    return TeacherRecord(**{**base, **kw})


def test_stage_records_round_trip_typed(tmp_path):
    with pytest.raises(FileNotFoundError, match="run notebook 03_train_teacher.ipynb first"):
        read_stage_record(tmp_path, layout.TEACHER)
    teacher = _teacher()
    path = write_stage_record(tmp_path, layout.TEACHER, teacher)
    assert path == tmp_path / "03_train_teacher" / "metrics.json"
    assert read_stage_record(tmp_path, layout.TEACHER) == teacher
    with pytest.raises(FileNotFoundError, match="best.safetensors not found"):
        teacher.file(tmp_path, teacher.checkpoint)
    (tmp_path / "03_train_teacher" / "teacher-ab").mkdir()
    (tmp_path / "03_train_teacher" / "teacher-ab" / "best.safetensors").write_bytes(b"x")
    assert teacher.file(tmp_path, teacher.checkpoint).read_bytes() == b"x"

    student = StudentRecord(
        reference="truth_water", metric="water_iou", epochs=1, crop=None, model="unet_tiny", chips_per_epoch=9,
        student=StudentModel(mode="soft", temperature=2.0, distill_weight=1.0, checkpoint="student-cd/best.safetensors",
                             best_epoch=0, pool_cloud_mask={"enabled": False}, splits={}),
        s1_weak=BaselineModel(checkpoint="baseline-ef/best.safetensors", best_epoch=0, splits={}))
    write_stage_record(tmp_path, layout.STUDENT, student)
    on_disk = json.loads((tmp_path / "04_distill_student" / "metrics.json").read_text())
    assert on_disk["s1_weak"]["checkpoint"] == "baseline-ef/best.safetensors"  # file layout as before
    back = read_stage_record(tmp_path, layout.STUDENT)
    assert back == student and isinstance(back.student, StudentModel) and back.s1_weak.best_epoch == 0

    write_stage_record(tmp_path, layout.EVALUATE, MetricsRecord({"otsu": {"test": {"water_iou": 0.4}}}))
    assert read_stage_record(tmp_path, layout.EVALUATE).values["otsu"]["test"]["water_iou"] == 0.4
    with pytest.raises(TypeError, match="TeacherRecord"):
        write_stage_record(tmp_path, layout.TEACHER, MetricsRecord({}))
    (tmp_path / "03_train_teacher" / "metrics.json").write_text(json.dumps({"method": "teacher"}))
    with pytest.raises(ValueError, match="lacks"):
        read_stage_record(tmp_path, layout.TEACHER)
