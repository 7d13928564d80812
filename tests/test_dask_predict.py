"""Many-scene inference on dask.distributed (floodnb.scale.dask_predict, ``floodnb predict`` batch mode).

Scenes are tiny 2-band (VV, VH dB) GeoTIFFs of 200 x 300 px written in tmp; the model is a
``unet_tiny`` checkpoint. One in-process LocalCluster (2 workers, TCP on 127.0.0.1) serves most
tests; the worker-kill test starts its own cluster of 2 worker processes.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

import numpy as np
import pyogrio
import pytest
import rasterio
import torch
from _stac_fixture import NORTH, WEST, make_catalog, serve, t
from rasterio.transform import from_origin
from torch import nn

from floodnb.cli import main as cli_main
from floodnb.data.normalize import get_preset
from floodnb.models import ModelSpec, build_model, load_checkpoint, save_checkpoint
from floodnb.predict import extent_polygons, predict_raster, resolve_predictor, validate_cog
from floodnb.scale.collections import s1_to_db
from floodnb.scale.dask_predict import (
    MARKER_SUFFIX,
    RESULT_COLUMNS,
    SchedulerUnreachableError,
    open_client,
    predict_scenes,
)
from floodnb.scale.stac_search import search_items

pytestmark = [pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning"),
              pytest.mark.filterwarnings("ignore:Use `@` matmul:PendingDeprecationWarning")]

PIX = 8.983152841195215e-05
H, W = 200, 300
KW = dict(tile=128, overlap=32, batch=2, progress=False)


def write_scene(path: Path, seed: int, *, h: int = H, w: int = W) -> Path:
    rng = np.random.default_rng(seed)
    data = np.stack([rng.normal(-10, 3, (h, w)), rng.normal(-17, 3, (h, w))]).astype(np.float32)
    data[:, 40 + 10 * seed:120, 50:180] -= 14.0  # a dark (water-like) patch
    data[:, :, -6:] = np.nan  # nodata edge
    with rasterio.open(path, "w", driver="GTiff", height=h, width=w, count=2, dtype="float32", crs="EPSG:4326",
                       transform=from_origin(10.0 + seed * 0.1, 45.0, PIX, PIX)) as ds:
        ds.write(data)
        ds.set_band_description(1, "VV")
        ds.set_band_description(2, "VH")
    return path


def _save(path: Path, in_channels: int = 2, role: str = "s1", preset: str = "sen1floods11_s1") -> Path:
    torch.manual_seed(0)
    # GroupNorm: a random model whose maps hold both classes (random BatchNorm weights with fresh running
    # statistics map these scenes all dry, which would leave the equality checks nothing to compare)
    model = build_model("unet_tiny", in_channels=in_channels, norm="group")
    norm = get_preset(preset)
    spec = ModelSpec(model_name="unet_tiny", model_config=model.config(), inputs=(role,),
                     bands={role: tuple(norm.bands)}, normalizers={role: norm.to_dict()})
    return save_checkpoint(path, model, spec=spec)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    return _save(tmp_path_factory.mktemp("ckpt") / "student.safetensors")


@pytest.fixture(scope="module")
def scenes(tmp_path_factory) -> list[Path]:
    d = tmp_path_factory.mktemp("scenes")
    return [write_scene(d / f"scene{k}.tif", k) for k in range(3)]


@pytest.fixture(scope="module")
def client():
    with open_client(None, n_workers=2, threads_per_worker=1, processes=False) as c:
        yield c


def read1(path) -> np.ndarray:
    with rasterio.open(path) as ds:
        return ds.read(1)


def final_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if not p.name.startswith("."))


def assert_every_final_file_has_a_marker(folder: Path) -> None:
    """Nothing half-done under a final name: every output belongs to a scene with a marker, no
    hidden scratch/partial files are left.
    """
    assert not [p.name for p in folder.iterdir() if p.name.startswith(".")]
    markers = {p.name[: -len(MARKER_SUFFIX)] for p in folder.glob(f"*{MARKER_SUFFIX}")}
    for p in final_files(folder):
        scene = p.name.split("_water")[0]
        assert scene in markers, f"{p.name} sits under a final name without its scene's marker"


def test_outputs_equal_predict_raster_then_resume(tmp_path, ckpt, scenes, client):
    out = tmp_path / "out"
    table = predict_scenes(ckpt, scenes, out, scheduler=client, prob_dtype="float32", min_area_m2=50.0, **KW)
    assert list(table.columns) == list(RESULT_COLUMNS)
    assert list(table["scene"]) == [p.stem for p in scenes] and set(table["status"]) == {"done"}
    for p, row in zip(scenes, table.itertuples(), strict=True):
        ref = predict_raster(ckpt, p, tmp_path / "ref" / f"{p.stem}.tif", prob_dtype="float32", **KW)
        cls, ref_cls = read1(row.class_path), read1(ref.class_path)
        np.testing.assert_array_equal(cls, ref_cls)
        np.testing.assert_allclose(read1(row.prob_path), read1(ref.prob_path), atol=1e-5)  # threads differ
        assert 0 < row.n_water < row.n_valid and row.n_valid == ref.n_valid and row.n_water == ref.n_water
        assert (cls[:, -6:] == -1).all()
        assert validate_cog(row.class_path) == [] and validate_cog(row.prob_path) == []
        gdf = extent_polygons(ref.class_path, min_area_m2=50.0)
        back = pyogrio.read_dataframe(row.polygons_path)
        assert len(back) == len(gdf) == row.n_polygons > 0
        assert row.water_km2 == pytest.approx(gdf["area_m2"].sum() / 1e6)
        assert pyogrio.read_dataframe(out / f"{p.stem}_water.geojson").crs.to_epsg() == 4326
    assert len(final_files(out)) == 3 * 5
    assert_every_final_file_has_a_marker(out)

    # resume: finished scenes are skipped, files untouched
    mtimes = {p: p.stat().st_mtime_ns for p in final_files(out)}
    again = predict_scenes(ckpt, scenes, out, scheduler=client, prob_dtype="float32", min_area_m2=50.0, **KW)
    assert set(again["status"]) == {"skipped"}
    assert list(again["n_water"]) == list(table["n_water"])
    assert {p: p.stat().st_mtime_ns for p in final_files(out)} == mtimes
    # a scene whose output was deleted is redone; the others are not
    (out / "scene1_water_prob.tif").unlink()
    third = predict_scenes(ckpt, scenes, out, scheduler=client, prob_dtype="float32", min_area_m2=50.0, **KW)
    assert list(third["status"]) == ["skipped", "done", "skipped"]
    assert (out / "scene0_water.tif").stat().st_mtime_ns == mtimes[out / "scene0_water.tif"]
    np.testing.assert_array_equal(read1(out / "scene1_water.tif"), read1(table.loc[1, "class_path"]))
    assert (out / "scene1_water_prob.tif").is_file()
    assert_every_final_file_has_a_marker(out)
    # other settings in the same folder: refused, naming the marker and the field
    with pytest.raises(ValueError, match=r"scene0_water\.done\.json.*threshold"):
        predict_scenes(ckpt, scenes, out, scheduler=client, prob_dtype="float32", min_area_m2=50.0, threshold=0.7,
                       **KW)


@pytest.fixture(scope="module")
def stac_url(tmp_path_factory):
    folder = tmp_path_factory.mktemp("stac")
    make_catalog(folder, size=200, s1=[{"id": "S1_a", "datetime": t(0)}, {"id": "S1_b", "datetime": t(5)},
                                       {"id": "S1_novh", "datetime": t(9), "drop": ["vh"]}], s2=[])
    with serve(folder) as url:
        yield url + "/catalog.json", folder


BBOX = (WEST + 0.001, NORTH - 0.01, WEST + 0.01, NORTH - 0.001)


def test_stac_items_over_http_with_a_missing_asset(tmp_path, ckpt, client, stac_url):
    url, folder = stac_url
    items = search_items(url, collection="sentinel-1-rtc", bbox=BBOX, start="2023-03-01", end="2023-03-31")
    assert [i.id for i in items] == ["S1_a", "S1_b", "S1_novh"]
    assert items[0].assets["vv"].get_absolute_href().startswith("http://127.0.0.1:")
    out = tmp_path / "out"
    table = predict_scenes(ckpt, items, out, scheduler=client, **KW).set_index("scene")
    assert list(table["status"]) == ["done", "done", "failed"]
    err = table.loc["S1_novh", "error"]
    assert "S1_novh" in err and "no asset for band(s) ['VH']" in err and "assets: ['vv']" in err
    assert not list(out.glob("S1_novh*"))
    assert_every_final_file_has_a_marker(out)
    # the linear-power item was converted to dB: same result as predict_raster on a dB copy
    with rasterio.open(folder / "S1_a_vv.tif") as vv, rasterio.open(folder / "S1_a_vh.tif") as vh:
        lin = np.stack([vv.read(1), vh.read(1)])
        profile = vv.profile | {"count": 2, "dtype": "float32", "nodata": None}
    db = tmp_path / "S1_a_db.tif"
    with rasterio.open(db, "w", **profile) as ds:
        ds.write(s1_to_db(lin, units="linear", nodata=-32768.0))
    ref = predict_raster(ckpt, db, tmp_path / "ref.tif", **KW)
    np.testing.assert_array_equal(read1(table.loc["S1_a", "class_path"]), read1(ref.class_path))
    assert table.loc["S1_a", "n_valid"] == ref.n_valid == 200 * (200 - 8)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_scheduler_is_named_quickly(tmp_path, ckpt, scenes, capsys):
    address = f"tcp://127.0.0.1:{_free_port()}"
    t0 = time.perf_counter()
    with pytest.raises(SchedulerUnreachableError, match=address.replace(".", r"\.")):
        predict_scenes(ckpt, scenes[:1], tmp_path / "out", scheduler=address, connect_timeout=1.0, **KW)
    assert time.perf_counter() - t0 < 10
    assert not [p for p in (tmp_path / "out").iterdir()]
    rc = cli_main(["predict", str(ckpt), *map(str, scenes[:2]), "--out-dir", str(tmp_path / "cli"), "--scheduler",
                   address, "--connect-timeout", "1"])
    assert rc == 2 and address in capsys.readouterr().err


def test_model_bands_not_in_scene_fail_before_any_work(tmp_path, scenes, stac_url):
    s2_ckpt = _save(tmp_path / "s2.safetensors", in_channels=13, role="s2", preset="s2_l1c")
    # the scheduler address is never contacted: every scene fails its band check first
    address = f"tcp://127.0.0.1:{_free_port()}"
    table = predict_scenes(s2_ckpt, scenes[:2], tmp_path / "out", scheduler=address, connect_timeout=1.0, **KW)
    assert list(table["status"]) == ["failed", "failed"]
    assert "scene0.tif has bands ['VV', 'VH'] but the model needs ['B1'" in table.loc[0, "error"]
    items = search_items(stac_url[0], collection="sentinel-1-rtc", bbox=BBOX, start="2023-03-01", end="2023-03-02")
    table = predict_scenes(s2_ckpt, items, tmp_path / "out", scheduler=address, connect_timeout=1.0, **KW)
    assert "STAC item 'S1_a': the model needs bands ['B1'" in table.loc[0, "error"]
    assert list((tmp_path / "out").iterdir()) == []


class CrashOnce(nn.Module):
    """Wraps a model; the first forward pass anywhere kills its worker process (``os._exit``)
    after creating ``marker``, later passes run the wrapped model.
    """

    def __init__(self, inner: nn.Module, marker: str) -> None:
        super().__init__()
        self.inner = inner
        self.marker = marker

    def forward(self, x):
        if not os.path.exists(self.marker):
            Path(self.marker).touch()
            os._exit(13)
        return self.inner(x)


def test_worker_killed_mid_batch_completes(tmp_path, ckpt, scenes):
    inner, _ = load_checkpoint(ckpt)
    marker = tmp_path / "crashed"
    predictor = resolve_predictor(CrashOnce(inner, str(marker)), normalizers={"s1": get_preset("sen1floods11_s1")})
    out = tmp_path / "out"
    with open_client(None, n_workers=2, threads_per_worker=1, processes=True) as c:
        pids = set(c.run(os.getpid).values())
        table = predict_scenes(predictor, scenes[:2], out, scheduler=c, **KW)
        assert marker.exists()  # a worker really died ...
        assert set(c.run(os.getpid).values()) != pids  # ... and the nanny replaced it
    if set(table["status"]) != {"done"}:  # the batch may fail only if a task exhausted its retries: rerun
        assert_every_final_file_has_a_marker(out)
        table = predict_scenes(predictor, scenes[:2], out, processes=False, n_workers=1, **KW)
    assert set(table["status"]) <= {"done", "skipped"}
    for p in scenes[:2]:
        ref = predict_raster(ckpt, p, tmp_path / "ref" / f"{p.stem}.tif", **KW)
        np.testing.assert_array_equal(read1(out / f"{p.stem}_water.tif"), read1(ref.class_path))
    assert_every_final_file_has_a_marker(out)


def test_cli_scene_list_on_a_remote_scheduler(tmp_path, ckpt, scenes, client, capsys):
    listing = tmp_path / "scenes.txt"
    listing.write_text("# batch\n" + "\n".join(str(p) for p in scenes[:2]) + "\nmissing_scene.tif\n")
    out = tmp_path / "out"
    argv = ["predict", str(ckpt), "--scenes-file", str(listing), "--out-dir", str(out), "--tile", "128",
            "--overlap", "32", "--scheduler", client.scheduler.address]
    assert cli_main(argv) == 1
    cap = capsys.readouterr()
    assert "scene0" in cap.out and "done 2, failed 1" in cap.out and "dashboard" in cap.out
    assert "missing_scene failed: FileNotFoundError" in cap.err and "1 scene(s) failed: missing_scene" in cap.err
    for p in scenes[:2]:
        assert validate_cog(out / f"{p.stem}_water.tif") == [] and (out / f"{p.stem}_water.gpkg").is_file()
    listing.write_text("\n".join(str(p) for p in scenes[:2]))
    assert cli_main(argv) == 0
    assert "skipped 2" in capsys.readouterr().out
    # one scene, no cluster option: the single-process path, with the same marker record as many-scene mode
    single = tmp_path / "single"
    assert cli_main(["predict", str(ckpt), str(scenes[2]), "--out-dir", str(single), "--tile", "128"]) == 0
    assert sorted(p.name for p in single.iterdir()) == ["scene2_water.done.json", "scene2_water.tif",
                                                        "scene2_water_prob.tif"]


def test_cli_stac_query(tmp_path, ckpt, client, stac_url, capsys):
    out = tmp_path / "out"
    rc = cli_main(["predict", str(ckpt), "--stac", stac_url[0], "--collection", "sentinel-1-rtc", "--bbox",
                   *map(str, BBOX), "--datetime", "2023-03-01/2023-03-07", "--out-dir", str(out), "--tile", "128",
                   "--scheduler", client.scheduler.address])
    cap = capsys.readouterr()
    assert rc == 0, cap.err
    assert "2 item(s) of sentinel-1-rtc" in cap.out and "done 2" in cap.out
    assert sorted(p.name for p in out.glob("*.done.json")) == ["S1_a_water.done.json", "S1_b_water.done.json"]
    assert cli_main(["predict", str(ckpt), "--bbox", *map(str, BBOX), "--out-dir", str(out)]) == 2
    assert "give --stac" in capsys.readouterr().err


class Broken(nn.Module):
    """A model whose forward pass always fails."""

    def forward(self, x):
        raise RuntimeError("model exploded")


def test_failed_redo_keeps_previous_outputs_and_marker(tmp_path, ckpt, scenes, client):
    out = tmp_path / "out"
    first = predict_scenes(ckpt, scenes[:1], out, scheduler=client, **KW)
    assert list(first["status"]) == ["done"]
    before = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in final_files(out)}
    broken = resolve_predictor(Broken(), normalizers={"s1": get_preset("sen1floods11_s1")})
    redo = predict_scenes(broken, scenes[:1], out, scheduler=client, overwrite=True, **KW)
    assert list(redo["status"]) == ["failed"] and "RuntimeError: model exploded" in redo.loc[0, "error"]
    assert {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in final_files(out)} == before
    assert_every_final_file_has_a_marker(out)


def test_bfloat16_scenes_record_precision_and_match_float32(tmp_path, ckpt, scenes, client):
    """Many-scene prediction in bfloat16 (issue 17): the marker records the precision, a float32 rerun in the
    same folder is refused naming it, and the class maps agree with float32 on >= 99 % of pixels.
    """
    out = tmp_path / "bf16"
    table = predict_scenes(ckpt, scenes[:1], out, scheduler=client, polygons=False, precision="bfloat16", **KW)
    assert set(table["status"]) == {"done"}
    marker = json.loads((out / f"scene0{MARKER_SUFFIX}").read_text())
    assert marker["settings"]["precision"] == "bfloat16"
    with pytest.raises(ValueError, match=r"scene0_water\.done\.json.*precision"):
        predict_scenes(ckpt, scenes[:1], out, scheduler=client, polygons=False, **KW)
    ref = predict_raster(ckpt, scenes[0], tmp_path / "ref" / "scene0.tif", **KW)
    cls, ref_cls = read1(table.loc[0, "class_path"]), read1(ref.class_path)
    assert (cls == ref_cls).mean() >= 0.99 and ((cls == 1) == (ref_cls == 1)).mean() >= 0.99
