"""One chip of a run as arrays for the map: imagery and labels, a model's prediction and probability, noise map.

:func:`load_chip_arrays` is shared by the live dashboard (:mod:`floodnb.viz.dashboard`) and the
self-contained HTML export (:mod:`floodnb.viz.static_export`). Files are found only by looking a
chip id and a method up in the run's tables (:func:`floodnb.viz.run_data.prediction_files`); a
raster whose shape differs from the chip grid is dropped with a note instead of being drawn
misplaced. :func:`pixel_values` reads every layer at one map position (click-to-read).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from floodnb.bands import LABEL_NODATA
from floodnb.chip_ids import is_chip_id
from floodnb.runs import layout as run_layout
from floodnb.viz import maplayers as ml
from floodnb.viz.run_data import RunData, prediction_files


@dataclass
class ChipArrays:
    """Arrays of one chip on its own grid (row 0 = north), plus its Web Mercator bounds.

    ``pred`` int16 ``(H, W)`` {-1, 0, 1}; ``prob`` float32 ``(H, W)`` in [0, 1] (NaN = no data);
    ``noise`` float32 ``(H, W)``; each ``None`` when the run has none. ``merc`` = (x0, y0, x1, y1)
    metres (EPSG:3857); ``lat`` the chip centre's latitude (degrees, for the scale bar).
    """

    chip_id: str
    method: str | None
    chip: Any  # xr.Dataset from floodnb.data.io.load_chip
    pred: np.ndarray | None
    prob: np.ndarray | None
    noise: np.ndarray | None
    merc: tuple[float, float, float, float]
    lat: float
    notes: list[str] = field(default_factory=list)
    layers: dict = field(default_factory=dict)  # layer key -> RGBA, filled lazily by the caller

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.chip.sizes["y"]), int(self.chip.sizes["x"])

    def rgba(self, keys: tuple[str, ...], *, threshold: float = 0.5) -> dict[str, np.ndarray | None]:
        """RGBA of layers ``keys`` (:func:`floodnb.viz.maplayers.chip_layers`), computed once each."""
        todo = tuple(k for k in keys if k not in self.layers)
        if todo:
            self.layers.update(ml.chip_layers(self.chip, pred=self.pred, noise=self.noise, prob=self.prob,
                                              threshold=threshold, keys=todo))
        return {k: self.layers[k] for k in keys}


def _read(path: Path, shape: tuple[int, int], what: str, notes: list[str]) -> np.ndarray | None:
    import rasterio

    with rasterio.open(path) as ds:
        a = ds.read(1, masked=True)
    if a.shape != shape:
        notes.append(f"{what} {path.name} has shape {a.shape}, chip has {shape}: not shown")
        return None
    return a


def load_chip_arrays(run: RunData, chip_id: str, *, method: str | None) -> ChipArrays:
    """Read chip ``chip_id`` (from the run's catalog), ``method``'s saved prediction and the noise map.

    A uint8 probability file is percent (255 = no data, :func:`floodnb.compare.write_chip_prediction`
    with ``compact``); float files are probabilities with NaN = no data.
    """
    from floodnb.data.io import load_chip

    if not is_chip_id(chip_id) or chip_id not in run.catalog.index:
        raise ValueError(f"chip {chip_id!r} is not in the catalog of {run.data_root}")
    chip = load_chip(run.catalog.loc[chip_id])
    shape = (int(chip.sizes["y"]), int(chip.sizes["x"]))
    notes: list[str] = []
    files = prediction_files(run, method, chip_id)
    pred = prob = noise = None
    if "pred" in files and (a := _read(files["pred"], shape, "prediction", notes)) is not None:
        pred = np.where(np.ma.getmaskarray(a), LABEL_NODATA, np.ma.getdata(a)).astype(np.int16)
    if "prob" in files and (a := _read(files["prob"], shape, "probability", notes)) is not None:
        raw = np.ma.filled(a.astype(np.float32), np.nan)
        prob = raw / 100.0 if a.dtype == np.uint8 else raw
    npath = run.run_dir / run_layout.NOISE_MAPS / f"{chip_id}_noise.tif"
    if npath.is_file() and (a := _read(npath, shape, "noise map", notes)) is not None:
        noise = np.ma.filled(a.astype(np.float32), np.nan)
    crs = chip.rio.crs if hasattr(chip, "rio") else None
    xs, ys = chip["x"].values, chip["y"].values
    rx = abs(float(xs[1] - xs[0])) if len(xs) > 1 else 1.0
    ry = abs(float(ys[1] - ys[0])) if len(ys) > 1 else 1.0
    bounds = (float(xs.min()) - rx / 2, float(ys.min()) - ry / 2, float(xs.max()) + rx / 2, float(ys.max()) + ry / 2)
    merc = ml.mercator_bounds(bounds, crs if crs is not None else "EPSG:4326")
    lat = math.degrees(2 * math.atan(math.exp((merc[1] + merc[3]) / 2 / 6378137.0)) - math.pi / 2)
    return ChipArrays(chip_id, method, chip, pred, prob, noise, merc, lat, notes)


def pixel_index(arrays: ChipArrays, x: float, y: float) -> tuple[int, int] | None:
    """(row, col) of Web Mercator point ``(x, y)`` on the chip grid, or ``None`` outside the chip."""
    x0, y0, x1, y1 = arrays.merc
    h, w = arrays.shape
    if not (x0 <= x < x1 and y0 < y <= y1):
        return None
    col = min(w - 1, int((x - x0) / (x1 - x0) * w))
    row = min(h - 1, int((y1 - y) / (y1 - y0) * h))
    return row, col


def pixel_values(arrays: ChipArrays, x: float, y: float) -> dict[str, float | int | str] | None:
    """Every layer's value at Web Mercator ``(x, y)``: S1 VV/VH (dB), labels, prediction, probability, noise.

    ``None`` outside the chip. Labels and prediction are "water"/"dry"/"no data"; dB and
    probability are floats (NaN = no data).
    """
    rc = pixel_index(arrays, x, y)
    if rc is None:
        return None
    r, c = rc
    chip = arrays.chip
    out: dict[str, float | int | str] = {"row": r, "col": c}
    if "s1" in chip.data_vars:
        s1 = chip["s1"].values
        out["S1 VV (dB)"], out["S1 VH (dB)"] = float(s1[0, r, c]), float(s1[1, r, c])
    names = {1: "water", 0: "dry"}
    for key in ("label", "s1_otsu", "s2_index"):
        if key in chip.data_vars:
            out[ml.SPECS[key].title] = names.get(int(chip[key].values[r, c]), "no data")
    if arrays.pred is not None:
        out[f"prediction ({arrays.method or run_layout.PREDICTIONS_DEFAULT_METHOD})"] = names.get(
            int(arrays.pred[r, c]), "no data")
    if arrays.prob is not None:
        out["water probability"] = float(arrays.prob[r, c])
    if arrays.noise is not None:
        out["label-noise map"] = float(arrays.noise[r, c])
    return out


def scale_bar(merc: tuple[float, float, float, float], lat: float) -> dict[str, list]:
    """A scale bar for a chip: a round ground length (m) about a quarter of the chip's width.

    Web Mercator stretches ground distances by ``1 / cos(lat)``, so a ground length L spans
    ``L / cos(lat)`` map metres. Returns Bokeh column data: ``x0, x1, y`` (the bar near the
    chip's upper-left corner, map metres) and ``label`` (e.g. "1 km").
    """
    x0, y0, x1, y1 = merc
    k = 1.0 / max(1e-6, math.cos(math.radians(lat)))
    ground_width = (x1 - x0) / k
    length = next((v for v in (5000, 2000, 1000, 500, 200, 100, 50, 20, 10) if v <= ground_width / 4), 10)
    label = f"{length // 1000} km" if length >= 1000 else f"{length} m"
    bx, by = x0 + 0.05 * (x1 - x0), y1 - 0.08 * (y1 - y0)
    return dict(x0=[bx], x1=[bx + length * k], y=[by], label=[label], ty=[by + 0.015 * (y1 - y0)])
