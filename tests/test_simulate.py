"""floodnb.simulate: the written dataset (layout, conventions, determinism, reader, CLI, report)."""

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from _real_data import REAL_ROOT as REAL  # shared sample or in-repo fixture (short layout)

from floodnb.data import layout
from floodnb.simulate import SimConfig, simulate_dataset
from floodnb.simulate.writer import MANIFEST

HAND_CHIP_LAYERS = ("S1Hand", "S2Hand", "LabelHand", "S1OtsuLabelHand", "JRCWaterHand")
WEAK_CHIP_LAYERS = ("S1Weak", "S2Weak", "S1OtsuLabelWeak", "S2IndexLabelWeak")


@pytest.fixture(scope="module")
def sim(tmp_path_factory) -> Path:
    return simulate_dataset(tmp_path_factory.mktemp("sim") / "root", n_hand=12, n_weak=6, size=64, seed=3,
                            workers=1, progress=False)


def _digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_gives_identical_bytes_whatever_the_workers(tmp_path):
    a = simulate_dataset(tmp_path / "a", n_hand=4, n_weak=3, size=32, seed=11, workers=1, progress=False)
    b = simulate_dataset(tmp_path / "b", n_hand=4, n_weak=3, size=32, seed=11, workers=2, progress=False)
    c = simulate_dataset(tmp_path / "c", n_hand=4, n_weak=3, size=32, seed=12, workers=1, progress=False)
    da, db, dc = _digest(a), _digest(b), _digest(c)
    assert len(da) > 40 and da == db
    tifs = [k for k in da if k.endswith("S1Hand.tif")]
    assert tifs and all(da[k] != dc[k] for k in tifs)


def test_official_layout_and_file_names(sim):
    assert layout.detect(sim) == "official"
    base = sim / "v1.1" / "data" / "flood_events"
    for group, layers in (("HandLabeled", HAND_CHIP_LAYERS + ("SimTruthWater", "SimTruthClass")),
                          ("WeaklyLabeled",
                           ("S1Weak", "S1OtsuLabelWeak", "S2IndexLabelWeak", "SimTruthWater", "SimTruthClass"))):
        for layer in layers:
            files = sorted((base / group / layer).glob("*.tif"))
            assert files, f"{group}/{layer} empty"
            assert all(f.name.endswith(f"_{layer}.tif") for f in files)
    s2w = sorted(layout.layer_dir(sim, "S2Weak").glob("*.tif"))
    assert len(s2w) == 6
    assert all(f.name == layout.chip_file_name(f.name.split("_S2")[0], "S2Weak") for f in s2w)
    assert "v1.0/data/flood_events/WeaklyLabeled/S2_NoQC" in str(s2w[0])


def test_split_csvs_match_real_format(sim):
    sdir = layout.splits_dir(sim)
    total = real_rows = 0

    def well_formed(rows: list[str]) -> bool:
        return all(len(r.split(",")) == 2 and r.split(",")[0].endswith("_S1Hand.tif")
                   and r.split(",")[1] == r.split(",")[0].replace("_S1Hand", "_LabelHand") for r in rows)

    for split in ("train", "valid", "test", "bolivia"):
        raw = (sdir / f"flood_{split}_data.csv").read_bytes()
        real = (REAL / "splits" / f"flood_{split}_data.csv").read_bytes()  # the fixture keeps test rows only
        assert raw.endswith(b"\r\n") and (real == b"" or real.endswith(b"\r\n"))
        rows = raw.decode().split("\r\n")[:-1]
        real_list = real.decode().split("\r\n")[:-1]
        assert well_formed(rows) and well_formed(real_list) and b"\n" not in real.replace(b"\r\n", b"")
        total += len(rows)
        real_rows += len(real_list)
    assert total == 12 and real_rows >= 8
    bol = (sdir / "flood_bolivia_data.csv").read_text()
    assert bol.startswith("Bolivia_") and "Bolivia" not in (sdir / "flood_train_data.csv").read_text()


def test_metadata_has_the_real_property_names(sim):
    real = json.loads((REAL / "Sen1Floods11_Metadata.geojson").read_text())
    mine = json.loads(layout.metadata_path(sim).read_text())
    assert mine["type"] == "FeatureCollection"
    real_keys = set(real["features"][0]["properties"])
    for f in mine["features"]:
        assert set(f["properties"]) == real_keys
        p = f["properties"]
        assert len(p["s1_date"]) == 10 and p["s1_date"][4] == "/" and p["orbit"] in ("ASCENDING", "DESCENDING")
        assert -35 < p["VH_thresh"] < -12
    assert json.loads((sim / MANIFEST).read_text())["simulated"] is True


