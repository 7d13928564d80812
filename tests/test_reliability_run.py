"""``floodnb run`` refuses bad input before any stage runs, with a message and exit code 2:
broken ``--config`` YAML, mistyped or unknown ``-p`` parameters, a runs folder that is a file."""

from __future__ import annotations

import pytest

from floodnb.cli import main
from floodnb.pipeline import check_params, default_notebooks_dir, notebook_parameters


def _run(tmp_path, *args: str) -> int:
    return main(["run", "--name", "r", "--runs-dir", str(tmp_path / "runs"), "--fast", "--no-progress", *args])


@pytest.mark.parametrize("param, expect", [
    ("epochs=abc", "parameter epochs='abc': expected an integer >= 1"),
    ("epochs=0", "parameter epochs=0: expected an integer >= 1"),
    ("temperature=warm", "parameter temperature='warm': expected a number"),
    ("teacher_metadata=3", "parameter teacher_metadata=3: expected true or false"),
    ("crop=-5", "parameter crop=-5: expected an integer >= 1 or null"),
    ("model=unet_huge", "parameter model='unet_huge': expected one of"),
    ("nosuch=1", "unknown parameter 'nosuch'; the notebooks take"),
    ("out_dir=/tmp/x", "parameter 'out_dir' is set by floodnb run itself"),
    ("epochs=[1", "--param 'epochs=[1': the value is not valid YAML"),
])
def test_bad_param_is_refused_before_any_stage(tmp_path, capsys, param, expect):
    assert _run(tmp_path, "-p", param) == 2
    err = capsys.readouterr().err
    assert expect in err and "Traceback" not in err
    assert not (tmp_path / "runs").exists()  # nothing simulated, no run folder


def test_broken_config_yaml_names_file_and_line(tmp_path, capsys):
    cfg = tmp_path / "params.yaml"
    cfg.write_text("epochs: 2\nteacher_inputs: [s2, s1\nseed: 1\n")
    assert _run(tmp_path, "--config", str(cfg)) == 2
    err = capsys.readouterr().err
    assert f"--config {cfg}: not valid YAML at line" in err and "Traceback" not in err
    assert not (tmp_path / "runs").exists()


def test_config_with_a_mistyped_value_names_the_parameter(tmp_path, capsys):
    cfg = tmp_path / "params.yaml"
    cfg.write_text("batch_size: eight\n")
    assert _run(tmp_path, "--config", str(cfg)) == 2
    assert "parameter batch_size='eight': expected an integer >= 1" in capsys.readouterr().err


def test_runs_dir_that_is_a_file(tmp_path, capsys):
    f = tmp_path / "runs"
    f.write_text("not a folder")
    assert _run(tmp_path) == 2
    err = capsys.readouterr().err
    assert f"{f / 'r'}: has a file {f} where a folder is needed" in err and "Errno" not in err
    assert f.read_text() == "not a folder"


def test_good_params_pass_the_check():
    known = notebook_parameters(default_notebooks_dir(), ())
    assert {"epochs", "crop", "teacher_inputs", "temperature", "eval_splits"} <= set(known)
    check_params({"epochs": 2, "crop": None, "model": "unet_tiny", "temperature": 1, "teacher_metadata": True,
                  "sim_hand": 8, "data_root": None, "seed": 0}, known)
