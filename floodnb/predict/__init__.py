"""Prediction: model + chip or whole scene -> water probability and class on the input's grid.

* :func:`predict_chip` — ``xr.Dataset`` chip -> ``xr.Dataset(prob, pred)`` (:mod:`.chip`).
* :func:`predict_raster` — a scene larger than a chip, overlapping blended tiles streamed in
  bounded memory -> class and probability Cloud-Optimised GeoTIFFs (:mod:`.raster`,
  :mod:`.tiles`, :mod:`.export`).
* :func:`extent_polygons` / :func:`write_polygons` — flood extent polygons with geodesic area,
  GeoPackage + GeoJSON (:mod:`.polygons`).
* :func:`resolve_predictor` — checkpoint / ``(model, spec)`` / bare module -> :class:`Predictor`.
"""

from floodnb.predict.chip import predict_chip
from floodnb.predict.export import validate_cog
from floodnb.predict.model import Predictor, resolve_predictor
from floodnb.predict.polygons import extent_polygons, write_polygons
from floodnb.predict.raster import RasterPrediction, open_source, predict_array, predict_raster
from floodnb.predict.tiles import RowBlender, TileGrid, predict_tile_row

__all__ = [
    "Predictor", "RasterPrediction", "RowBlender", "TileGrid", "extent_polygons", "open_source", "predict_array",
    "predict_chip", "predict_raster", "predict_tile_row", "resolve_predictor", "validate_cog", "write_polygons",
]