@pytest.mark.parametrize("mine,real", [("S1Hand", "S1Hand/Spain_7370579_S1Hand.tif"),
                                       ("S2Hand", "S2Hand/Spain_7370579_S2Hand.tif"),
                                       ("LabelHand", "LabelHand/Spain_7370579_LabelHand.tif")])
def test_raster_conventions_match_real_files(sim, mine, real):
    f = sorted(layout.layer_dir(sim, mine).glob("*.tif"))[0]
    with rasterio.open(f) as a, rasterio.open(REAL / "HandLabeled" / real) as b:
        assert a.dtypes == b.dtypes and a.count == b.count
        assert a.descriptions == b.descriptions
        assert (a.nodata is None) == (b.nodata is None)
        if b.nodata is not None:
            assert (np.isnan(a.nodata) and np.isnan(b.nodata)) or a.nodata == b.nodata
        assert a.crs.to_epsg() == b.crs.to_epsg() == 4326
        assert a.transform.a == pytest.approx(b.transform.a, rel=1e-9)
        assert a.transform.e == pytest.approx(b.transform.e, rel=1e-9)
        assert a.tags()["AREA_OR_POINT"] == b.tags()["AREA_OR_POINT"]
        assert a.tags()["OVR_RESAMPLING_ALG"] == b.tags()["OVR_RESAMPLING_ALG"]
        arr = a.read()
    if mine == "LabelHand":
        assert set(np.unique(arr)) <= {-1, 0, 1}
    if mine == "S2Hand":
        assert arr.min() >= 1 and arr.max() < 20000


def test_weak_layers_and_truth_conventions(sim):
    for layer in ("S1OtsuLabelWeak", "S2IndexLabelWeak", "SimTruthWater"):
        d = layout.layer_dir(sim, layer) if layer != "SimTruthWater" else layout.truth_dir(sim, layer, "weak")
        for f in sorted(d.glob("*.tif")):
            with rasterio.open(f) as ds:
                assert ds.dtypes == ("int16",) and ds.nodata is None
                assert set(np.unique(ds.read())) <= {-1, 0, 1}


def test_real_reader_loads_output_unchanged_and_truth_is_not_a_label(sim):
    from floodnb.data.catalog import build_catalog
    from floodnb.data.io import load_chip

    cat = build_catalog(sim)
    assert len(cat) == 18
    assert cat.groupby("group").size().to_dict() == {"hand": 12, "weak": 6}
    assert set(cat.split) <= {"train", "valid", "test", "bolivia", "weak"} and (cat.split == "bolivia").sum() >= 1
    assert all("SimTruth" not in str(p) for p in cat.label_path.dropna())
    assert all("SimTruthWater" in str(p) for p in cat.truth_water_path)
    hand = cat[cat.group == "hand"].iloc[0]
    ds = load_chip(hand)
    assert {"s1", "s2", "label", "s1_otsu", "jrc"} <= set(ds.data_vars)
    assert "truth_water" not in ds and "truth_class" not in ds
    assert ds["s1"].shape == (2, 64, 64) and ds["s2"].shape == (13, 64, 64)
    assert float(ds["s2"].max()) < 2.0  # reflectance, not DN
    dt = load_chip(cat[cat.group == "weak"].iloc[0], with_truth=True)
    assert {"s1", "s2", "s1_otsu", "s2_index", "truth_water", "truth_class"} <= set(dt.data_vars)
    assert "label" not in dt
    assert np.isfinite(hand["vh_thresh"])


def test_refuses_to_overwrite_foreign_or_existing_data(tmp_path, sim):
    foreign = tmp_path / "foreign"
    (foreign / "v1.1" / "data").mkdir(parents=True)
    (foreign / "v1.1" / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="did not simulate"):
        simulate_dataset(foreign, n_hand=2, n_weak=0, size=32, workers=1, overwrite=True, progress=False)
    assert (foreign / "v1.1" / "keep.txt").read_text() == "mine"
    with pytest.raises(FileExistsError, match="already holds"):
        simulate_dataset(sim, n_hand=2, n_weak=0, size=32, workers=1, progress=False)
    with pytest.raises(ValueError, match="size must be"):
        SimConfig(size=50)
    with pytest.raises(ValueError, match="wind_rate"):
        SimConfig(wind_rate=1.5)


