"""Bad input on the data and evaluation side is refused with a message, or handled and reported.

Each test is a regression test for one defect of the bad-input sweep (issue 12): simulating
beside a real dataset, a root holding two layouts, evaluation overwriting a training run's
records, S1/S2 in the wrong units or with untagged fill values, an S2-only chip blocking a split,
split-CSV chips missing on disk going unreported, and a binary split CSV.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from conftest import make_tiny_dataset, write_geotiff

from floodnb.cli import main

torch.set_num_threads(1)
FAST = ["--epochs", "1", "--batch-size", "3", "--model", "unet_tiny", "--no-progress", "--checkpoint-every", "0"]


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def sim_root(tmp_path_factory):
    from floodnb.simulate import simulate_dataset

    return simulate_dataset(tmp_path_factory.mktemp("sim") / "data", n_hand=12, n_weak=0, size=32, seed=0,
                            workers=1, progress=False)


@pytest.fixture(scope="module")
def run_dir(sim_root, tmp_path_factory):
    """A trained S1 baseline run folder (metrics.json, per_chip.csv, best.safetensors)."""
    out = tmp_path_factory.mktemp("run") / "b"
    assert main(["train", "baseline", "--kind", "s1_hand", "--data-root", str(sim_root), "--out-dir", str(out),
                 *FAST]) == 0
    return out


def _rewrite_s1(root: Path, fn) -> None:
    """Replace every S1 chip file under ``root`` by ``fn(values)`` (same grid, dtype from ``fn``)."""
    for path in sorted(root.rglob("*_S1Hand.tif")):
        with rasterio.open(path) as ds:
            data, profile, desc = ds.read(), ds.profile, ds.descriptions
        new = fn(data)
        profile.update(dtype=new.dtype.name, nodata=None if new.dtype.kind != "f" else profile["nodata"])
        with rasterio.open(path, "w", **profile) as ds:
            ds.write(new)
            ds.descriptions = desc


# --- simulate beside a real dataset; a root with two layouts ------------------------------------------------


def test_simulate_refuses_a_folder_holding_a_short_layout_dataset(tmp_path, capsys):
    real = make_tiny_dataset(tmp_path / "real", layout="short")
    before = _digest(real)
    rc = main(["simulate", str(real), "--hand", "2", "--weak", "0", "--size", "32", "--workers", "1"])
    err = capsys.readouterr().err
    assert rc == 2
    assert "floodnb did not write" in err and "'short'" in err and str(real) in err and "Traceback" not in err
    assert not (real / "v1.1").exists() and _digest(real) == before


def test_simulate_refuses_a_folder_that_is_a_v11_dataset_even_with_overwrite(tmp_path):
    from floodnb.simulate import simulate_dataset

    v11 = tmp_path / "v1.1"
    make_tiny_dataset(v11, layout="v1.1")
    before = _digest(v11)
    with pytest.raises(FileExistsError, match="'v1.1'.*did not write|did not write.*'v1.1'"):
        simulate_dataset(v11, n_hand=2, n_weak=0, size=32, workers=1, overwrite=True, progress=False)
    assert _digest(v11) == before


def test_catalog_refuses_a_root_holding_two_layouts(tmp_path, capsys):
    from floodnb.data.catalog import build_catalog

    root = make_tiny_dataset(tmp_path / "mixed", layout="short")
    make_tiny_dataset(root, layout="official", seed=1)
    with pytest.raises(ValueError, match="more than one Sen1Floods11 layout") as exc:
        build_catalog(root)
    assert "'official'" in str(exc.value) and "'short'" in str(exc.value) and str(root) in str(exc.value)
    assert main(["catalog", str(root)]) == 2
    assert "more than one Sen1Floods11 layout" in capsys.readouterr().err


def test_a_v11_root_is_one_layout_not_two(tmp_path):
    from floodnb.data.layout import detect, present_layouts

    root = make_tiny_dataset(tmp_path / "v11", layout="v1.1")  # has splits/flood_handlabeled/
    assert present_layouts(root) == ["v1.1"] and detect(root) == "v1.1"


# --- evaluate never overwrites a training run's records -----------------------------------------------------


def test_evaluate_into_the_run_folder_keeps_the_run_records(run_dir, sim_root, capsys):
    records = {name: (run_dir / name).read_bytes() for name in ("metrics.json", "per_chip.csv")}
    assert main(["evaluate", str(run_dir), "--data-root", str(sim_root), "--split", "test", "--out-dir",
                 str(run_dir), "--no-progress"]) == 0
    for name, data in records.items():
        assert (run_dir / name).read_bytes() == data, name
    saved = json.loads((run_dir / "eval_metrics.json").read_text())
    assert saved["splits"]["test"]["chips"] >= 1 and (run_dir / "eval_per_chip.csv").is_file()
    assert "eval_metrics.json" in capsys.readouterr().out


# --- units, dtypes, fill values -----------------------------------------------------------------------------


def _s1_chip(tmp_path: Path, values: np.ndarray, *, nodata=None) -> dict[str, str]:
    path = write_geotiff(tmp_path / "Spain_1_S1Hand.tif", values, lat=38.1, lon=-0.76, nodata=nodata,
                         descriptions=("VV", "VH"))
    return {"s1": str(path), "chip_id": "Spain_1"}


def _db(shape=(2, 32, 32), seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = np.stack([rng.normal(-10, 3, shape[1:]), rng.normal(-17, 3, shape[1:])]).astype(np.float32)
    x[0, 0, 0] = 12.0  # a bright scatterer above 0 dB is real
    return x


@pytest.mark.parametrize("units, scale", [("linear", 10.0), ("amplitude", 20.0)])
def test_s1_in_linear_units_is_refused_unless_stated_then_converted(tmp_path, units, scale):
    from floodnb.data.io import read_arrays
    from floodnb.data.units import UnitsError

    db = _db()
    chip = _s1_chip(tmp_path, (10 ** (db / scale)).astype(np.float32))
    with pytest.raises(UnitsError, match="Spain_1_S1Hand.tif.*band VV.*above 0 dB.*--s1-units linear|amplitude"):
        read_arrays(chip)
    arrays, _ = read_arrays(chip, s1_units=units)
    np.testing.assert_allclose(arrays["s1"], db, atol=1e-4)
    # the same dB values stated as linear: negative, so refused by name
    with pytest.raises(UnitsError, match="stated as linear.*negative.*--s1-units db"):
        read_arrays(_s1_chip(tmp_path, db), s1_units="linear")


def test_s1_stored_as_integers_is_refused_naming_dtype(tmp_path):
    from floodnb.data.io import load_chip
    from floodnb.data.units import UnitsError

    chip = _s1_chip(tmp_path, np.rint(_db() * 100).astype(np.int16))
    with pytest.raises(UnitsError, match=r"Spain_1_S1Hand.tif: Sentinel-1 is stored as int16 \(observed range"):
        load_chip(chip)
    with pytest.raises(UnitsError, match=r"band VV has 10[0-9][0-9] of 1024 valid pixels below -100 dB.*not dB values"):
        load_chip(chip, s1_units="db")  # stated as dB, but dB x 100
    ds = load_chip(_s1_chip(tmp_path, np.rint(_db()).astype(np.int16)), s1_units="db")  # whole dB as int16: fine
    assert ds["s1"].dtype == np.float32 and float(ds["s1"].max()) == 12.0


def test_untagged_s1_fill_is_refused_and_a_tagged_one_is_nodata(tmp_path):
    from floodnb.data.io import read_arrays
    from floodnb.data.units import UnitsError

    x = _db()
    x[:, :20, :] = -9999.0
    with pytest.raises(UnitsError, match=r"band VV has 640 pixels below -100 dB \(640 of them exactly -9999"):
        read_arrays(_s1_chip(tmp_path, x))
    arrays, _ = read_arrays(_s1_chip(tmp_path, x, nodata=-9999.0))
    assert np.isnan(arrays["s1"][:, :20]).all() and np.isfinite(arrays["s1"][:, 20:]).all()


def _s2_chip(tmp_path: Path, values: np.ndarray) -> dict[str, str]:
    from floodnb.bands import S2_BANDS

    path = write_geotiff(tmp_path / "Spain_1_S2Hand.tif", values, lat=38.1, lon=-0.76, descriptions=S2_BANDS)
    return {"s2": str(path), "chip_id": "Spain_1"}


def test_s2_reflectance_floats_and_untagged_fill_are_refused(tmp_path):
    from floodnb.data.io import read_arrays
    from floodnb.data.units import UnitsError

    refl = np.random.default_rng(0).uniform(0.01, 0.4, (13, 16, 16)).astype(np.float32)
    with pytest.raises(UnitsError, match=r"Spain_1_S2Hand.tif: Sentinel-2 values are all within 0..2.*float32.*"
                                         r"reflectance x 10000"):
        read_arrays(_s2_chip(tmp_path, refl))
    dn = np.rint(refl * 10000).astype(np.int16)
    dn[:, :4, :] = -9999
    with pytest.raises(UnitsError, match=r"band B1 has 64 pixels below -1000 \(64 of them exactly -9999"):
        read_arrays(_s2_chip(tmp_path, dn))
    dn[:, :4, :] = 0  # Sen1Floods11 nodata: accepted, NaN
    arrays, _ = read_arrays(_s2_chip(tmp_path, dn))
    assert np.isnan(arrays["s2"][:, :4]).all() and np.isfinite(arrays["s2"][:, 4:]).all()


def test_real_sample_and_simulator_output_pass_the_checks(real_root, sim_root):
    import rasterio

    from floodnb.data.catalog import build_catalog
    from floodnb.data.io import EmptyChipWarning, read_arrays

    checked = 0
    for root in (real_root, sim_root):
        cat = build_catalog(root, with_center=False)
        for _, row in cat.iterrows():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", EmptyChipWarning)  # the all-NaN real Paraguay chip
                arrays, _ = read_arrays(row)
            if "s1" in arrays and np.isfinite(arrays["s1"]).any():
                with rasterio.open(row["s1_path"]) as src:
                    raw = src.read().astype(np.float32)
                # every value read as stored: bright scatterers above 0 dB (real VV up to +25.6) are not refused
                assert np.nanmax(arrays["s1"]) == np.nanmax(raw) and np.nanmin(arrays["s1"]) == np.nanmin(raw)
                checked += 1
    assert checked >= 2


def test_evaluate_cli_refuses_linear_s1_and_converts_when_told(run_dir, sim_root, tmp_path, capsys):
    lin = tmp_path / "linear"
    shutil.copytree(sim_root, lin)
    _rewrite_s1(lin, lambda x: (10 ** (x / 10)).astype(np.float32))
    args = ["evaluate", str(run_dir), "--split", "test", "--no-progress"]
    assert main([*args, "--data-root", str(lin)]) == 2
    err = capsys.readouterr().err
    assert "S1Hand.tif: Sentinel-1 band VV" in err and "--s1-units linear" in err and "Traceback" not in err
    assert main([*args, "--data-root", str(lin), "--s1-units", "linear", "--out-dir", str(tmp_path / "a")]) == 0
    assert main([*args, "--data-root", str(sim_root), "--out-dir", str(tmp_path / "b")]) == 0
    a = json.loads((tmp_path / "a" / "eval_metrics.json").read_text())["splits"]["test"]
    b = json.loads((tmp_path / "b" / "eval_metrics.json").read_text())["splits"]["test"]
    assert a["water_iou"] == pytest.approx(b["water_iou"], abs=1e-3) and a["chips"] == b["chips"]


def test_train_cli_refuses_integer_s1(sim_root, tmp_path, capsys):
    ints = tmp_path / "ints"
    shutil.copytree(sim_root, ints)
    _rewrite_s1(ints, lambda x: np.nan_to_num(np.rint(x * 100), nan=0).astype(np.int16))
    assert main(["train", "baseline", "--kind", "s1_hand", "--data-root", str(ints), "--out-dir",
                 str(tmp_path / "r"), *FAST]) == 2
    err = capsys.readouterr().err
    assert "stored as int16" in err and "--s1-units" in err


def test_predict_cli_refuses_a_linear_scene_and_converts_when_told(run_dir, sim_root, tmp_path, capsys):
    scene_db = next(sim_root.rglob("*_S1Hand.tif"))
    scene = tmp_path / "scene_linear.tif"
    shutil.copy(scene_db, scene)
    with rasterio.open(scene_db) as ds:
        data, profile, desc = ds.read(), ds.profile, ds.descriptions
    with rasterio.open(scene, "w", **profile) as ds:
        ds.write((10 ** (data / 10)).astype(np.float32))
        ds.descriptions = desc
    out = tmp_path / "out"
    assert main(["predict", str(run_dir), str(scene), "--out-dir", str(out)]) == 2
    err = capsys.readouterr().err
    assert "scene_linear.tif: Sentinel-1 band VV" in err and "above 0 dB" in err
    assert not (out / "scene_linear_water.tif").exists()
    assert main(["predict", str(run_dir), str(scene), "--out-dir", str(out), "--s1-units", "linear"]) == 0
    assert main(["predict", str(run_dir), str(scene_db), "--out-dir", str(out)]) == 0
    with rasterio.open(out / "scene_linear_water.tif") as a, rasterio.open(out / f"{scene_db.stem}_water.tif") as b:
        assert (a.read() == b.read()).mean() > 0.99


# --- chips lacking inputs, chips missing on disk ------------------------------------------------------------


def test_evaluate_real_root_skips_the_s2_only_chip_and_reports_missing_chips(run_dir, real_root, tmp_path, capsys):
    import shutil

    from floodnb.data.catalog import build_catalog, read_split_csv

    root = tmp_path / "real"  # a copy whose test CSV also names a chip that is not on disk (a partial download)
    shutil.copytree(real_root, root)
    csv = root / "splits" / "flood_test_data.csv"
    rows = csv.read_bytes()
    csv.write_bytes(rows + (b"" if rows.endswith(b"\n") or not rows else b"\r\n")
                    + b"Nowhere_1_S1Hand.tif,Nowhere_1_LabelHand.tif\r\n")
    out = tmp_path / "e"
    assert main(["evaluate", str(run_dir), "--data-root", str(root), "--split", "test", "--out-dir", str(out),
                 "--no-progress"]) == 0
    text = capsys.readouterr().out
    named = set(read_split_csv(csv))
    on_disk = {p.name.rsplit("_", 1)[0] for p in root.rglob("*.tif")}
    missing = named - on_disk
    cat = build_catalog(root, with_center=False)
    test = cat[cat["split"] == "test"]
    assert "skipped 1 chip(s) lacking the model's inputs: USA_430764 (no s1)" in text
    assert f"{len(missing)} chip(s) named in flood_test_data.csv are not on disk" in text
    m = json.loads((out / "eval_metrics.json").read_text())["splits"]["test"]
    assert m["skipped_chips"] == ["USA_430764 (no s1)"] and m["chips"] == int(test["s1_path"].notna().sum())
    assert "Nowhere_1" in missing and set(m["missing_chips"]) == missing


def test_training_evaluation_skips_chips_lacking_inputs(sim_root, tmp_path):
    from floodnb.data.catalog import build_catalog
    from floodnb.distill.datasets import eval_datasets, split_dataset

    cat = build_catalog(sim_root, with_center=False)
    gone = cat.index[cat["split"] == "test"][0]
    cat.loc[gone, "s1_path"] = None
    with pytest.raises(ValueError, match="lack input 's1'"):
        split_dataset(cat, "test", inputs=("s1",))
    data = eval_datasets(cat, inputs=("s1",))
    assert data["test"].skipped == {cat.at[gone, "chip_id"]: ("s1",)}
    assert cat.at[gone, "chip_id"] not in [data["test"][i]["chip_id"] for i in range(len(data["test"]))]


# --- split CSVs ---------------------------------------------------------------------------------------------


def test_binary_split_csv_is_named(tmp_path, capsys):
    from floodnb.data.catalog import read_split_csv

    root = make_tiny_dataset(tmp_path / "d", layout="short")
    csv = root / "splits" / "flood_test_data.csv"
    csv.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(ValueError, match="flood_test_data.csv.*binary file.*expected a text CSV"):
        read_split_csv(csv)
    csv.write_bytes(b"Spain_1_S1Hand.tif,\xff\xfe\r\n")
    with pytest.raises(ValueError, match="flood_test_data.csv.*not UTF-8 text.*expected a text CSV"):
        read_split_csv(csv)
    assert main(["catalog", str(root)]) == 2
    err = capsys.readouterr().err
    assert str(csv) in err and "Traceback" not in err
