"""Shared test fixtures: the real Sen1Floods11 developer sample and tiny generated chips.

* ``real_root``: real Sen1Floods11 chips in the short layout: ``../shared/data/sen1floods11`` (9 full
  chips) when it exists beside the repository, else the in-repo fixture ``tests/data/sen1floods11``
  (64 px windows of 8 of them), or ``$FLOODNB_TEST_REAL_ROOT`` (see :mod:`_real_data`). Tests read it
  in place, never write to it, and compute their expectations from its own files.
* ``shared_sample``: True when ``real_root`` is the shared sample itself; tests that check a figure
  measured on those full chips (a preset, a documented IoU) add that assertion only then.
* ``tiny_dataset``: a few small synthetic chips written with rasterio into ``tmp_path`` in the
  official bucket layout (hand chips with S1Hand, S2Hand, LabelHand, S1OtsuLabelHand,
  JRCWaterHand and split CSVs; weak chips with S1Weak, S1OtsuLabelWeak, S2IndexLabelWeak and
  v1.0 S2; event metadata). :func:`make_tiny_dataset` builds the same for other sizes/layouts.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from _real_data import REAL_ROOT, is_shared_sample

PIX = 8.983152841195215e-05  # Sen1Floods11 pixel size in degrees (~10 m)
TINY_EVENTS = {"Spain": (38.10, -0.76, "2019/09/17", "2019/09/18", -25.13),
               "Mekong": (13.27, 105.90, "2018/08/05", "2018/08/04", -23.06)}
_LOCATION = {"Spain": "Spain", "Mekong": "Cambodia"}


@pytest.fixture(scope="session", autouse=True)
def _precision_probe_cache(tmp_path_factory):
    """precision="auto" measures bfloat16 once per machine and caches it (floodnb.precision_probe):
    tests (and the notebooks they run, which inherit the environment) keep that cache in a temporary
    folder instead of the user's ~/.cache.
    """
    import os

    from floodnb.precision_probe import CACHE_ENV

    old = os.environ.get(CACHE_ENV)
    os.environ[CACHE_ENV] = str(tmp_path_factory.mktemp("floodnb_cache"))
    yield
    if old is None:
        os.environ.pop(CACHE_ENV, None)
    else:
        os.environ[CACHE_ENV] = old


def write_geotiff(path: Path, data: np.ndarray, *, lat: float, lon: float, nodata=None,
                  descriptions: tuple[str, ...] | None = None, pix: float = PIX) -> Path:
    """Write ``data`` ((C,) H, W) as an EPSG:4326 GeoTIFF whose top-left corner is (lat, lon)."""
    import rasterio
    from rasterio.transform import from_origin

    path.parent.mkdir(parents=True, exist_ok=True)
    data = data if data.ndim == 3 else data[None]
    with rasterio.open(path, "w", driver="GTiff", height=data.shape[1], width=data.shape[2], count=data.shape[0],
                       dtype=data.dtype, crs="EPSG:4326", transform=from_origin(lon, lat, pix, pix),
                       nodata=nodata, compress="deflate") as ds:
        ds.write(data)
        if descriptions:
            ds.descriptions = tuple(descriptions)
    return path


def synthetic_chip(rng: np.random.Generator, size: int) -> dict[str, np.ndarray]:
    """One chip in file units: s1 float32 dB (2,H,W), s2 int16 DN (13,H,W), label/otsu/jrc/s2idx int16."""
    from floodnb.bands import S2_BANDS

    yy, xx = np.mgrid[0:size, 0:size]
    cy, cx = rng.uniform(0.3, 0.7, 2) * size
    water = (yy - cy) ** 2 + (xx - cx) ** 2 < (size * rng.uniform(0.15, 0.3)) ** 2
    vv = np.where(water, -21.0, -9.0) + rng.normal(0, 1.0, water.shape)
    vh = np.where(water, -27.0, -15.0) + rng.normal(0, 1.0, water.shape)
    s1 = np.stack([vv, vh]).astype(np.float32)
    s1[:, 0, :3] = np.nan  # a few nodata pixels
    refl = np.stack([np.where(water, 0.03, 0.15) + rng.normal(0, 0.005, water.shape) for _ in S2_BANDS])
    s2 = np.clip(np.rint(refl * 10000), 1, 10000).astype(np.int16)
    s2[:, -1, :2] = 0  # nodata
    label = water.astype(np.int16)
    label[:, : max(1, size // 8)] = -1  # a cloud strip
    otsu = (vh < -22).astype(np.int16)
    return {"s1": s1, "s2": s2, "label": label, "otsu": otsu, "jrc": (water & (xx < cx)).astype(np.int16),
            "s2_index": water.astype(np.int16)}


def make_tiny_dataset(root: Path, *, n_hand: int = 4, n_weak: int = 2, size: int = 32, seed: int = 0,
                      layout: str = "official", unassigned: int = 1, missing_in_csv: int = 1) -> Path:
    """Write a tiny Sen1Floods11 root (see module docstring); returns ``root``.

    Hand chips cycle through train/valid/test/bolivia except the last ``unassigned`` (named by
    no CSV); the train CSV also names ``missing_in_csv`` chips that are not on disk.
    """
    from floodnb.bands import S1_BANDS, S2_BANDS
    from floodnb.data import layout as lay

    rng = np.random.default_rng(seed)
    root = Path(root)
    events = list(TINY_EVENTS)
    splits: dict[str, list[str]] = {s: [] for s in lay.SPLIT_NAMES}
    for i in range(n_hand + n_weak):
        hand = i < n_hand
        event = events[i % len(events)]
        cid = f"{event}_{100 + i}"
        lat0, lon0 = TINY_EVENTS[event][:2]
        lat, lon = lat0 + i * size * PIX, lon0
        c = synthetic_chip(rng, size)
        if hand:
            layers = {"S1Hand": (c["s1"], None, S1_BANDS), "S2Hand": (c["s2"], 0, S2_BANDS),
                      "LabelHand": (c["label"], None, None), "S1OtsuLabelHand": (c["otsu"], None, None),
                      "JRCWaterHand": (c["jrc"], None, None)}
            if i < n_hand - unassigned:
                splits[lay.SPLIT_NAMES[i % 4]].append(cid)
        else:
            layers = {"S1Weak": (c["s1"], None, S1_BANDS), "S2Weak": (c["s2"], 0, S2_BANDS),
                      "S1OtsuLabelWeak": (c["otsu"], None, None), "S2IndexLabelWeak": (c["s2_index"], None, None)}
        for layer, (arr, nod, desc) in layers.items():
            write_geotiff(lay.layer_dir(root, layer, layout=layout) / lay.chip_file_name(cid, layer), arr,
                          lat=lat, lon=lon, nodata=nod, descriptions=desc)
    splits["train"] += [f"Spain_{900 + k}" for k in range(missing_in_csv)]
    sdir = lay.splits_dir(root, layout=layout)
    sdir.mkdir(parents=True, exist_ok=True)
    for split, ids in splits.items():
        (sdir / lay.split_csv_name(split)).write_bytes(
            "".join(f"{c}_S1Hand.tif,{c}_LabelHand.tif\r\n" for c in ids).encode())
    feats = [{"type": "Feature", "geometry": {"type": "Point", "coordinates": [lon, lat]},
              "properties": {"ID": k + 1, "location": _LOCATION[ev], "ISO_CC": "XXX", "s1_date": s1d,
                             "s2_date": s2d, "orbit": "ASCENDING", "rel_orbit_num": 1.0, "VH_thresh": thr}}
             for k, (ev, (lat, lon, s1d, s2d, thr)) in enumerate(TINY_EVENTS.items())]
    mp = lay.metadata_path(root, layout=layout)
    mp.parent.mkdir(parents=True, exist_ok=True)
    mp.write_text(json.dumps({"type": "FeatureCollection", "features": feats}))
    return root


def tree_checksums(root: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file under ``root`` (to prove inputs are unmodified)."""
    root = Path(root)
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="session")
def real_root() -> Path:
    """Real Sen1Floods11 chips, short layout: the shared sample or the in-repo fixture (read-only)."""
    assert (REAL_ROOT / "HandLabeled").is_dir(), f"real Sen1Floods11 chips missing at {REAL_ROOT}"
    return REAL_ROOT


@pytest.fixture(scope="session")
def shared_sample(real_root: Path) -> bool:
    """True when ``real_root`` holds the shared developer sample's own files (full 512 px chips)."""
    return is_shared_sample(real_root)


@pytest.fixture
def tiny_dataset(tmp_path: Path) -> Path:
    """A tiny official-layout Sen1Floods11 root (4 hand chips, 2 weak chips, 32 px) in tmp_path."""
    return make_tiny_dataset(tmp_path / "s1f11")


@pytest.fixture(scope="session")
def sim_root(tmp_path_factory):
    """A small simulated dataset (12 hand + 6 weak chips of 32 px, seed 0) shared read-only by CLI tests;
    a module that needs other sizes defines its own ``sim_root``.
    """
    from floodnb.simulate import simulate_dataset

    return simulate_dataset(tmp_path_factory.mktemp("sim") / "data", n_hand=12, n_weak=6, size=32, seed=0,
                            workers=1, progress=False)
