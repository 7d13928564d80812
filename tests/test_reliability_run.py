"""``floodnb run`` refuses bad input before any stage runs, with a message and exit code 2:
broken ``--config`` YAML, mistyped or unknown ``-p`` parameters, a runs folder that is a file.
``floodnb download`` (the step before a run on real data) never saves an HTML error page under a
final ``.tif`` name (local bucket server of ``tests/_http_server.py``).
"""

from __future__ import annotations

import pytest

from floodnb.cli import main
from floodnb.data import layout as lay
from floodnb.pipeline import check_params, default_notebooks_dir, notebook_parameters
from tests._http_server import SHARED, BucketServer, Faults


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


def test_download_without_listing_refuses_an_html_page_under_a_tif_name(tmp_path, capsys):
    chip = "Ghana_97059"
    split_csv = tmp_path / "srv" / lay.split_csv_name("test")
    split_csv.parent.mkdir()
    split_csv.write_bytes(f"{chip}_S1Hand.tif,{chip}_LabelHand.tif\r\n".encode())
    page = tmp_path / "srv" / "error.html"
    page.write_text("<!DOCTYPE html><html><body>Sign in to continue</body></html>")
    s1 = f"v1.1/data/flood_events/HandLabeled/S1Hand/{chip}_S1Hand.tif"
    label = f"v1.1/data/flood_events/HandLabeled/LabelHand/{chip}_LabelHand.tif"
    objects = {f"v1.1/splits/flood_handlabeled/{split_csv.name}": split_csv,
               "v1.1/Sen1Floods11_Metadata.geojson": SHARED / "Sen1Floods11_Metadata.geojson",
               s1: SHARED / "HandLabeled" / "S1Hand" / f"{chip}_S1Hand.tif", label: page}
    out = tmp_path / "out"
    with BucketServer({"sen1floods11": objects}, faults=Faults(md5_header=False)) as srv:
        rc = main(["download", str(out), "--splits", "test", "--base-url", srv.base_url("sen1floods11"),
                   "--listing-url", "none", "--no-progress", "--backoff", "0.01", "--retries", "0"])
    text = capsys.readouterr()
    assert rc == 1
    assert "not a TIFF" in text.out + text.err and f"{chip}_LabelHand.tif" in text.out + text.err
    assert not (out / label).exists()
    assert not list(out.rglob("*.part"))
    assert (out / s1).read_bytes() == objects[s1].read_bytes()  # a real GeoTIFF is kept


def test_bare_os_errors_are_reworded_with_the_path():
    import errno

    from floodnb.cli import _message

    msg = _message(FileExistsError(errno.EEXIST, "File exists", "/data/out"))
    assert msg.startswith("/data/out: File exists; expected a folder there") and "Errno" not in msg
    assert _message(ValueError("--x: bad")) == "--x: bad"
