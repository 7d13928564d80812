"""Flood extent as polygons with their area, written to GeoPackage and GeoJSON.

:func:`extent_polygons` vectorises the water pixels of a class map (``rasterio.features.shapes``,
4- or 8-connected), measures every polygon's **geodesic** area on the CRS's ellipsoid
(``pyproj.Geod.geometry_area_perimeter``; projected inputs are first transformed to their
geographic CRS) — correct for EPSG:4326 chips, where a degree-squared area means nothing — and
drops polygons smaller than ``min_area_m2``. With a permanent-water layer (Sen1Floods11 ``JRCWaterHand``
coding, :mod:`floodnb.predict.permanent`) water pixels are split into flood (not permanent) and
permanent water and every polygon is tagged ``kind`` = "flood" | "permanent"; without one, "water".
:func:`write_polygons` writes the layer atomically
to ``.gpkg`` (in the raster's CRS) and ``.geojson`` (EPSG:4326, as RFC 7946 requires).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from floodnb.bands import WATER
from floodnb.io_utils import atomic_gdal_path

LAYER = "flood_extent"
#: Polygon ``kind`` values: water not in the permanent layer, water in it, water when no layer is known.
KINDS: tuple[str, ...] = ("flood", "permanent", "water")
COLUMNS: tuple[str, ...] = ("id", "kind", "area_m2", "area_km2", "perimeter_m", "geometry")


def _read_class(pred):
    """``(values (H, W), transform, crs, name)`` from a DataArray or a class-map raster path."""
    if isinstance(pred, (str, Path)):
        import rasterio

        path = Path(pred)
        if not path.is_file():
            raise FileNotFoundError(f"class map {path} not found")
        with rasterio.open(path) as ds:
            if ds.count != 1:
                raise ValueError(f"class map {path} has {ds.count} bands; expected 1 (1 water, 0 dry, -1 nodata)")
            return ds.read(1), ds.transform, ds.crs, path.stem
    import xarray as xr

    if isinstance(pred, xr.Dataset):
        if "pred" not in pred.data_vars:
            raise ValueError(f"pred Dataset has no 'pred' variable (has {sorted(map(str, pred.data_vars))})")
        pred = pred["pred"]
    if not isinstance(pred, xr.DataArray) or pred.dims != ("y", "x"):
        raise ValueError(f"pred: expected a (y, x) DataArray, a Dataset with 'pred', or a GeoTIFF path; got "
                         f"{type(pred).__name__} {getattr(pred, 'dims', '')}")
    if pred.rio.crs is None:
        raise ValueError("pred DataArray has no CRS (set one with .rio.write_crs)")
    return np.asarray(pred.values), pred.rio.transform(), pred.rio.crs, str(pred.name or "pred")


def _kind_codes(values: np.ndarray, transform, crs, permanent, water_value: int) -> tuple[np.ndarray, dict]:
    """Per-pixel polygon codes (0 = not water) and code -> kind, split by ``permanent`` when given."""
    water = values == water_value
    if permanent is None:
        return water.astype(np.uint8), {1: "water"}
    if isinstance(permanent, (str, Path)):
        from floodnb.predict.permanent import read_permanent

        permanent = read_permanent(permanent, crs=crs, transform=transform, shape=values.shape)
    permanent = np.asarray(permanent)
    if permanent.shape != values.shape:
        raise ValueError(f"permanent-water array shape {permanent.shape} differs from the class map's {values.shape}")
    codes = np.where(water, np.where(permanent == 1, 2, 1), 0).astype(np.uint8)
    return codes, {1: "flood", 2: "permanent"}


def _geodesic(gdf, crs) -> tuple[np.ndarray, np.ndarray]:
    """Geodesic area (m²) and perimeter (m) of every polygon of ``gdf`` on ``crs``'s ellipsoid."""
    if crs.is_geographic:
        lonlat, geod = gdf.geometry, crs.get_geod()
    else:
        geographic = crs.geodetic_crs
        if geographic is None:
            raise ValueError(f"CRS {crs.name!r} has no geodetic CRS: polygon areas cannot be measured")
        lonlat, geod = gdf.geometry.to_crs(geographic), geographic.get_geod()
    if geod is None:
        raise ValueError(f"CRS {crs.name!r} has no ellipsoid: polygon areas cannot be measured")
    pairs = [geod.geometry_area_perimeter(g) for g in lonlat]
    return (np.asarray([abs(a) for a, _ in pairs], dtype=np.float64),
            np.asarray([p for _, p in pairs], dtype=np.float64))


