"""Model probabilities for label-noise scores: self-confidence and CromSS need ``P(class | x)``.

:func:`chip_probs` runs a trained checkpoint (:mod:`floodnb.predict`) on one chip and returns
``(K, H, W)`` class probabilities with NaN where the model had no input — the ``probs`` that
:func:`floodnb.labels.noise.self_confidence` and :func:`floodnb.labels.cromss.cromss_noise_score`
take. :func:`iter_catalog_with_models` extends :func:`floodnb.labels.stream.iter_catalog` so
:func:`floodnb.labels.stream.score_stream` scores a whole catalog chip by chip with

* ``model`` — usually the Sentinel-2 teacher: ``self_confidence`` of the weak label under it;
* ``other_model`` — a model of the other sensor (e.g. a Sentinel-1 model): with both, the
  CromSS cross-sensor score (Liu et al., TGRS 2025).

Out-of-sample use (confident learning, Northcutt et al. 2021): score chips the model was not
trained on — e.g. the weak pool or the test split with a teacher trained on the hand-labelled
train split. Metadata-conditioned models get each chip's ``meta_vector`` (S2 date for a model
that reads Sentinel-2, else the S1 date, and the chip centre).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import replace

import numpy as np
import pandas as pd
import xarray as xr

from floodnb.bands import CLASS_NAMES


def _chip_meta(predictor, chip: xr.Dataset) -> np.ndarray:
    from floodnb.data.metadata import meta_vector

    date = chip.attrs.get("s2_date") if "s2" in predictor.inputs else chip.attrs.get("s1_date")
    return meta_vector(date=date, lat=chip.attrs.get("lat"), lon=chip.attrs.get("lon"))


def chip_probs(predictor, chip: xr.Dataset) -> np.ndarray:
    """Class probabilities of ``chip`` under ``predictor`` (:func:`floodnb.predict.model.resolve_predictor`).

    Returns float32 ``(K, H, W)`` in :data:`floodnb.bands.CLASS_NAMES` order (dry, water), NaN in
    every class where an input band has no data. ``chip`` must hold the predictor's input roles
    (``s1`` VV/VH in dB, ``s2`` reflectance) — a clear ``ValueError`` names what is missing.
    """
    from floodnb.predict.chip import predict_chip

    if predictor.meta is not None or getattr(predictor.model, "meta_dim", None):
        predictor = replace(predictor, meta=_chip_meta(predictor, chip))
    out = predict_chip(predictor, chip)
    water = out["prob"].values.astype(np.float32)
    nodata = out["pred"].values < 0
    probs = np.empty((len(CLASS_NAMES),) + water.shape, dtype=np.float32)
    probs[CLASS_NAMES.index("water")] = water
    probs[CLASS_NAMES.index("dry")] = 1.0 - water
    probs[:, nodata] = np.nan
    return probs


def load_predictor(model):
    """A predictor from a checkpoint path, ``(model, spec)`` pair or predictor; ``None`` stays ``None``.

    Metadata-conditioned checkpoints get a zero metadata vector here, replaced by each chip's own by :func:`chip_probs`.
    """
    from floodnb.models import load_checkpoint
    from floodnb.predict.model import resolve_predictor

    if model is None:
        return None
    if isinstance(model, (str,)) or hasattr(model, "__fspath__"):
        net, spec = load_checkpoint(model)
        meta = np.zeros(spec.meta_dim, np.float32) if spec.meta_dim else None  # replaced per chip
        return resolve_predictor((net, spec), meta=meta)
    return resolve_predictor(model)


def iter_catalog_with_models(catalog: pd.DataFrame, *, sources: Sequence[str], with_truth: bool = False,
                             model=None, other_model=None) -> Iterator:
    """:func:`floodnb.labels.stream.iter_catalog` plus ``probs`` (``model``) and ``probs_other``
    (``other_model``) on every chip: checkpoint paths, ``(model, spec)`` pairs or predictors.

    Each chip's imagery is read once more for the models (only the roles they take).
    """
    from floodnb.data.io import load_chip
    from floodnb.labels.stream import iter_catalog

    pred, other = load_predictor(model), load_predictor(other_model)
    if pred is None and other is not None:
        raise ValueError("other_model is the second sensor of CromSS: give model= too")
    roles = sorted({r for p in (pred, other) if p is not None for r in p.inputs})
    rows = catalog.reset_index(drop=True)
    for i, chip_in in enumerate(iter_catalog(rows, sources=sources, with_truth=with_truth)):
        if pred is None:
            yield chip_in
            continue
        row = rows.iloc[i]
        missing = [r for r in roles if not isinstance(row.get(f"{r}_path"), str)]
        if missing:
            raise ValueError(f"chip {row['chip_id']}: the noise models need {roles} but the chip has no {missing} "
                             "layer; score a split whose chips have that imagery")
        img = load_chip(row, roles=roles)
        yield replace(chip_in, probs=chip_probs(pred, img),
                      probs_other=None if other is None else chip_probs(other, img))
