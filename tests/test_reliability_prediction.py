"""``floodnb predict`` never keeps stale maps: outputs are skipped only when the record beside them
(``<scene>_water.done.json``) names the same checkpoint (sha256) and settings; otherwise the command
refuses, naming what differs, until ``--overwrite`` recomputes them.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from _real_data import REAL_ROOT

from floodnb.cli import main
from floodnb.data.normalize import get_preset
from floodnb.models import ModelSpec, build_model, save_checkpoint

S1_FILE = REAL_ROOT / "HandLabeled" / "S1Hand" / "Ghana_97059_S1Hand.tif"  # shared sample or in-repo fixture
STEM = S1_FILE.stem


def _ckpt(path: Path, seed: int) -> Path:
    torch.manual_seed(seed)
    model = build_model("unet_tiny", in_channels=2)
    spec = ModelSpec(model_name="unet_tiny", model_config=model.config(), inputs=("s1",), bands={"s1": ("VV", "VH")},
                     normalizers={"s1": get_preset("sen1floods11_s1").to_dict()})
    return save_checkpoint(path, model, spec=spec)


def _predict(ckpt: Path, out: Path, *extra: str) -> int:
    return main(["predict", str(ckpt), str(S1_FILE), "--out-dir", str(out), "--tile", "256", "--overlap", "32",
                 "--threads", "1", *extra])


def _outputs(out: Path) -> dict:
    return {p.name: p.read_bytes() for p in sorted(out.iterdir())}


@pytest.fixture()
def first(tmp_path):
    a = _ckpt(tmp_path / "a.safetensors", seed=0)
    out = tmp_path / "out"
    assert _predict(a, out, "--polygons") == 0
    return a, out


def test_same_checkpoint_and_settings_skip(first, capsys):
    a, out = first
    before = _outputs(out)
    marker = json.loads((out / f"{STEM}_water.done.json").read_text())
    assert marker["settings"]["checkpoint"].startswith("sha256:") and marker["settings"]["threshold"] == 0.5
    capsys.readouterr()
    assert _predict(a, out, "--polygons") == 0
    assert "skipped" in capsys.readouterr().out
    assert _outputs(out) == before


def test_other_checkpoint_is_refused_then_recomputed_with_overwrite(first, tmp_path, capsys):
    _, out = first
    b = _ckpt(tmp_path / "b.safetensors", seed=1)
    before = _outputs(out)
    capsys.readouterr()
    assert _predict(b, out, "--polygons") == 2
    err = capsys.readouterr().err
    assert "other settings" in err and "'checkpoint'" in err and "--overwrite" in err
    assert _outputs(out) == before  # nothing replaced, nothing silently kept as if new
    assert _predict(b, out, "--polygons", "--overwrite") == 0
    assert _outputs(out)[f"{STEM}_water_prob.tif"] != before[f"{STEM}_water_prob.tif"]
    rec = json.loads((out / f"{STEM}_water.done.json").read_text())["settings"]["checkpoint"]
    from floodnb.scale.dask_predict import _checkpoint_id

    assert rec == _checkpoint_id(b, None)


def test_other_threshold_is_refused(first, capsys):
    a, out = first
    capsys.readouterr()
    assert _predict(a, out, "--polygons", "--threshold", "0.7") == 2
    err = capsys.readouterr().err
    assert "'threshold': (0.5, 0.7)" in err


def test_outputs_without_a_record_are_refused(tmp_path, capsys):
    a = _ckpt(tmp_path / "a.safetensors", seed=0)
    out = tmp_path / "out"
    out.mkdir()
    (out / f"{STEM}_water.tif").write_bytes(b"someone else's map")
    assert _predict(a, out) == 2
    assert f"{STEM}_water.done.json" in capsys.readouterr().err
    assert (out / f"{STEM}_water.tif").read_bytes() == b"someone else's map"
    assert _predict(a, out, "--overwrite") == 0
    assert (out / f"{STEM}_water.done.json").is_file()


def test_out_dir_that_is_a_file(tmp_path, capsys):
    a = _ckpt(tmp_path / "a.safetensors", seed=0)
    f = tmp_path / "out.txt"
    f.write_text("keep")
    assert _predict(a, f) == 2
    err = capsys.readouterr().err
    assert f"--out-dir {f}: is a file" in err and "Errno" not in err