def extent_polygons(pred, *, min_area_m2: float = 0.0, connectivity: int = 4, water_value: int = WATER,
                    permanent=None):
    """Polygons of the water pixels of ``pred`` with their geodesic area, tagged flood / permanent water.

    ``pred``: class map ``(y, x)`` DataArray (or a Dataset from :func:`predict_chip`) with a
    rioxarray CRS, or the path of a class-map GeoTIFF/COG (band 1; 1 water, 0 dry, -1 nodata).
    ``min_area_m2``: polygons smaller than this are dropped. ``connectivity``: 4 or 8.
    ``permanent``: optional permanent-water layer (1 permanent, 0 not, -1 unknown): an ``(H, W)``
    array on ``pred``'s grid or a raster path (aligned / reprojected by
    :func:`floodnb.predict.permanent.read_permanent`).

    Returns a ``geopandas.GeoDataFrame`` in the raster's CRS with columns ``id`` (int, largest
    first), ``kind`` ("flood" | "permanent" with a permanent layer, else "water"), ``area_m2`` and
    ``area_km2`` (geodesic on the CRS's ellipsoid), ``perimeter_m`` and geometry (Polygon, holes =
    dry islands). The whole class map is read into memory (1 byte/pixel).
    """
    import geopandas as gpd
    import pyproj
    import rasterio.features
    import shapely.geometry

    if connectivity not in (4, 8):
        raise ValueError(f"connectivity must be 4 or 8, got {connectivity}")
    if min_area_m2 < 0:
        raise ValueError(f"min_area_m2 must be >= 0, got {min_area_m2}")
    values, transform, crs, _ = _read_class(pred)
    codes, kinds = _kind_codes(values, transform, crs, permanent, water_value)
    shapes = list(rasterio.features.shapes(codes, mask=codes > 0, transform=transform, connectivity=connectivity))
    crs = pyproj.CRS.from_user_input(crs)
    gdf = gpd.GeoDataFrame({"kind": [kinds[int(v)] for _, v in shapes],
                            "geometry": [shapely.geometry.shape(g) for g, _ in shapes]}, geometry="geometry", crs=crs)
    gdf["area_m2"], gdf["perimeter_m"] = _geodesic(gdf, crs)
    gdf["area_km2"] = gdf["area_m2"] / 1e6
    gdf = gdf[gdf["area_m2"] >= min_area_m2].sort_values("area_m2", ascending=False).reset_index(drop=True)
    gdf.insert(0, "id", np.arange(len(gdf), dtype=np.int64))
    return gdf[list(COLUMNS)]


def write_polygons(gdf, path: str | Path) -> tuple[Path, Path]:
    """Write ``gdf`` to ``<path>.gpkg`` (layer ``flood_extent``, native CRS) and ``<path>.geojson``
    (EPSG:4326), each atomically. ``path``: output path with or without suffix. Returns both paths.
    """
    import pyogrio

    base = Path(path)
    if base.suffix.lower() in (".gpkg", ".geojson", ".json"):
        base = base.with_suffix("")
    gpkg, geojson = base.with_name(base.name + ".gpkg"), base.with_name(base.name + ".geojson")
    if gdf.crs is None:
        raise ValueError("polygons have no CRS; expected the class map's CRS")
    with atomic_gdal_path(gpkg) as tmp:
        pyogrio.write_dataframe(gdf, tmp, layer=LAYER, driver="GPKG", geometry_type="Polygon")
    with atomic_gdal_path(geojson) as tmp:
        pyogrio.write_dataframe(gdf.to_crs(4326), tmp, driver="GeoJSON", geometry_type="Polygon")
    return gpkg, geojson
