"""The dashboard's shared layer cache: LRU bounds, keys by model and threshold, prefetch, one load per chip."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from _run_fixture import make_run_dir

from floodnb.viz import layer_cache
from floodnb.viz.layer_cache import LayerCache
from floodnb.viz.run_data import load_run


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return load_run(make_run_dir(tmp_path_factory.mktemp("cache"), n_chips=6, size=32))


@pytest.fixture
def loads(monkeypatch):
    """Chip ids passed to load_chip_arrays by the cache, in call order."""
    calls: list[str] = []
    real = layer_cache.load_chip_arrays

    def counting(run, chip_id, *, method):
        calls.append(chip_id)
        return real(run, chip_id, method=method)

    monkeypatch.setattr(layer_cache, "load_chip_arrays", counting)
    return calls


def _ids(run) -> list[str]:
    return sorted(run.catalog.index)


def test_lru_bounds_chips_and_images_and_keeps_the_most_recent(run, loads):
    cache = LayerCache(max_chips=2, max_images=3)
    ids = _ids(run)
    for cid in ids[:4]:
        cache.images(run, cid, "student", ("s1",))
        assert cache.n_chips <= 2 and cache.n_images <= 3
    assert loads == ids[:4]
    assert [cache.cached(run, c, "student") for c in ids[:4]] == [False, False, True, True]
    hit = cache.images(run, ids[3], "student", ("s1",))["s1"]
    assert cache.images(run, ids[3], "student", ("s1",))["s1"] is hit and loads == ids[:4]  # no reload
    cache.images(run, ids[0], "student", ("s1",))  # evicted earlier: read again
    assert loads == [*ids[:4], ids[0]]
    with pytest.raises(ValueError, match="max_chips"):
        LayerCache(max_chips=0)


def test_images_keyed_by_threshold_and_model_and_read_only(run):
    cache = LayerCache()
    cid = _ids(run)[0]
    loose = cache.images(run, cid, "student", ("probability",), threshold=0.05)["probability"]
    strict = cache.images(run, cid, "student", ("probability",), threshold=0.95)["probability"]
    # packed RGBA: the alpha byte says where the layer is drawn (fixture probabilities are 0.1 / 0.9)
    assert int((loose >> 24 > 0).sum()) > 0 == int((strict >> 24 > 0).sum())
    assert cache.images(run, cid, "student", ("probability",), threshold=0.05)["probability"] is loose
    student = cache.images(run, cid, "student", ("prediction", "s1"))
    teacher = cache.images(run, cid, "teacher", ("prediction", "s1"))
    assert not np.array_equal(student["prediction"], teacher["prediction"])  # each model's own file
    assert teacher["s1"] is student["s1"]  # imagery does not depend on the model: one image
    assert student["s1"].shape == (32, 32) and student["s1"].dtype == np.uint32
    with pytest.raises(ValueError):
        student["s1"][0, 0] = 0  # shared by sessions: nobody may change it in place
    with pytest.raises(ValueError, match="unknown layer"):
        cache.images(run, cid, "student", ("nope",))
    with pytest.raises(ValueError, match="threshold"):
        cache.images(run, cid, "student", ("probability",), threshold=1.5)


def test_concurrent_requests_load_a_chip_once(run, loads):
    cache = LayerCache()
    cid = _ids(run)[1]
    got: list = []
    threads = [threading.Thread(target=lambda: got.append(cache.chip(run, cid, "student"))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert loads == [cid] and all(g is got[0] for g in got)


def test_prefetch_fills_the_cache_in_the_background(run, loads):
    cache = LayerCache()
    ids = _ids(run)
    cache.prefetch(run, ids[:2], "student", ("s1", "prediction"))
    assert cache.wait_idle(timeout=60)
    assert cache.cached(run, ids[0], "student") and cache.cached(run, ids[1], "student")
    assert cache.n_images == 4 and sorted(loads) == ids[:2]
    cache.images(run, ids[1], "student", ("s1", "prediction"))
    assert sorted(loads) == ids[:2]  # served from what the prefetch loaded


def test_dashboard_prefetches_next_rows_and_sessions_share_the_cache(run, loads):
    from floodnb.viz.dashboard import Dashboard

    cache = LayerCache()
    d = Dashboard(run, basemap="none", cache=cache, prefetch=2)
    assert cache.wait_idle(timeout=60)
    order = [str(c) for c in d.table.value["chip_id"]]
    assert d.chip_id == order[0] and all(cache.cached(run, c, d.method) for c in order[:3])
    assert not cache.cached(run, order[3], d.method)
    n = len(loads)
    d.table.selection = [1]  # the next row: ready, nothing read
    assert d.chip_id == order[1] and len(loads) == n
    assert cache.wait_idle(timeout=60) and cache.cached(run, order[3], d.method)  # rows after the new one
    assert len(loads) == n + 1  # only order[3] was new
    other = Dashboard(run, basemap="none", cache=cache, prefetch=0)  # a second session, same server
    assert other.chip_id == order[0] and len(loads) == n + 1  # its first chip: nothing read
    d.threshold = 0.95  # another threshold: a new image, never the old one
    d.toggles["probability"].value = True
    assert int((d.sources["probability"].data["image"][0] >> 24 > 0).sum()) == 0
    with pytest.raises(ValueError, match="prefetch"):
        Dashboard(run, basemap="none", prefetch=-1)


def test_idle_prefetch_thread_ends_and_restarts_on_demand(run, monkeypatch):
    monkeypatch.setattr(layer_cache, "IDLE_EXIT_S", 0.2)
    cache = LayerCache(quiet_s=0.0)
    ids = _ids(run)
    cache.prefetch(run, ids[:1], "student", ("s1",))
    assert cache.wait_idle(30)
    worker = cache._worker
    assert worker is not None
    worker.join(5)  # no more work: the thread ends by itself instead of waiting forever
    assert not worker.is_alive() and cache._worker is None
    cache.prefetch(run, ids[1:2], "student", ("s1",))  # a new request starts a new thread
    assert cache.wait_idle(30) and cache.cached(run, ids[1], "student")


def test_warm_up_leaves_the_first_chip_ready_for_the_first_session(run, loads):
    """serve_dashboard's warm-up draws the chip a new session opens on, so that session reads nothing."""
    from floodnb.viz.dashboard import Dashboard
    from floodnb.viz.serve import warm_up

    cache = LayerCache()
    assert warm_up(run, method="student", basemap="none", cache=cache) > 0
    first = loads[0]
    assert loads == [first] and cache.cached(run, first, "student") and cache.n_images >= 2
    d = Dashboard(run, method="student", basemap="none", cache=cache, prefetch=0)
    assert d.chip_id == first and loads == [first]  # served from the cache: no second read
