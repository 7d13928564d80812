"""Dashboard: map layer colours, run-table loading, and the Panel/Bokeh wiring (no browser)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from _run_fixture import make_run_dir

from floodnb.bands import CLASS_COLORS, DISAGREE_COLOR, WATER
from floodnb.viz import maplayers as ml


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return make_run_dir(tmp_path_factory.mktemp("dash"), n_chips=4, size=32)


# ------------------------------------------------------------------ maplayers (pure)

def test_s1_grey_ramp_and_nodata():
    s1 = np.full((2, 2, 3), -30.0, np.float32)
    s1[0, 0, 1] = 5.0
    s1[0, 1, 2] = np.nan
    s1[0, 1, 0] = -12.5  # middle of (-30, 5)
    rgba = ml.s1_rgba(s1, band="VV")
    assert rgba.shape == (2, 3, 4) and rgba.dtype == np.uint8
    assert tuple(rgba[0, 0]) == (0, 0, 0, 255)
    assert tuple(rgba[0, 1]) == (255, 255, 255, 255)
    assert rgba[1, 2, 3] == 0
    assert 126 <= rgba[1, 0, 0] <= 129
    with pytest.raises(ValueError, match="band"):
        ml.s1_rgba(s1, band="HH")
    with pytest.raises(ValueError, match=r"\(2, H, W\)"):
        ml.s1_rgba(s1[0])


def test_class_disagreement_and_noise_colours():
    lab = np.array([[-1, 0, 1]], np.int16)
    rgba = ml.class_rgba(lab)
    assert rgba[0, 0, 3] == 0 and rgba[0, 1, 3] == 0  # nodata and dry see-through
    assert tuple(rgba[0, 2]) == ml.hex_to_rgba(CLASS_COLORS[WATER])
    assert ml.class_rgba(lab, dry_alpha=1.0)[0, 1, 3] == 255

    pred = np.array([[1, 0, 1, 1]], np.int16)
    ref = np.array([[0, 1, 1, -1]], np.int16)
    d = ml.disagreement_rgba(pred, ref)
    assert tuple(d[0, 0]) == ml.hex_to_rgba(DISAGREE_COLOR)  # false water
    assert tuple(d[0, 1]) == ml.hex_to_rgba(ml.OMISSION_COLOR)  # missed water
    assert d[0, 2, 3] == 0 and d[0, 3, 3] == 0  # agreement, nodata

    n = ml.noise_rgba(np.array([[0.0, 0.25, 1.0, np.nan]], np.float32))
    assert list(n[0, :, 3]) == [0, 128, 255, 0]
    assert int(n[0, 2, :3].sum()) > int(n[0, 1, :3].sum())  # magma: brighter when noisier
    # a 0/1 map (weak-label disagreement) is a mask: suspect pixels in one strong colour, not pale magma
    b = ml.noise_rgba(np.array([[0.0, 1.0, np.nan]], np.float32))
    assert ml.noise_is_binary(np.array([0.0, 1.0, np.nan])) and not ml.noise_is_binary(np.array([0.0, 0.5]))
    assert tuple(b[0, 1]) == ml.hex_to_rgba(ml.SUSPECT_COLOR) and b[0, 0, 3] == 0 and b[0, 2, 3] == 0

    # every label-like layer has its own water colour
    assert len(set(ml.WATER_COLORS.values())) == len(ml.WATER_COLORS) == 4
    assert tuple(ml.class_rgba(lab, color=ml.WATER_COLORS["label"])[0, 2]) == ml.hex_to_rgba(ml.WATER_COLORS["label"])

    p = ml.probability_rgba(np.array([[0.2, 0.5, 0.9, np.nan]], np.float32), threshold=0.5)
    assert list(p[0, :, 3]) == [0, 255, 255, 0]
    assert not np.array_equal(p[0, 1, :3], p[0, 2, :3])  # coloured by probability
    with pytest.raises(ValueError, match="threshold"):
        ml.probability_rgba(np.zeros((1, 1)), threshold=2.0)


def test_s2_composite_stretched_and_nodata_transparent():
    rng = np.random.default_rng(0)
    s2 = (0.02 + 0.1 * rng.random((13, 8, 8))).astype(np.float32)  # dark raw reflectance
    s2[:, 0, 0] = np.nan
    rgba = ml.s2_rgba(s2)
    assert rgba[0, 0, 3] == 0 and rgba[1:, 1:, 3].min() == 255
    assert rgba[..., :3].max() >= 240  # stretched: raw 0.02..0.12 would be near black
    false = ml.s2_rgba(s2, bands=("B12", "B8", "B4"))
    assert not np.array_equal(false, rgba)


def test_uint32_packing_flips_rows_and_mercator_bounds():
    rgba = np.zeros((2, 1, 4), np.uint8)
    rgba[0, 0] = (1, 2, 3, 4)  # north row
    packed = ml.rgba_to_uint32(rgba)
    assert packed.shape == (2, 1) and packed[1, 0] == np.array([1, 2, 3, 4], np.uint8).view(np.uint32)[0]
    x0, y0, x1, y1 = ml.mercator_bounds((0.0, 0.0, 180.0, 10.0), "EPSG:4326")
    assert abs(x0) < 1e-6 and abs(x1 - 20037508.34) < 1 and abs(y1 - 1118889.97) < 1


# ------------------------------------------------------------------ run tables

def test_chip_table_worst_first_and_method_filter(run_dir):
    from floodnb.viz.dashboard import chip_table, load_run
    from floodnb.viz.run_data import DISPLAY_COLUMNS, hidden_columns

    run = load_run(run_dir)
    assert set(run.methods) == {"student", "teacher"}
    t = chip_table(run, method="student")
    assert len(t) == 4 and t["chip_id"].is_unique
    assert list(t["water_iou"]) == sorted(t["water_iou"])  # worst first
    assert {"noise_rate", "rank", "event", "split"} <= set(t.columns)
    # both tables hold valid_pixels: one integer column, no merge leftovers; internal columns dropped
    assert "valid_pixels" in t.columns and str(t["valid_pixels"].dtype) == "Int64"
    assert not [c for c in t.columns if c.endswith(("_x", "_y"))]
    assert not {"true_noise_rate", "noise_score", "status", "method"} & set(t.columns)
    shown = [c for c in t.columns if c not in hidden_columns(t)]
    assert shown == [c for c in DISPLAY_COLUMNS if c in t.columns] and len(shown) <= 7
    teacher = chip_table(run, method="teacher")
    assert (teacher.set_index("chip_id")["water_iou"] > t.set_index("chip_id")["water_iou"]).all()
    with pytest.raises(ValueError, match="method 'nope'"):
        chip_table(run, method="nope")


def test_load_run_errors_name_the_file(tmp_path, run_dir):
    from floodnb.viz.dashboard import load_run

    with pytest.raises(FileNotFoundError, match="run.json"):
        load_run(tmp_path)
    bad = tmp_path / "bad"
    bad.mkdir()
    data_root = json.loads((run_dir / "run.json").read_text())["data_root"]
    (bad / "run.json").write_text(json.dumps({"name": "bad", "data_root": data_root}))
    (bad / "05_evaluate").mkdir()
    pd.DataFrame({"chip_id": ["../../etc/passwd"], "method": ["m"], "water_iou": [0.1]}).to_csv(
        bad / "05_evaluate" / "per_chip.csv", index=False)
    with pytest.raises(ValueError, match="per_chip.csv.*chip ids"):
        load_run(bad)


# ------------------------------------------------------------------ Panel wiring

def _image(d, key):
    return d.sources[key].data["image"][0]


def test_dashboard_layers_and_chip_switch(run_dir):
    import panel as pn

    from floodnb.viz.dashboard import Dashboard, build_dashboard, load_run

    assert isinstance(build_dashboard(run_dir, basemap="none"), pn.viewable.Viewable)
    d = Dashboard(load_run(run_dir), basemap="none")
    assert set(d.renderers) == set(ml.LAYER_KEYS) == set(d.toggles) == set(d.opacity)
    worst = str(d.table.value["chip_id"].iloc[0])
    assert d.chip_id == worst
    assert "water IoU (this chip" in d.chip_info.object and worst in d.chip_info.object
    assert "valid pixels" in d.chip_info.object  # the row lost to merge leftovers is back
    # visible by default: S1 and prediction, filled on the chip grid; hidden layers stay empty
    assert _image(d, "s1").shape == (32, 32) and _image(d, "prediction").shape == (32, 32)
    assert _image(d, "noise").shape == (1, 1)
    s1_before, x_before = _image(d, "s1").copy(), d.figure.x_range.start

    d.table.selection = [2]  # clicking a row
    other = str(d.table.value["chip_id"].iloc[2])
    assert d.chip_id == other and other in d.chip_info.object
    assert not np.array_equal(_image(d, "s1"), s1_before)
    assert d.figure.x_range.start != x_before
    src = d.sources["s1"].data
    assert d.figure.x_range.start < src["x"][0] < src["x"][0] + src["dw"][0] < d.figure.x_range.end

    legend = {str(getattr(i.label, "value", i.label)): i for i in d.figure.legend[0].items}
    assert legend["predicted water"].visible and not legend["hand label: water"].visible
    swatch = {label: color for spec in ml.LAYER_SPECS for label, color in spec.swatches}
    assert set(legend) == set(swatch)
    for label, item in legend.items():  # every entry draws its own row of the one proxy renderer
        (proxy,) = item.renderers
        assert proxy.data_source.data["fill_color"][item.index] == swatch[label]
    d.toggles["label"].value = True  # the legend names what is drawn
    assert legend["hand label: water"].visible
    d.toggles["noise"].value = True  # turned on later: filled for the current chip
    assert _image(d, "noise").shape == (32, 32) and d.renderers["noise"].visible
    assert "label-noise score" in d.colorbars.object  # the fixture's noise is a score, not a 0/1 mask
    d.opacity["prediction"].value = 0.25
    assert d.renderers["prediction"].glyph.global_alpha == 0.25
    d.toggles["s1"].value = False
    assert not d.renderers["s1"].visible

    student_pred = _image(d, "prediction").copy()
    d.method = "teacher"  # the map follows the model: the teacher's saved prediction
    assert d.table.value["water_iou"].min() > 0 and "teacher" in d.chip_info.object
    assert not np.array_equal(_image(d, "prediction"), student_pred)
    assert d.toggles["prediction"].label == "Prediction (teacher)"


def test_threshold_filters_and_pixel_readout(run_dir):
    from bokeh.events import Tap

    from floodnb.viz.dashboard import Dashboard, load_run

    d = Dashboard(load_run(run_dir), basemap="none")
    d.toggles["probability"].value = True
    assert "water probability" in d.colorbars.object and "S1 backscatter" in d.colorbars.object
    drawn = int((_image(d, "probability") >> 24 > 0).sum())  # alpha byte of packed RGBA
    assert drawn > 0
    d.threshold = 0.95  # the fixture's probabilities are 0.1 / 0.9: nothing reaches 0.95
    assert int((_image(d, "probability") >> 24 > 0).sum()) == 0
    d.threshold = 0.05
    assert int((_image(d, "probability") >> 24 > 0).sum()) > drawn

    events = set(d.table.value["event"])
    d.event_filter.value = "Spain"
    assert set(d.table.value["event"]) == {"Spain"} and len(events) == 2
    d.event_filter.value = "all"
    cid = str(d.table.value["chip_id"].iloc[1])
    d.search.value_input = cid[-3:]
    assert list(d.table.value["chip_id"]) == [cid]
    d.table.selection = [0]
    assert d.chip_id == cid

    x0, y0, x1, y1 = d._load(cid).merc
    d._on_tap(Tap(d.figure, x=x0 + 0.5 * (x1 - x0), y=y0 + 0.5 * (y1 - y0)))
    assert "S1 VV (dB)" in d.pixel_info.object and "water probability" in d.pixel_info.object
    d._on_tap(Tap(d.figure, x=x1 + 10 * (x1 - x0), y=y0))
    assert "Click the map" in d.pixel_info.object


def test_side_by_side_maps_share_ranges_and_fill_their_layers(run_dir):
    from floodnb.viz.dashboard import Dashboard, load_run

    d = Dashboard(load_run(run_dir), basemap="none")
    assert d.compare == {} and len(d.compare_maps) == 0  # built when the tab first opens
    assert _image(d, "label").shape == (1, 1)  # not computed while the side-by-side tab is closed
    d.opacity["prediction"].value = 0.3  # set before the maps exist: they take it
    d.map_tabs.active = 1
    left, right = d.compare["left"], d.compare["right"]
    assert len(d.compare_maps) == 2
    assert left.figure.x_range is d.figure.x_range is right.figure.x_range
    assert left.renderers["prediction"].glyph.global_alpha == 0.3
    assert right.renderers["label"].visible and right.renderers["s1"].visible
    assert not right.renderers["prediction"].visible and left.renderers["prediction"].visible
    assert _image(d, "label").shape == (32, 32)  # filled for the right map although off on the main map
    d.compare_choice["right"].value = "s2_true"
    assert right.renderers["s2_true"].visible and not right.renderers["s1"].visible
    assert _image(d, "s2_true").shape == (32, 32)


def test_dashboard_unknown_chip_and_missing_layers(tmp_path):
    from floodnb.viz.dashboard import Dashboard, load_run

    run_dir = make_run_dir(tmp_path, n_chips=2, size=16, noise_maps=False)
    d = Dashboard(load_run(run_dir), chip="../../etc/passwd", basemap="none")
    assert d.message.visible and "not in this run's table" in d.message.object
    assert d.chip_id == str(d.table.value["chip_id"].iloc[0])
    d.toggles["noise"].value = True
    assert "not available" in d.toggles["noise"].label and _image(d, "noise").shape == (1, 1)
    with pytest.raises(ValueError, match="not in this run's table"):
        d.select_chip("../run")
    chosen = str(d.table.value["chip_id"].iloc[1])
    assert Dashboard(load_run(run_dir), chip=chosen, basemap="none").chip_id == chosen


def test_serve_refuses_wildcard_address_without_origin(run_dir):
    from floodnb.cli import build_parser
    from floodnb.viz.serve import serve_dashboard

    with pytest.raises(ValueError, match="websocket_origin"):
        serve_dashboard(run_dir, address="0.0.0.0", port=0, basemap="none", start=False)
    args = build_parser().parse_args(["dashboard", str(run_dir), "--basic-auth", "pw", "--port", "5999"])
    assert args.address == "127.0.0.1" and args.basic_auth == "pw" and args.port == 5999


def test_exports_chip_event_and_table(run_dir):
    import io
    import json

    import rasterio

    from floodnb.viz.dashboard import Dashboard, load_run

    d = Dashboard(load_run(run_dir), basemap="none")
    ex = d.exports
    cid = d.chip_id
    assert ex.buttons["tif"].filename == f"{cid}_student_prediction.tif" and not ex.buttons["tif"].disabled
    with rasterio.open(io.BytesIO(ex.buttons["tif"].callback().getvalue())) as ds:
        got = ds.read(1)
    with rasterio.open(run_dir / "05_evaluate" / "predictions" / f"{cid}_pred.tif") as ds:
        assert np.array_equal(got, ds.read(1))
    gj = json.loads(ex.buttons["geojson"].callback().getvalue())
    assert gj["type"] == "FeatureCollection" and gj["features"]
    assert {f["properties"]["kind"] for f in gj["features"]} == {"water"}  # the fixture has no JRC layer
    assert ex.buttons["gpkg"].callback().getvalue()[:16] == b"SQLite format 3\x00"

    event = d._full.loc[d._full["chip_id"] == cid, "event"].iloc[0]
    ex.scope.value = "event"
    n_event = int((d._full["event"] == event).sum())
    assert len(ex.chip_ids()) == n_event >= 2 and ex.buttons["tif"].filename.startswith(f"{event}_student")
    with rasterio.open(io.BytesIO(ex.buttons["tif"].callback().getvalue())) as ds:
        assert ds.width > got.shape[1]  # the event's chips side by side in one mosaic

    d.event_filter.value = event
    csv = pd.read_csv(io.BytesIO(ex.buttons["csv"].callback().getvalue()))
    assert set(csv["event"]) == {event} and "valid_pixels" in csv.columns and "true_noise_rate" not in csv.columns

    d.method = "teacher"  # the export follows the model selector
    ex.scope.value = "chip"
    assert ex.buttons["tif"].filename == f"{cid}_teacher_prediction.tif"
    with rasterio.open(io.BytesIO(ex.buttons["tif"].callback().getvalue())) as ds:
        assert not np.array_equal(ds.read(1), got)


def test_static_export_is_one_file_without_external_scripts(run_dir, tmp_path):
    import re

    from floodnb.cli import main
    from floodnb.viz.static_export import export_html

    with pytest.raises(ValueError, match="ending in .html"):
        export_html(run_dir, tmp_path / "x.txt", progress=False)
    with pytest.raises(ValueError, match="max_chips"):
        export_html(run_dir, tmp_path / "x.html", max_chips=0, progress=False)
    out = export_html(run_dir, tmp_path / "share.html", max_chips=2, progress=False)
    page = out.read_text(encoding="utf-8")
    assert not re.findall(r"<script[^>]+src=", page) and not re.findall(r"<link[^>]+href=\"http", page)
    assert page.count("data:image/png;base64,") >= 2 * 3  # S1, prediction, ... of each chip embedded
    from floodnb.viz.dashboard import chip_table, load_run

    chip_ids = list(chip_table(load_run(run_dir), method="student")["chip_id"])
    worst = chip_ids[:2]
    assert all(c in page for c in worst) and chip_ids[-1] not in page
    assert main(["dashboard", str(run_dir), "--export", str(tmp_path / "cli.html"), "--export-chips", "1"]) == 0
    assert (tmp_path / "cli.html").stat().st_size < out.stat().st_size
