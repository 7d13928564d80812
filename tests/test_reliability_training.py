"""``floodnb train`` refuses to mix runs and cleans up after itself.

* Resuming into a run folder with another model, method, crop or data root is refused with the
  engine's "configuration differs" message naming each differing key with its stored and new
  value (before: a size-mismatch traceback, or silently mixed settings), and the folder is untouched.
* A run that fails before its first checkpoint leaves the folder as it found it: a new folder is
  removed (student pool labels included), an existing folder's files keep their content.
* ``--out-dir`` naming a file is a message, not ``[Errno 17]``.
"""

from __future__ import annotations

import shutil

import pytest
import torch

from floodnb.cli import main

torch.set_num_threads(1)
FAST = ["--epochs", "1", "--batch-size", "3", "--model", "unet_tiny", "--no-progress", "--checkpoint-every", "0"]


@pytest.fixture(scope="module")
def baseline_run(sim_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "baseline"
    assert main(["train", "baseline", "--data-root", str(sim_root), "--out-dir", str(out), *FAST]) == 0
    return out


def _snapshot(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _train(*args: str, fast=FAST) -> int:
    return main(["train", *args, *fast])


@pytest.mark.parametrize("change, key, values", [
    (["--model", "unet_small"], "model_name", ("unet_tiny", "unet_small")),
    (["--crop", "16"], "crop", ("None", "16")),
])
def test_resume_with_other_model_or_crop_is_refused(sim_root, baseline_run, capsys, change, key, values):
    before = _snapshot(baseline_run)
    fast = [a for a in FAST if a not in ("--model", "unet_tiny")] if key == "model_name" else FAST
    rc = _train("baseline", "--data-root", str(sim_root), "--out-dir", str(baseline_run), *change, fast=fast)
    err = capsys.readouterr().err
    assert rc == 2
    assert "configuration differs" in err and f"'{key}'" in err
    assert all(v in err for v in values), err
    assert "Traceback" not in err and "size mismatch" not in err
    assert _snapshot(baseline_run) == before


def test_resume_with_other_data_root_is_refused(sim_root, baseline_run, tmp_path, capsys):
    other = tmp_path / "copy"
    shutil.copytree(sim_root, other)
    before = _snapshot(baseline_run)
    assert _train("baseline", "--data-root", str(other), "--out-dir", str(baseline_run)) == 2
    err = capsys.readouterr().err
    assert "configuration differs" in err and "'data'" in err and str(other.resolve()) in err
    assert _snapshot(baseline_run) == before


def test_teacher_into_a_baseline_folder_is_refused(sim_root, baseline_run, capsys):
    before = _snapshot(baseline_run)
    assert _train("teacher", "--data-root", str(sim_root), "--out-dir", str(baseline_run)) == 2
    err = capsys.readouterr().err
    assert "configuration differs" in err and "'method'" in err and "baseline_s1_weak" in err and "teacher" in err
    assert _snapshot(baseline_run) == before


def test_same_settings_still_resume(sim_root, baseline_run, capsys):
    assert _train("baseline", "--data-root", str(sim_root), "--out-dir", str(baseline_run)) == 0
    assert "best epoch 1" in capsys.readouterr().out


def test_failure_before_first_checkpoint_removes_a_new_folder(sim_root, tmp_path, capsys):
    out = tmp_path / "new" / "run"
    assert _train("baseline", "--data-root", str(sim_root), "--out-dir", str(out), "--crop", "999") == 2
    assert "crop 999" in capsys.readouterr().err
    assert not out.exists()


def test_failure_before_first_checkpoint_keeps_an_existing_folder_as_it_was(sim_root, tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("my notes")
    (out / "config.json").write_text('{"mine": true}')
    (out / "train_log.jsonl").write_text('{"old": 1}\n')
    before = _snapshot(out)
    assert _train("baseline", "--data-root", str(sim_root), "--out-dir", str(out), "--crop", "999") == 2
    assert "crop 999" in capsys.readouterr().err
    assert _snapshot(out) == before
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "notes.txt", "train_log.jsonl"]


def test_failed_student_removes_its_new_folder_with_pool_labels(sim_root, tmp_path, capsys):
    teacher = tmp_path / "teacher"
    assert _train("teacher", "--data-root", str(sim_root), "--out-dir", str(teacher), "--bands", "B3,B8") == 0
    out = tmp_path / "student"
    assert _train("student", "--data-root", str(sim_root), "--out-dir", str(out), "--teacher",
                  str(teacher / "best.safetensors"), "--crop", "999") == 2
    assert "crop 999" in capsys.readouterr().err
    assert not out.exists()


def test_out_dir_that_is_a_file(sim_root, tmp_path, capsys):
    f = tmp_path / "afile"
    f.write_text("keep me")
    assert _train("baseline", "--data-root", str(sim_root), "--out-dir", str(f)) == 2
    err = capsys.readouterr().err
    assert f"--out-dir {f}: is a file" in err and "Errno" not in err
    assert f.read_text() == "keep me"


def test_student_resume_with_another_teacher_is_refused(sim_root, tmp_path, capsys):
    teachers = []
    for i, bands in enumerate(("B3,B8", "B4,B8")):
        t = tmp_path / f"teacher{i}"
        assert _train("teacher", "--data-root", str(sim_root), "--out-dir", str(t), "--bands", bands) == 0
        teachers.append(t / "best.safetensors")
    out = tmp_path / "student"
    assert _train("student", "--data-root", str(sim_root), "--out-dir", str(out), "--teacher", str(teachers[0])) == 0
    before = _snapshot(out)
    capsys.readouterr()
    assert _train("student", "--data-root", str(sim_root), "--out-dir", str(out), "--teacher", str(teachers[1])) == 2
    err = capsys.readouterr().err
    assert "configuration differs" in err and "'teacher'" in err and "sha256:" in err
    assert _snapshot(out) == before