def _otsu_iou_vs_hand(root: Path) -> float:
    """Global water IoU of per-chip Otsu on VH against LabelHand over ``root``'s chips with S1 data."""
    from _real_data import chip_file, chip_roles

    from floodnb.labels.weak import otsu_label

    tp = fp = fn = 0
    for cid, roles in sorted(chip_roles(root).items()):
        if not {"s1", "label"} <= roles:
            continue
        with rasterio.open(chip_file(root, cid, "s1")) as f, rasterio.open(chip_file(root, cid, "label")) as g:
            s1, label = f.read(), g.read(1)
        if not np.isfinite(s1[1]).any():
            continue
        pred = otsu_label(s1)
        m = (pred >= 0) & (label >= 0)
        p, t = pred[m] == 1, label[m] == 1
        tp, fp, fn = tp + int((p & t).sum()), fp + int((p & ~t).sum()), fn + int((~p & t).sum())
    return tp / (tp + fp + fn)


def test_cli_and_realism_report(tmp_path, shared_sample):
    from floodnb.cli import main

    out = tmp_path / "cli"
    assert main(["simulate", str(out), "--hand", "5", "--weak", "2", "--size", "32", "--workers", "1",
                 "--report", "--real-root", str(REAL)]) == 0
    rep = out / "realism"
    for name in ("realism_report.png", "realism_report.md", "realism_s1_stats.csv", "realism_weak_labels.csv",
                 "realism_s2_means.csv"):
        assert (rep / name).stat().st_size > 100
    md = (rep / "realism_report.md").read_text()
    assert f"real_chip_otsu_water_iou_vs_hand: {_otsu_iou_vs_hand(REAL):.3f}" in md
    if shared_sample:
        assert "real_chip_otsu_water_iou_vs_hand: 0.209" in md  # measured on the 7 shared chips with S1
    stats_text = (rep / "realism_s1_stats.csv").read_text()
    assert "simulated" in stats_text and "real" in stats_text
    import pandas as pd

    table = pd.read_csv(rep / "realism_table.csv")
    assert (rep / "realism_table.png").stat().st_size > 1000
    assert {"statistic", "real", "simulated", "tolerance", "passed", "fitted"} <= set(table.columns)
    real = table.set_index("statistic").real
    assert np.isfinite(real[["mean_vh_water_db", "mean_vh_dry_db", "corr_vv_vh_dry"]].astype(float)).all()
    assert real["mean_vh_water_db"] < real["mean_vh_dry_db"]  # real water is darker in VH on either root
    if shared_sample:  # real side on the 6 shared chips with valid S1 and labels (definitions: floodnb.simulate.stats)
        assert real["vh_water_p05_db"] == pytest.approx(-37.39, abs=0.01)
        assert real["enl_vh_water"] == pytest.approx(2.0, abs=0.05)
        assert real["largest_component_share"] == pytest.approx(0.243, abs=0.001)
        assert real["low_water_chip_share"] == pytest.approx(4 / 6, abs=1e-4)  # CSV keeps 4 decimals
    assert "## Realism table" in md and "fitted" in md


def test_an_interrupted_simulation_is_redone_but_foreign_data_is_refused(tmp_path):
    from floodnb.simulate.writer import INCOMPLETE, MANIFEST

    root = tmp_path / "sim"
    simulate_dataset(root, n_hand=4, n_weak=2, size=32, seed=1, workers=1, progress=False)
    assert not (root / INCOMPLETE).exists()
    reference = {p.relative_to(root): p.read_bytes() for p in root.rglob("*") if p.is_file()}
    # what a killed run leaves: the start marker, chip files, no manifest
    (root / MANIFEST).unlink()
    (root / INCOMPLETE).write_text("{}")
    simulate_dataset(root, n_hand=4, n_weak=2, size=32, seed=1, workers=1, progress=False)
    assert {p.relative_to(root): p.read_bytes() for p in root.rglob("*") if p.is_file()} == reference
    # a Sen1Floods11 layout that floodnb did not start is never replaced
    (root / MANIFEST).unlink()
    with pytest.raises(FileExistsError, match="did not simulate"):
        simulate_dataset(root, n_hand=4, n_weak=2, size=32, seed=1, workers=1, overwrite=True, progress=False)
    assert (root / "v1.1").is_dir()
