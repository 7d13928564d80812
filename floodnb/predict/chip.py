"""Model + chip ``xr.Dataset`` -> ``xr.Dataset(prob, pred)`` on the chip's own grid.

The chip is a :func:`floodnb.data.io.load_chip` Dataset: ``s1 (s1_band, y, x)`` float32 dB and/or
``s2 (s2_band, y, x)`` float32 reflectance, NaN = nodata, x/y coordinates and a rioxarray CRS.
The model's input bands are picked by name from each input role's band coordinate.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import xarray as xr

from floodnb.bands import LABEL_NODATA, WATER
from floodnb.predict.model import Predictor, resolve_predictor
from floodnb.predict.raster import predict_array


def chip_input(chip: xr.Dataset, predictor: Predictor) -> np.ndarray:
    """Raw model input ``(C, H, W)`` float32 from ``chip``: the predictor's bands of each input role,
    in channel order. Raises ``ValueError`` naming the chip, role and bands when something is missing.
    """
    who = f"chip {chip.attrs['chip_id']!r}" if "chip_id" in chip.attrs else "chip"
    parts = []
    for role in predictor.inputs:
        want = predictor.bands[role]
        if role not in chip.data_vars:
            raise ValueError(f"{who} has no {role!r} variable (has {sorted(map(str, chip.data_vars))}); the model "
                             f"needs inputs {list(predictor.inputs)} with bands {list(want)}")
        da = chip[role]
        if da.ndim != 3 or tuple(da.dims[1:]) != ("y", "x"):
            raise ValueError(f"{who}: {role!r} must have dims ({role}_band, y, x), got {da.dims}")
        bdim = da.dims[0]
        have = [str(b) for b in da[bdim].values] if bdim in da.coords else None
        if have is None:
            if da.sizes[bdim] != len(want):
                raise ValueError(f"{who}: {role!r} has {da.sizes[bdim]} unnamed bands; the model needs {list(want)}")
            parts.append(np.asarray(da.values, dtype=np.float32))
            continue
        missing = [b for b in want if b not in have]
        if missing:
            raise ValueError(f"{who}: {role!r} has bands {have} but the model needs {list(want)} (missing {missing})")
        parts.append(np.asarray(da.sel({bdim: list(want)}).values, dtype=np.float32))
    return np.concatenate(parts, axis=0) if len(parts) > 1 else parts[0]


def predict_chip(
    model,
    chip: xr.Dataset,
    *,
    inputs: Sequence[str] | None = None,
    bands: dict | None = None,
    normalizers: dict | None = None,
    meta: Sequence[float] | np.ndarray | None = None,
    threshold: float = 0.5,
    tile: int | None = None,
    overlap: int = 64,
    batch: int | None = None,
    precision: str | None = None,
) -> xr.Dataset:
    """Predict water on one chip.

    ``model``: checkpoint path, ``(model, spec)`` pair from :func:`floodnb.models.load_checkpoint`,
    or a bare ``nn.Module`` with ``normalizers={role: callable}`` (and ``inputs=``, default
    ``("s1",)``). ``meta``: ``(meta_dim,)`` vector for metadata-conditioned models.
    ``tile=None`` runs the whole chip in one forward pass; a tile size splits larger arrays
    into overlapping blended tiles (:mod:`floodnb.predict.tiles`). ``precision``: ``"float32"``
    (default) or ``"bfloat16"`` forward pass (:func:`~floodnb.predict.model.resolve_predictor`).

    Returns ``xr.Dataset`` on the chip's x/y coordinates and CRS with

    * ``prob (y, x)`` float32: water probability in [0, 1] (softmax), 0 where the input has no data;
    * ``pred (y, x)`` int16: 1 water (``prob > threshold``), 0 dry, -1 where any input band is NaN;

    attrs: ``model`` (name), ``checkpoint`` (path or "in-memory model"), ``inputs``, ``bands``,
    ``threshold`` and the chip's own attrs (chip_id, event, ...).
    """
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be in [0, 1], got {threshold}")
    predictor = resolve_predictor(model, inputs=inputs, bands=bands, normalizers=normalizers, meta=meta,
                                  precision=precision)
    raw = chip_input(chip, predictor)
    _, h, w = raw.shape
    size = max(h, w) if tile is None else tile
    prob, valid = predict_array(predictor, raw, tile=size, overlap=0 if tile is None else overlap, batch=batch)
    pred = np.where(valid, (prob > threshold).astype(np.int16) * WATER, np.int16(LABEL_NODATA)).astype(np.int16)
    coords = {k: chip.coords[k] for k in ("y", "x") if k in chip.coords}
    attrs = {k: v for k, v in chip.attrs.items()}
    attrs.update(model=predictor.name, checkpoint=predictor.source, inputs=list(predictor.inputs),
                 bands=list(predictor.band_list), threshold=float(threshold))
    out = xr.Dataset(
        {"prob": (("y", "x"), prob, {"long_name": "water probability", "units": "1"}),
         "pred": (("y", "x"), pred, {"long_name": "water class", "flag_values": [-1, 0, 1],
                                     "flag_meanings": "nodata dry water"})},
        coords=coords, attrs=attrs,
    )
    crs = chip.rio.crs
    if crs is not None:
        out = out.rio.write_crs(crs)
        if "x" in chip.coords and "y" in chip.coords:
            out = out.rio.write_transform(chip.rio.transform())
    return out
