"""Test fixture: a small static STAC catalog of local Sentinel-1/Sentinel-2 GeoTIFFs served over
HTTP from 127.0.0.1 (threaded server with byte-range support, as GDAL's /vsicurl/ needs).

Scenes are synthetic: a water disc (low S1 backscatter, high NDWI) on land, S1 as linear power
(``sentinel-1-rtc`` style, assets ``vv``/``vh``, nodata -32768) on an EPSG:4326 grid, S2 as
Planetary-Computer-style L2A digital numbers (assets ``B01``..``B12``/``B8A``, no B10, nodata 0)
on a UTM grid, so the pool must reproject both onto one grid.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import http.server
import os
import re
import threading
from pathlib import Path

import numpy as np
import pystac
import rasterio
from affine import Affine

RES_DEG = 8.983152841195215e-05
WEST, NORTH = 10.0, 45.0
S2_ASSETS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12")


class _RangeHandler(http.server.SimpleHTTPRequestHandler):
    """Static files with ``Range: bytes=a-b`` support; silent."""

    def log_message(self, *args) -> None:  # noqa: D102
        pass

    def send_head(self):  # noqa: D102
        rng = self.headers.get("Range")
        path = Path(self.translate_path(self.path))
        if rng is None or not path.is_file():
            return super().send_head()
        m = re.fullmatch(r"bytes=(\d*)-(\d*)", rng.strip())
        size = path.stat().st_size
        if m is None:
            self.send_error(416)
            return None
        a = int(m.group(1)) if m.group(1) else max(size - int(m.group(2)), 0)
        b = int(m.group(2)) if m.group(1) and m.group(2) else size - 1
        b = min(b, size - 1)
        if a >= size:
            self.send_error(416)
            return None
        f = open(path, "rb")  # noqa: SIM115 - closed by copyfile's caller
        f.seek(a)
        self.send_response(206)
        self.send_header("Content-Type", self.guess_type(str(path)))
        self.send_header("Content-Range", f"bytes {a}-{b}/{size}")
        self.send_header("Content-Length", str(b - a + 1))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        self._remaining = b - a + 1
        return _Limited(f, b - a + 1)


class _Limited:
    def __init__(self, f, n: int) -> None:
        self.f, self.n = f, n

    def read(self, size: int = -1) -> bytes:
        if self.n <= 0:
            return b""
        size = self.n if size < 0 else min(size, self.n)
        data = self.f.read(size)
        self.n -= len(data)
        return data

    def close(self) -> None:
        self.f.close()


@contextlib.contextmanager
def serve(folder: Path):
    """Serve ``folder`` on 127.0.0.1 (free port) in a thread; yields the base URL; stops on exit."""
    handler = functools.partial(_RangeHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


#: the water disc, in degrees (centre lon, centre lat, radius): the same place in every scene
DISC = (WEST + 150 * RES_DEG, NORTH - 120 * RES_DEG, 75 * RES_DEG)


def _disc(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    cx, cy, r = DISC
    return (lon - cx) ** 2 + (lat - cy) ** 2 < r ** 2


def _lonlat(transform, size: int, crs: str) -> tuple[np.ndarray, np.ndarray]:
    from pyproj import Transformer

    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    x = transform.c + transform.a * xx
    y = transform.f + transform.e * yy
    if crs == "EPSG:4326":
        return x, y
    return Transformer.from_crs(crs, 4326, always_xy=True).transform(x, y)


def write_s1(path: Path, *, size: int, seed: int) -> None:
    """S1 linear-power scene ``(2, size, size)`` float32 on EPSG:4326, nodata -32768 in the last 8 columns."""
    rng = np.random.default_rng(seed)
    transform = Affine(RES_DEG, 0.0, WEST, 0.0, -RES_DEG, NORTH)
    water = _disc(*_lonlat(transform, size, "EPSG:4326"))
    db = np.where(water, [[[-22.0]], [[-29.0]]], [[[-9.0]], [[-16.0]]]) + rng.normal(0, 1.0, (2, size, size))
    lin = (10.0 ** (db / 10.0)).astype(np.float32)
    lin[:, :, -8:] = -32768.0
    with rasterio.open(path, "w", driver="GTiff", height=size, width=size, count=2, dtype="float32",
                       crs="EPSG:4326", transform=transform, nodata=-32768.0) as ds:
        ds.write(lin)


def write_s2(path: Path, *, size: int, seed: int) -> None:
    """S2 L2A DN scene ``(12, size, size)`` uint16 (no B10) on UTM 32N, with the +1000 BOA offset."""
    from pyproj import Transformer

    rng = np.random.default_rng(seed)
    x0, y0 = Transformer.from_crs(4326, 32632, always_xy=True).transform(WEST - 0.0005, NORTH + 0.0005)
    transform = Affine(10.0, 0.0, x0, 0.0, -10.0, y0)
    water = _disc(*_lonlat(transform, size, "EPSG:32632"))
    refl = np.where(water, 400.0, 2500.0)[None] * np.ones((len(S2_ASSETS), 1, 1))
    refl[2] = np.where(water, 900.0, 700.0)  # green: water brighter than NIR
    refl += rng.normal(0, 20.0, refl.shape)
    dn = np.clip(refl + 1000.0, 1, 65535).astype(np.uint16)
    with rasterio.open(path, "w", driver="GTiff", height=size, width=size, count=len(S2_ASSETS), dtype="uint16",
                       crs="EPSG:32632", transform=transform, nodata=0) as ds:
        ds.write(dn)


def _bbox_of(path: Path) -> list[float]:
    from rasterio.warp import transform_bounds

    with rasterio.open(path) as ds:
        return list(transform_bounds(ds.crs, "EPSG:4326", *ds.bounds))


def _single_band_assets(path: Path, folder: Path, keys: tuple[str, ...]) -> dict[str, Path]:
    """Split a multi-band GeoTIFF into one COG-like GeoTIFF per asset (as STAC collections store them)."""
    out = {}
    with rasterio.open(path) as src:
        prof = src.profile | {"count": 1, "tiled": True, "blockxsize": 256, "blockysize": 256, "compress": "deflate"}
        for i, key in enumerate(keys, start=1):
            p = folder / f"{path.stem}_{key}.tif"
            with rasterio.open(p, "w", **prof) as dst:
                dst.write(src.read(i), 1)
            out[key] = p
    os.unlink(path)
    return out


def make_catalog(folder: Path, *, size: int = 600, s1: list[dict], s2: list[dict]) -> Path:
    """Write scenes and a self-contained static catalog under ``folder``; returns ``catalog.json``.

    ``s1``: dicts ``{"id", "datetime", "drop": [asset keys to leave out]}``; ``s2``: plus
    ``"cloud"`` (eo:cloud_cover, None = property absent). Asset hrefs are relative, so the
    catalog works from disk and over HTTP.
    """
    folder.mkdir(parents=True, exist_ok=True)
    cat = pystac.Catalog(id="test-pool", description="floodnb test pool")
    cols = {
        "sentinel-1-rtc": pystac.Collection(id="sentinel-1-rtc", description="S1 RTC (linear gamma0)",
                                            extent=pystac.Extent(pystac.SpatialExtent([[-180, -90, 180, 90]]),
                                                                 pystac.TemporalExtent([[None, None]]))),
        "sentinel-2-l2a": pystac.Collection(id="sentinel-2-l2a", description="S2 L2A",
                                            extent=pystac.Extent(pystac.SpatialExtent([[-180, -90, 180, 90]]),
                                                                 pystac.TemporalExtent([[None, None]]))),
    }
    for k, spec in enumerate(s1):
        tif = folder / f"{spec['id']}.tif"
        write_s1(tif, size=size, seed=k)
        bbox = _bbox_of(tif)
        assets = _single_band_assets(tif, folder, ("vv", "vh"))
        item = pystac.Item(id=spec["id"], geometry=_poly(bbox), bbox=bbox, datetime=spec["datetime"],
                           properties={"sat:orbit_state": "descending", "sat:relative_orbit": 7})
        for key, p in assets.items():
            if key not in spec.get("drop", ()):
                item.add_asset(key, pystac.Asset(href=p.name, media_type=pystac.MediaType.GEOTIFF, roles=["data"]))
        cols["sentinel-1-rtc"].add_item(item)
    for k, spec in enumerate(s2):
        tif = folder / f"{spec['id']}.tif"
        write_s2(tif, size=size, seed=100 + k)
        bbox = _bbox_of(tif)
        assets = _single_band_assets(tif, folder, S2_ASSETS)
        props = {"s2:processing_baseline": "05.09"}
        if spec["cloud"] is not None:
            props["eo:cloud_cover"] = spec["cloud"]
        item = pystac.Item(id=spec["id"], geometry=_poly(bbox), bbox=bbox, datetime=spec["datetime"], properties=props)
        for key, p in assets.items():
            if key not in spec.get("drop", ()):
                item.add_asset(key, pystac.Asset(href=p.name, media_type=pystac.MediaType.GEOTIFF, roles=["data"]))
        cols["sentinel-2-l2a"].add_item(item)
    for c in cols.values():
        cat.add_child(c)
    cat.normalize_hrefs(str(folder))
    # items live in sub-folders after normalising: point asset hrefs at the scene files
    for item in cat.get_items(recursive=True):
        for a in item.assets.values():
            a.href = os.path.relpath(folder / Path(a.href).name, Path(item.get_self_href()).parent)
    cat.save(catalog_type=pystac.CatalogType.SELF_CONTAINED)
    return folder / "catalog.json"


def _poly(b: list[float]) -> dict:
    w, s, e, n = b
    return {"type": "Polygon", "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]]}


def t(day: int, hour: int = 10) -> dt.datetime:
    return dt.datetime(2023, 3, 1, hour, tzinfo=dt.timezone.utc) + dt.timedelta(days=day)
