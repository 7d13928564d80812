"""floodnb.compare: global confusion per method and split, Otsu and checkpoint scoring, prediction GeoTIFFs."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from _checkpoints import save_s1_checkpoint
from conftest import make_tiny_dataset

from floodnb import compare
from floodnb.data.catalog import build_catalog


@pytest.fixture(scope="module")
def catalog(tmp_path_factory):
    root = make_tiny_dataset(tmp_path_factory.mktemp("tiny") / "s1f11", n_hand=8, n_weak=0, unassigned=0,
                             missing_in_csv=0)
    return build_catalog(root)


def test_method_scores_pool_pixels_into_one_confusion_matrix_per_split():
    scores = compare.MethodScores("m", reference="label")
    # chip a: 2 TP, 1 FP, 1 TN ; chip b: 1 FN, 1 TP, one ignored reference pixel, one prediction without data
    scores.update(np.array([[1, 1], [1, 0]]), np.array([[1, 1], [0, 0]]), chip_id="E_1", split="test", event="E")
    scores.update(np.array([[0, 1], [1, -1]]), np.array([[1, 1], [-1, 0]]), chip_id="E_2", split="test", event="E")
    scores.update(np.array([[0]]), np.array([[0]]), chip_id="E_3", split="valid", event="E")
    m = scores.metrics()
    assert set(m) == {"test", "valid"}
    cm = m["test"]["confusion_matrix"]  # rows = reference, columns = prediction
    assert cm == [[1, 1], [1, 3]]
    assert m["test"]["water_iou"] == pytest.approx(3 / (3 + 1 + 1))
    assert m["test"]["chips"] == 2 and m["test"]["reference"] == "label"
    table = scores.table()
    assert list(table["chip_id"]) == ["E_1", "E_2", "E_3"] and set(table["method"]) == {"m"}
    assert table.loc[table["chip_id"] == "E_1", "water_iou"].item() == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="reference"):
        compare.MethodScores("m", reference="jrc")


def test_otsu_scores_cover_the_split_chips_and_find_the_water(catalog):
    splits = ("train", "test")
    scores = compare.otsu_scores(catalog, splits=splits, reference="label", progress=False)
    m = scores.metrics()
    want = catalog[catalog["split"].isin(splits)]
    assert set(m) == set(want["split"])
    assert sum(v["chips"] for v in m.values()) == len(want)
    for v in m.values():
        assert sum(map(sum, v["confusion_matrix"])) == v["valid_pixels"] > 0
        assert v["water_iou"] > 0.5  # the tiny chips' water is dark in VH
    with pytest.raises(ValueError, match="no chips in splits"):
        compare.otsu_scores(catalog, splits=("nope",), reference="label", progress=False)


def _checkpoint(path):
    return save_s1_checkpoint(path)


def test_model_scores_write_predictions_on_each_chips_grid(tmp_path, catalog):
    ckpt = _checkpoint(tmp_path / "m.safetensors")
    out = tmp_path / "pred"
    scores = compare.model_scores("student", ckpt, catalog, splits=("test",), reference="label", batch_size=2,
                                  predictions_dir=out, progress=False)
    test = catalog[catalog["split"] == "test"]
    assert scores.metrics()["test"]["chips"] == len(test) > 0
    for _, row in test.iterrows():
        cid = row["chip_id"]
        with rasterio.open(row["s1_path"]) as s1, rasterio.open(out / f"{cid}_pred.tif") as p, \
                rasterio.open(out / f"{cid}_prob.tif") as q:
            assert (p.crs, p.transform, p.shape) == (s1.crs, s1.transform, s1.shape) == (q.crs, q.transform, q.shape)
            pred, prob = p.read(1), q.read(1)
        assert set(np.unique(pred)) <= {-1, 0, 1}
        assert np.isnan(prob[pred == -1]).all() and ((prob[pred >= 0] >= 0) & (prob[pred >= 0] <= 1)).all()
        assert ((prob[pred == 1] >= 0.5).all() and (prob[pred == 0] <= 0.5).all())


def test_write_chip_prediction_refuses_bad_names_and_shapes(tmp_path, catalog):
    row = catalog.iloc[0]
    with rasterio.open(row["s1_path"]) as src:
        shape = (src.height, src.width)
    prob, pred = np.full(shape, 0.7, np.float32), np.ones(shape, np.int8)
    with pytest.raises(ValueError, match="file name"):
        compare.write_chip_prediction(tmp_path, "../x", prob, pred, grid_from=row["s1_path"])
    with pytest.raises(ValueError, match="differs from the chip grid"):
        compare.write_chip_prediction(tmp_path, "E_1", prob[:-1], pred[:-1], grid_from=row["s1_path"])
    assert not list(tmp_path.glob("*.tif"))
    p, q = compare.write_chip_prediction(tmp_path, "E_1", prob, pred, grid_from=row["s1_path"])
    with rasterio.open(p) as a, rasterio.open(q) as b:
        assert a.dtypes[0] == "float32" and b.dtypes[0] == "int8" and b.nodata == -1
        assert np.allclose(a.read(1), 0.7) and (b.read(1) == 1).all()


def test_compact_and_class_only_predictions_go_to_per_model_folders(tmp_path, catalog):
    from floodnb.runs.layout import predictions_dir

    row = catalog.iloc[0]
    with rasterio.open(row["s1_path"]) as src:
        shape = (src.height, src.width)
    prob = np.full(shape, 0.734, np.float32)
    prob[0, 0] = np.nan
    pred = np.ones(shape, np.int8)
    base = tmp_path / "predictions"
    assert predictions_dir(base, "student") == base and predictions_dir(base, "otsu") == base / "otsu"
    with pytest.raises(ValueError, match="plain name"):
        predictions_dir(base, "../x")
    p, q = compare.write_chip_prediction(predictions_dir(base, "teacher"), "E_1", prob, pred,
                                         grid_from=row["s1_path"], compact=True)
    with rasterio.open(p) as a:
        assert p.parent.name == "teacher" and a.dtypes[0] == "uint8" and a.nodata == compare.PROB_NODATA_U8
        got = a.read(1)
    assert got[0, 0] == 255 and got[0, 1] == 73
    none, q = compare.write_chip_prediction(base / "otsu", "E_1", None, pred, grid_from=row["s1_path"])
    assert none is None and q.is_file() and not (base / "otsu" / "E_1_prob.tif").exists()
    scores = compare.otsu_scores(catalog, splits=("test",), reference="label", progress=False,
                                 predictions_dir=predictions_dir(base, "otsu"))
    written = {f.name for f in (base / "otsu").glob("*_pred.tif")}
    test_ids = set(catalog.loc[catalog["split"] == "test", "chip_id"])
    assert scores.metrics()["test"]["chips"] == len(test_ids)
    assert written == {f"{c}_pred.tif" for c in test_ids} | {"E_1_pred.tif"}


def test_combine_and_summary_table():
    a, b = compare.MethodScores("a", reference="label"), compare.MethodScores("b", reference="label")
    a.update(np.array([[1, 0]]), np.array([[1, 0]]), chip_id="E_1", split="test", event="E")
    b.update(np.array([[1, 1]]), np.array([[1, 0]]), chip_id="E_1", split="test", event="E")
    b.update(np.array([[0, 0]]), np.array([[1, 0]]), chip_id="E_2", split="bolivia", event="E")
    metrics, per_chip = compare.combine([a, b])
    assert metrics["metric"] == compare.METRIC_NAME and "water_iou" in metrics["definitions"]
    assert metrics["a"]["test"]["water_iou"] == 1.0 and metrics["b"]["test"]["water_iou"] == 0.5
    assert list(per_chip.columns[:5]) == ["chip_id", "event", "split", "method", "water_iou"]
    assert len(per_chip) == 3
    summary = compare.summary_table(metrics)
    assert sorted(zip(summary["method"], summary["split"])) == [("a", "test"), ("b", "bolivia"), ("b", "test")]
    assert summary.loc[(summary["method"] == "b") & (summary["split"] == "test"), "water_iou"].item() == 0.5


def test_per_chip_areas_match_the_written_prediction_and_sum_per_event(tmp_path, catalog):
    from floodnb.area import AREA_COLUMNS, chip_areas, row_areas_km2
    from floodnb.data.io import read_arrays

    ckpt = _checkpoint(tmp_path / "m.safetensors")
    out = tmp_path / "pred"
    scores = compare.model_scores("student", ckpt, catalog, splits=("test",), reference="label", batch_size=2,
                                  predictions_dir=out, progress=False)
    _, table = compare.combine([scores])
    assert set(AREA_COLUMNS) <= set(table.columns)
    for _, r in table.iterrows():
        row = catalog.set_index("chip_id").loc[r["chip_id"]]
        arrays, grid = read_arrays(row, roles=("label", "jrc"))
        with rasterio.open(out / f"{r['chip_id']}_pred.tif") as p:
            want = chip_areas(p.read(1), row_km2=row_areas_km2(grid.crs, grid.transform, grid.shape[0]),
                              ref=arrays["label"], permanent=arrays["jrc"])
        for c in AREA_COLUMNS:
            assert r[c] == pytest.approx(want[c]), c
    events = compare.event_area_table(table)
    assert events["water_km2"].sum() == pytest.approx(table["water_km2"].sum())
    assert events["chips"].sum() == len(table)
    rec = compare.area_record(table)
    assert rec["student"]["test"]["valid_km2"] == pytest.approx(table["valid_km2"].sum())
    assert rec["student"]["test"]["flood_km2"] == pytest.approx(table["flood_km2"].sum())
    assert "flood_km2" in rec["definitions"]
    no_jrc = compare.area_record(table.assign(flood_km2=np.nan))
    assert no_jrc["student"]["test"]["flood_km2"] is None


def test_otsu_chip_areas_use_the_jrc_layer(sim_root):
    cat = build_catalog(sim_root)
    scores = compare.otsu_scores(cat, splits=("test",), reference="label", progress=False)
    table = scores.table()
    assert table["permanent_km2"].notna().all() and table["flood_km2"].notna().all()
    assert (table["flood_km2"] <= table["water_km2"] + 1e-12).all()
    assert (table["ref_flood_km2"] <= table["ref_water_km2"] + 1e-12).all()
    assert table["permanent_km2"].sum() > 0  # the simulator's rivers are permanent water


def test_evaluate_command_records_areas_per_chip_and_split(sim_root, tmp_path, capsys):
    import json

    import pandas as pd

    from floodnb.area import AREA_COLUMNS
    from floodnb.cli import main

    ckpt = _checkpoint(tmp_path / "m.safetensors")
    out = tmp_path / "e"
    assert main(["evaluate", str(ckpt), "--data-root", str(sim_root), "--split", "test", "--out-dir", str(out),
                 "--no-progress"]) == 0
    assert "km² reference" in capsys.readouterr().out
    table = pd.read_csv(out / "eval_per_chip.csv")
    assert set(AREA_COLUMNS) <= set(table.columns) and table["permanent_km2"].notna().all()
    saved = json.loads((out / "eval_metrics.json").read_text())["splits"]["test"]["areas_km2"]
    for c in AREA_COLUMNS:
        assert saved[c] == pytest.approx(table[c].sum()), c
