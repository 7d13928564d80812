"""Background reading/writing of streamed scene prediction (floodnb.predict.background) and GDAL's cache size."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import rasterio
from test_predict import IDENTITY, vh_threshold_model
from test_predict_raster import read1

from floodnb.geotiff import gdal_cache_env
from floodnb.predict import predict_raster
from floodnb.predict.background import BackgroundConsumer, prefetched
from floodnb.predict.scene_writer import SceneWriter


def _threads(prefix: str) -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith(prefix)]


def test_prefetched_keeps_order_runs_ahead_and_reraises():
    produced: list[int] = []

    def gen():
        for i in range(6):
            produced.append(i)
            yield i
    out = []
    for i in prefetched(gen(), depth=2, name="t-pre"):
        time.sleep(0.02)
        out.append(i)
        if i == 0:  # the producer is ahead of the consumer, by at most depth (+1 being put)
            assert 1 <= len(produced) <= 4
    assert out == list(range(6)) and not _threads("t-pre")

    def broken():
        yield 1
        raise OSError("read failed at strip 2")
    it = prefetched(broken(), name="t-pre")
    assert next(it) == 1
    with pytest.raises(OSError, match="strip 2"):
        next(it)
    assert not _threads("t-pre")


def test_prefetched_stops_its_thread_when_the_consumer_stops_early():
    def endless():
        i = 0
        while True:
            yield i
            i += 1
    for i in prefetched(endless(), depth=1, name="t-early"):
        if i == 3:
            break
    time.sleep(0.3)
    assert not _threads("t-early")
    with pytest.raises(ValueError, match="depth must be an integer >= 1"):
        next(prefetched([1], depth=0))


def test_background_consumer_order_and_error_in_caller():
    seen: list[int] = []
    with BackgroundConsumer(seen.append, depth=1, name="t-bg") as bg:
        for i in range(20):
            bg.put(i)
    assert seen == list(range(20)) and not _threads("t-bg")

    def fail_on_3(i):
        if i == 3:
            raise OSError("disk full")
    with pytest.raises(OSError, match="disk full"):
        with BackgroundConsumer(fail_on_3, depth=1, name="t-bg") as bg:
            for i in range(50):
                bg.put(i)
                time.sleep(0.005)
    assert not _threads("t-bg")


def test_gdal_cache_env_passes_megabytes_as_bytes():
    from rasterio._env import get_gdal_config

    with gdal_cache_env(64):
        assert int(get_gdal_config("GDAL_CACHEMAX")) == 64 * 1024 * 1024  # rasterio reads ints as bytes
    for bad in (0, -5, 1.5, "128", True):
        with pytest.raises(ValueError, match="gdal_cache_mb must be an integer"):
            gdal_cache_env(bad)


def test_background_io_writes_the_same_bytes_as_in_line(tmp_path):
    rng = np.random.default_rng(4)
    data = rng.normal(-15, 6, (2, 333, 290)).astype(np.float32)
    data[:, 100:140, 50:200] = np.nan
    src = tmp_path / "s1.tif"
    with rasterio.open(src, "w", driver="GTiff", height=333, width=290, count=2, dtype="float32", crs="EPSG:4326",
                       transform=rasterio.transform.from_origin(10, 45, 1e-4, 1e-4)) as ds:
        ds.write(data)
    outs = {}
    for bg in (True, False):
        res = predict_raster(vh_threshold_model(), src, tmp_path / f"o_{bg}.tif", tile=96, overlap=24, batch=2,
                             normalizers=IDENTITY, prob_dtype="float32", progress=False, background_io=bg)
        outs[bg] = (read1(res.class_path), read1(res.prob_path), res.n_valid, res.n_water, res.n_forward)
    for a, b in zip(outs[True], outs[False], strict=True):
        np.testing.assert_array_equal(a, b)
    assert outs[True][2] == int(np.isfinite(data).all(axis=0).sum())


def test_default_io_uses_threads_only_when_torch_leaves_a_cpu_free(tmp_path, monkeypatch):
    """background_io=None: reader/writer threads only when torch's threads leave a CPU of this process free
    (with every core busy in torch they only compete with it).
    """
    import torch

    import floodnb.predict.raster as raster
    from floodnb import runtime

    src = tmp_path / "s1.tif"
    with rasterio.open(src, "w", driver="GTiff", height=150, width=120, count=2, dtype="float32", crs="EPSG:4326",
                       transform=rasterio.transform.from_origin(10, 45, 1e-4, 1e-4)) as ds:
        ds.write(np.random.default_rng(6).normal(-15, 6, (2, 150, 120)).astype(np.float32))
    threaded: list[str] = []
    orig = raster.prefetched

    def spy(*args, **kwargs):
        threaded.append(kwargs.get("name", ""))
        return orig(*args, **kwargs)

    monkeypatch.setattr(raster, "prefetched", spy)
    for cpus, want in ((torch.get_num_threads(), []), (torch.get_num_threads() + 1, ["floodnb-read"])):
        threaded.clear()
        monkeypatch.setattr(runtime, "machine_cpus", lambda cpus=cpus: cpus)
        predict_raster(vh_threshold_model(), src, tmp_path / f"o{cpus}.tif", tile=64, overlap=16,
                       normalizers=IDENTITY, progress=False)
        assert threaded == want


def test_writer_failure_in_background_leaves_no_output(tmp_path, monkeypatch):
    rng = np.random.default_rng(5)
    src = tmp_path / "s1.tif"
    with rasterio.open(src, "w", driver="GTiff", height=300, width=200, count=2, dtype="float32", crs="EPSG:4326",
                       transform=rasterio.transform.from_origin(10, 45, 1e-4, 1e-4)) as ds:
        ds.write(rng.normal(-15, 6, (2, 300, 200)).astype(np.float32))
    orig = SceneWriter.write
    calls = []

    def failing(self, row0, prob, valid):
        calls.append(threading.current_thread().name)
        if len(calls) == 2:
            raise OSError("No space left on device")
        return orig(self, row0, prob, valid)

    monkeypatch.setattr(SceneWriter, "write", failing)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(OSError, match="No space left"):
        predict_raster(vh_threshold_model(), src, out / "o.tif", tile=64, overlap=16, normalizers=IDENTITY,
                       progress=False, background_io=True)
    assert calls == ["floodnb-write"] * 2  # written by the writer thread
    assert list(out.iterdir()) == [] and not _threads("floodnb-read") and not _threads("floodnb-write")


def _scene(tmp_path, h=333, w=290, seed=7):
    data = np.random.default_rng(seed).normal(-15, 6, (2, h, w)).astype(np.float32)
    data[:, 100:140, 50:200] = np.nan
    src = tmp_path / "s1.tif"
    with rasterio.open(src, "w", driver="GTiff", height=h, width=w, count=2, dtype="float32", crs="EPSG:4326",
                       transform=rasterio.transform.from_origin(10, 45, 1e-4, 1e-4)) as ds:
        ds.write(data)
    return src, data


def test_row_workers_give_the_maps_of_one_worker_and_restore_torch_threads(tmp_path):
    """Rows cut into column chunks predicted by several threads: the same maps (float rounding aside),
    counts and forward passes as one worker; torch's thread count is back afterwards, no thread left.
    """
    import torch

    src, data = _scene(tmp_path)
    threads = torch.get_num_threads()
    outs = {}
    for workers in (1, 2, 3):
        res = predict_raster(vh_threshold_model(), src, tmp_path / f"o_{workers}.tif", tile=96, overlap=24, batch=2,
                             normalizers=IDENTITY, prob_dtype="float32", progress=False, row_workers=workers)
        outs[workers] = (read1(res.class_path), read1(res.prob_path), res.n_valid, res.n_water, res.n_forward)
        assert torch.get_num_threads() == threads and not _threads("floodnb-row")
    for workers in (2, 3):
        np.testing.assert_array_equal(outs[workers][0], outs[1][0])
        np.testing.assert_allclose(outs[workers][1], outs[1][1], atol=1e-5)
        assert outs[workers][2:] == outs[1][2:]
    assert outs[1][2] == int(np.isfinite(data).all(axis=0).sum())


def test_default_row_workers_two_when_torch_takes_every_cpu(tmp_path, monkeypatch):
    """row_workers=None: 2 workers when torch's threads (>= 2) take every CPU, else 1 (with reader/writer
    threads when a CPU is free); bad values and row workers with background_io=True are refused up front.
    """
    import torch

    import floodnb.predict.raster as raster
    from floodnb import runtime

    src, _ = _scene(tmp_path, 150, 120)
    seen: list[int] = []
    orig = raster._worker_rows

    def spy(*args, **kwargs):
        seen.append(kwargs["workers"])
        return orig(*args, **kwargs)

    monkeypatch.setattr(raster, "_worker_rows", spy)
    threads = torch.get_num_threads()
    try:
        for torch_threads, cpus, want in ((2, 2, [2]), (4, 4, [2]), (2, 3, []), (1, 1, [])):
            seen.clear()
            torch.set_num_threads(torch_threads)
            monkeypatch.setattr(runtime, "machine_cpus", lambda cpus=cpus: cpus)
            predict_raster(vh_threshold_model(), src, tmp_path / f"o{torch_threads}{cpus}.tif", tile=64, overlap=16,
                           normalizers=IDENTITY, progress=False)
            assert seen == want, (torch_threads, cpus)
            assert torch.get_num_threads() == torch_threads
    finally:
        torch.set_num_threads(threads)
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="row_workers must be an integer >= 1"):
            predict_raster(vh_threshold_model(), src, tmp_path / "bad.tif", normalizers=IDENTITY, progress=False,
                           row_workers=bad)
    with pytest.raises(ValueError, match="background_io=True is for one row worker"):
        predict_raster(vh_threshold_model(), src, tmp_path / "bad.tif", normalizers=IDENTITY, progress=False,
                       row_workers=2, background_io=True)
    assert not (tmp_path / "bad.tif").exists()


def test_a_failing_row_worker_stops_prediction_and_leaves_no_output(tmp_path):
    import torch

    m = vh_threshold_model()

    class Boom(type(m)):
        calls = 0

        def forward(self, x):
            Boom.calls += 1
            if Boom.calls == 5:
                raise RuntimeError("model failed in a worker")
            return super().forward(x)

    src, _ = _scene(tmp_path, 300, 200)
    out = tmp_path / "out"
    out.mkdir()
    threads = torch.get_num_threads()
    with pytest.raises(RuntimeError, match="model failed in a worker"):
        predict_raster(Boom(2, 2, 1), src, out / "o.tif", tile=64, overlap=16, batch=1, normalizers=IDENTITY,
                       progress=False, row_workers=2)
    assert list(out.iterdir()) == [] and not _threads("floodnb-row") and torch.get_num_threads() == threads
