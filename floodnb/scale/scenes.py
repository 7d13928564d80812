"""Scene opening for many-scene prediction: a path, a list of paths or a STAC item -> a windowed source.

:func:`open_scene` gives ``(name, source text, source)``; the source is a
:class:`floodnb.predict.sources.GeoTiffSource` (local paths or URLs read by GDAL with
``/vsicurl/``), wrapped in a :class:`floodnb.predict.sources.DbSource` when a STAC collection
stores linear power or amplitude. Every asset of a scene is checked to lie on one grid.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import rasterio

from floodnb.predict.sources import TRANSFORM_TOL, DbSource, GeoTiffSource, open_source

#: GDAL options for reading scenes: no directory listing when opening a file (over HTTP a listing
#: of the asset's folder costs seconds to minutes per open; sidecar files are still probed by name)
GDAL_READ_OPTIONS: dict[str, str] = {"GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR"}


def _href(asset) -> str:
    href = asset.get_absolute_href() or asset.href
    return href[len("file://"):] if href.startswith("file://") else href


def _open_hrefs(hrefs: Sequence[str], *, bands: tuple[str, ...], what: str):
    """A :class:`floodnb.predict.sources.GeoTiffSource` over local paths or URLs (one per band, or
    one multi-band file), checked to share one grid. GDAL reads URLs with ``/vsicurl/``.
    """
    meta = {}
    for href in dict.fromkeys(hrefs):
        try:
            with rasterio.Env(**GDAL_READ_OPTIONS), rasterio.open(href) as ds:
                meta[href] = (ds.height, ds.width, ds.crs, ds.transform, ds.count, ds.descriptions)
        except rasterio.errors.RasterioIOError as exc:
            raise ValueError(f"{what}: asset {href} cannot be read ({exc})") from exc
    ref_href = hrefs[0]
    h, w, crs, tr = meta[ref_href][:4]
    if crs is None:
        raise ValueError(f"{what}: asset {ref_href} has no CRS; expected a georeferenced GeoTIFF")
    for href, (h2, w2, crs2, tr2, _, _) in meta.items():
        if (h2, w2) != (h, w) or crs2 != crs or not tr2.almost_equals(tr, precision=abs(tr.a) * TRANSFORM_TOL):
            raise ValueError(f"{what}: asset {href} is not on the grid of {ref_href}")
    if len(meta) == len(hrefs):  # one file per band: its first band
        pairs = tuple((href, 1) for href in hrefs)
    else:  # one multi-band file: bands by description, else in order
        count, desc = meta[ref_href][4:]
        names = list(desc)
        if all(names) and all(b in names for b in bands):
            pairs = tuple((ref_href, names.index(b) + 1) for b in bands)
        elif count >= len(bands):
            pairs = tuple((ref_href, i + 1) for i in range(len(bands)))
        else:
            raise ValueError(f"{what}: asset {ref_href} has {count} band(s); the model needs {list(bands)}")
    return GeoTiffSource(name=what, bands=pairs, height=h, width=w, crs=crs, transform=tr)


def open_scene(scene, *, bands: tuple[str, ...], s1_units: str):
    """``(name, source text, windowed source)`` of a path, a list of paths or a STAC item.

    Raises ValueError / FileNotFoundError naming the scene when it cannot be read or lacks a band.
    """
    import pystac

    if isinstance(scene, pystac.Item):
        from floodnb.scale.collections import resolve_assets, s1_units_of

        what = f"STAC item {scene.id!r}"
        extra = [b for b in bands if b not in ("VV", "VH")]
        if extra:
            raise ValueError(f"{what}: the model needs bands {list(bands)}; Sentinel-1 STAC scenes provide only "
                             f"VV and VH (no {extra})")
        keys, _, missing = resolve_assets(scene, "s1")
        missing = [b for b in bands if b in missing]
        if missing:
            raise ValueError(f"{what} has no asset for band(s) {missing} (expected one of "
                             f"{['/'.join(('vv', 'VV') if b == 'VV' else ('vh', 'VH')) for b in missing]}); "
                             f"its assets: {sorted(scene.assets)}")
        units = s1_units_of(scene.collection_id or "", s1_units)
        hrefs = [_href(scene.assets[keys[b]]) for b in bands]
        inner = _open_hrefs(hrefs, bands=bands, what=scene.id)
        if units == "db":
            src = inner
        else:
            with rasterio.Env(**GDAL_READ_OPTIONS), rasterio.open(hrefs[0]) as ds:
                nodata = ds.nodata
            src = DbSource(inner=inner, units=units, nodata=nodata)
        return scene.id, scene.get_self_href() or scene.id, src
    if isinstance(scene, (list, tuple)):
        src = open_source([str(p) for p in scene], bands=bands, s1_units=s1_units)
        return Path(scene[0]).stem, ";".join(str(p) for p in scene), src
    src = open_source(str(scene), bands=bands, s1_units=s1_units)
    return Path(str(scene)).stem, str(scene), src


def scene_name(scene) -> str:
    if hasattr(scene, "id"):
        return str(scene.id)
    return Path(str(scene[0] if isinstance(scene, (list, tuple)) else scene)).stem
