"""Map layers of one chip as RGBA images: pure array functions, no Panel, no Bokeh.

Every function takes arrays in the chip's own grid (row 0 = north, as in the GeoTIFF) and
returns ``uint8 (H, W, 4)`` RGBA with alpha 0 wherever the input is nodata, so layers can be
stacked over a basemap in any order. :func:`chip_layers` builds every layer the dashboard
(:mod:`floodnb.viz.dashboard`) offers from a chip ``xr.Dataset`` (see
:func:`floodnb.data.io.load_chip`) plus a prediction and a per-pixel noise map.

Colours come from :mod:`floodnb.bands` (one palette for every plot): S1 backscatter in dB on a
grey ramp over :data:`~floodnb.bands.S1_DB_RANGE`; Sentinel-2 true colour (B4, B3, B2) and false
colour (B12, B8, B4 — water dark blue/black, vegetation green) with a per-band percentile
stretch from :mod:`floodnb.viz.stretch` (raw L1C reflectance looks black otherwise); label
layers water in ``CLASS_COLORS[WATER]``; disagreement between prediction and hand label in
:data:`~floodnb.bands.DISAGREE_COLOR` (false water, commission) and :data:`OMISSION_COLOR`
(missed water); label-noise scores on the ``magma`` colour map.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from floodnb.bands import (
    CLASS_COLORS,
    DISAGREE_COLOR,
    DRY,
    LABEL_NODATA,
    NOISE_CMAP,
    S1_BANDS,
    S1_DB_RANGE,
    S2_FALSE_COLOR,
    S2_RGB,
    WATER,
)

#: Colour of water the hand label has and the prediction misses (omission error).
OMISSION_COLOR: str = "#f2c14e"
#: Water colour of each label-like layer: distinct, so stacked layers can be told apart on the map.
WATER_COLORS: dict[str, str] = {
    "prediction": CLASS_COLORS[WATER],  # blue (the palette's water colour)
    "label": "#17becf",  # cyan: hand label
    "s1_otsu": "#9467bd",  # purple: weak label, S1 Otsu
    "s2_index": "#2ca02c",  # green: weak label, S2 water index
}
#: Colour of pixels a binary (0/1) label-noise map flags as suspect.
SUSPECT_COLOR: str = "#ff2bd6"
#: Colour map of the water-probability layer (pixels at or above the threshold).
PROB_CMAP: str = "viridis"
#: Layer groups in sidebar order.
GROUPS: tuple[str, ...] = ("Imagery", "Labels", "Model", "Diagnostics")


@dataclass(frozen=True)
class LayerSpec:
    """One map layer the dashboard offers: key, title shown to the user, default look, legend.

    ``group`` is one of :data:`GROUPS`; ``swatches`` the (label, colour) pairs of a categorical
    layer's legend; ``colorbar`` names a continuous layer's colour bar ("s1_db", "probability",
    "noise") or is empty.
    """

    key: str
    title: str
    visible: bool
    alpha: float
    legend: str
    group: str = "Imagery"
    swatches: tuple[tuple[str, str], ...] = ()
    colorbar: str = ""


#: Layers in drawing order (bottom first). Titles are what the dashboard shows.
LAYER_SPECS: tuple[LayerSpec, ...] = (
    LayerSpec("s1", "Sentinel-1 VV (dB)", True, 1.0,
              f"grey ramp {S1_DB_RANGE[0]:g} .. {S1_DB_RANGE[1]:g} dB (dark = smooth water)", colorbar="s1_db"),
    LayerSpec("s1_vh", "Sentinel-1 VH (dB)", False, 1.0,
              f"grey ramp {S1_DB_RANGE[0]:g} .. {S1_DB_RANGE[1]:g} dB", colorbar="s1_db"),
    LayerSpec("s2_true", "Sentinel-2 true colour", False, 1.0, "B4/B3/B2, 2-98 % stretch"),
    LayerSpec("s2_false", "Sentinel-2 false colour", False, 1.0,
              "B12/B8/B4, 2-98 % stretch (water dark blue/black, vegetation green)"),
    LayerSpec("label", "Hand label", False, 0.7, "hand-labelled water; cloud/nodata transparent", "Labels",
              (("hand label: water", WATER_COLORS["label"]),)),
    LayerSpec("s1_otsu", "Weak label: S1 Otsu", False, 0.7, "water by an Otsu threshold on S1", "Labels",
              (("weak S1 Otsu: water", WATER_COLORS["s1_otsu"]),)),
    LayerSpec("s2_index", "Weak label: S2 water index", False, 0.7, "water by an S2 water index", "Labels",
              (("weak S2 index: water", WATER_COLORS["s2_index"]),)),
    LayerSpec("prediction", "Prediction", True, 0.6, "predicted water of the selected model", "Model",
              (("predicted water", WATER_COLORS["prediction"]),)),
    LayerSpec("probability", "Water probability", False, 0.8,
              "model's water probability, drawn where it reaches the threshold", "Model", colorbar="probability"),
    LayerSpec("disagreement", "Disagreement (prediction vs hand label)", False, 0.9,
              "red: predicted water, label dry; yellow: label water, predicted dry", "Model",
              (("false water (label dry)", DISAGREE_COLOR), ("missed water (label water)", OMISSION_COLOR))),
    LayerSpec("noise", "Label-noise map", False, 0.8,
              "suspect weak-label pixels (0/1 maps) or a noise score 0..1 (magma, bright = likely wrong)",
              "Diagnostics", (("suspect label", SUSPECT_COLOR),), colorbar="noise"),
)
LAYER_KEYS: tuple[str, ...] = tuple(s.key for s in LAYER_SPECS)
SPECS: dict[str, LayerSpec] = {s.key: s for s in LAYER_SPECS}


def hex_to_rgba(color: str) -> tuple[int, int, int, int]:
    """``#rrggbb`` or ``#rrggbbaa`` -> (r, g, b, a) in 0..255."""
    c = color.lstrip("#")
    if len(c) not in (6, 8) or any(ch not in "0123456789abcdefABCDEF" for ch in c):
        raise ValueError(f"colour must be '#rrggbb' or '#rrggbbaa', got {color!r}")
    vals = [int(c[i:i + 2], 16) for i in range(0, len(c), 2)]
    return (vals[0], vals[1], vals[2], vals[3] if len(vals) == 4 else 255)


def _check_2d(name: str, a: np.ndarray) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (y, x) array, got shape {a.shape}")
    return a


def _to_rgba(rgb01: np.ndarray) -> np.ndarray:
    """``(H, W, 3)`` float in [0, 1] with NaN = nodata -> ``(H, W, 4)`` uint8, NaN transparent."""
    valid = np.all(np.isfinite(rgb01), axis=-1)
    out = np.zeros(rgb01.shape[:2] + (4,), np.uint8)
    out[..., :3] = np.round(np.clip(np.nan_to_num(rgb01, nan=0.0), 0.0, 1.0) * 255).astype(np.uint8)
    out[..., 3] = np.where(valid, 255, 0)
    return out


def s1_rgba(s1_db: np.ndarray, *, band: str = "VV",
            db_range: tuple[float, float] = S1_DB_RANGE) -> np.ndarray:
    """One Sentinel-1 band in dB as grey RGBA (``db_range[0]`` black, ``db_range[1]`` white).

    ``s1_db``: float32 ``(2, H, W)`` backscatter in dB, bands :data:`~floodnb.bands.S1_BANDS`,
    NaN = nodata. Windowing is :func:`floodnb.viz.stretch.s1_db_display`. Returns ``(H, W, 4)``
    uint8; NaN pixels transparent. Smooth open water (specular reflection) is dark, typically
    below -20 dB in VV and -25 dB in VH.
    """
    from floodnb.viz.stretch import s1_db_display

    s1_db = np.asarray(s1_db)
    if s1_db.ndim != 3 or s1_db.shape[0] != len(S1_BANDS):
        raise ValueError(f"s1_db must have shape (2, H, W) with bands {S1_BANDS}, got {s1_db.shape}")
    grey = s1_db_display(s1_db, band=band, db_range=db_range)
    return _to_rgba(np.repeat(grey[..., None], 3, axis=-1))


def s2_rgba(s2: np.ndarray, *, bands: tuple[str, str, str] = S2_RGB,
            percentiles: tuple[float, float] = (2.0, 98.0)) -> np.ndarray:
    """Sentinel-2 composite with a per-band percentile stretch as RGBA ``(H, W, 4)`` uint8.

    ``s2``: float32 ``(13, H, W)`` L1C reflectance (DN / 10000), bands
    :data:`~floodnb.bands.S2_BANDS`, NaN = nodata. ``bands`` picks (red, green, blue), e.g.
    :data:`~floodnb.bands.S2_RGB` (true colour) or :data:`~floodnb.bands.S2_FALSE_COLOR`. The
    stretch is :func:`floodnb.viz.stretch.s2_composite`. Pixels with NaN in any of the three
    bands are transparent.
    """
    from floodnb.viz.stretch import s2_composite

    return _to_rgba(s2_composite(s2, bands=bands, low=percentiles[0], high=percentiles[1]))


def class_rgba(label: np.ndarray, *, dry_alpha: float = 0.0, color: str = CLASS_COLORS[WATER]) -> np.ndarray:
    """Label raster ``(H, W)`` int in {-1 nodata, 0 dry, 1 water} as RGBA ``(H, W, 4)`` uint8.

    Water uses ``color`` (default ``CLASS_COLORS[WATER]``; the dashboard gives every label-like
    layer its own, :data:`WATER_COLORS`); dry uses ``CLASS_COLORS[DRY]`` at ``dry_alpha`` (0 draws
    water only, so the imagery stays visible); nodata/cloud is transparent.
    """
    lab = _check_2d("label", label)
    if not 0.0 <= dry_alpha <= 1.0:
        raise ValueError(f"dry_alpha must lie in [0, 1], got {dry_alpha}")
    out = np.zeros(lab.shape + (4,), np.uint8)
    wr, wg, wb, wa = hex_to_rgba(color)
    dr, dg, db, _ = hex_to_rgba(CLASS_COLORS[DRY])
    out[lab == WATER] = (wr, wg, wb, wa)
    out[lab == DRY] = (dr, dg, db, int(round(255 * dry_alpha)))
    return out


def disagreement_rgba(pred: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Where a prediction and a reference label disagree, ``(H, W)`` each -> RGBA ``(H, W, 4)``.

    Predicted water on reference-dry pixels (commission) is :data:`~floodnb.bands.DISAGREE_COLOR`;
    reference water the prediction misses (omission) is :data:`OMISSION_COLOR`. Pixels where
    either side is nodata (:data:`~floodnb.bands.LABEL_NODATA`) or both agree are transparent.
    """
    p = _check_2d("pred", pred)
    r = _check_2d("reference", reference)
    if p.shape != r.shape:
        raise ValueError(f"pred {p.shape} and reference {r.shape} must share the chip grid")
    out = np.zeros(p.shape + (4,), np.uint8)
    valid = (p != LABEL_NODATA) & (r != LABEL_NODATA)
    out[valid & (p == WATER) & (r == DRY)] = hex_to_rgba(DISAGREE_COLOR)
    out[valid & (p == DRY) & (r == WATER)] = hex_to_rgba(OMISSION_COLOR)
    return out


def noise_is_binary(score: np.ndarray) -> bool:
    """Whether a noise map holds only 0 and 1 (besides NaN): a suspect/clean mask, not a score."""
    s = np.asarray(score)
    finite = s[np.isfinite(s)]
    return bool(np.isin(finite, (0.0, 1.0)).all())


def noise_rgba(score: np.ndarray, *, cmap: str = NOISE_CMAP) -> np.ndarray:
    """Per-pixel label-noise map ``(H, W)`` in [0, 1] as RGBA ``(H, W, 4)`` uint8.

    A binary map (:func:`noise_is_binary`, e.g. weak-label disagreement) draws suspect pixels (1)
    in :data:`SUSPECT_COLOR` and clean ones (0) transparent. A continuous score (e.g. CROMSS
    confidence) takes its colour from ``cmap`` (magma, the dashboard shows its colour bar) and an
    alpha rising with the score (``min(1, 2 * score)``), so clean pixels stay see-through and
    suspicious ones stand out over the imagery. NaN transparent.
    """
    import matplotlib

    s = _check_2d("score", score).astype(np.float32)
    finite = np.isfinite(s)
    if noise_is_binary(s):
        out = np.zeros(s.shape + (4,), np.uint8)
        out[finite & (s == 1.0)] = hex_to_rgba(SUSPECT_COLOR)
        return out
    v = np.clip(np.where(finite, s, 0.0), 0.0, 1.0)
    rgba = matplotlib.colormaps[cmap](v, bytes=True)  # (H,W,4) uint8
    rgba[..., 3] = np.where(finite, np.round(np.minimum(1.0, 2.0 * v) * 255), 0).astype(np.uint8)
    return rgba


def probability_rgba(prob: np.ndarray, *, threshold: float = 0.5, cmap: str = PROB_CMAP) -> np.ndarray:
    """Water probability ``(H, W)`` in [0, 1] (NaN = no data) as RGBA ``(H, W, 4)`` uint8.

    Pixels with ``prob >= threshold`` take their colour from ``cmap`` over [0, 1] (the same scale
    as the dashboard's colour bar); pixels below the threshold and NaN are transparent, so moving
    the threshold shows which water a stricter or looser cut keeps.
    """
    import matplotlib

    p = _check_2d("prob", prob).astype(np.float32)
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must lie in [0, 1], got {threshold}")
    finite = np.isfinite(p)
    v = np.clip(np.where(finite, p, 0.0), 0.0, 1.0)
    rgba = matplotlib.colormaps[cmap](v, bytes=True)
    rgba[..., 3] = np.where(finite & (v >= threshold), 255, 0).astype(np.uint8)
    return rgba


def chip_layers(chip, *, pred: np.ndarray | None = None, noise: np.ndarray | None = None,
                prob: np.ndarray | None = None, threshold: float = 0.5,
                keys: tuple[str, ...] = LAYER_KEYS) -> dict[str, np.ndarray | None]:
    """Every requested layer of one chip as RGBA ``(H, W, 4)`` uint8, or ``None`` if unavailable.

    ``chip``: ``xr.Dataset`` from :func:`floodnb.data.io.load_chip` (variables ``s1 (s1_band, y,
    x)`` dB, ``s2 (s2_band, y, x)`` reflectance, ``label``/``s1_otsu``/``s2_index (y, x)``, each
    optional). ``pred``: ``(H, W)`` predicted class {0, 1} (``-1`` = no prediction) on the chip
    grid. ``noise``: ``(H, W)`` per-pixel label-noise map in [0, 1]. ``prob``: ``(H, W)`` water
    probability in [0, 1] (NaN = no data), drawn where ``>= threshold``. ``keys`` restricts the
    work to the layers needed (subset of :data:`LAYER_KEYS`). Disagreement compares ``pred``
    with the hand label.
    """
    unknown = [k for k in keys if k not in LAYER_KEYS]
    if unknown:
        raise ValueError(f"unknown layer keys {unknown}; expected names from {LAYER_KEYS}")
    shape = (chip.sizes["y"], chip.sizes["x"])
    for name, arr in (("pred", pred), ("noise", noise), ("prob", prob)):
        if arr is not None and np.shape(arr) != shape:
            raise ValueError(f"{name} has shape {np.shape(arr)}, expected the chip grid {shape}")

    def var(name):
        return chip[name].values if name in chip.data_vars else None

    def one(key: str) -> np.ndarray | None:
        if key in ("s1", "s1_vh"):
            s1 = var("s1")
            return None if s1 is None else s1_rgba(s1, band="VV" if key == "s1" else "VH")
        if key in ("s2_true", "s2_false"):
            s2 = var("s2")
            return None if s2 is None else s2_rgba(s2, bands=S2_RGB if key == "s2_true" else S2_FALSE_COLOR)
        if key in ("label", "s1_otsu", "s2_index"):
            lab = var(key)
            return None if lab is None else class_rgba(lab, color=WATER_COLORS[key])
        if key == "prediction":
            return None if pred is None else class_rgba(pred, color=WATER_COLORS[key])
        if key == "probability":
            return None if prob is None else probability_rgba(prob, threshold=threshold)
        if key == "disagreement":
            lab = var("label")
            return None if (pred is None or lab is None) else disagreement_rgba(pred, lab)
        return None if noise is None else noise_rgba(noise)

    return {key: one(key) for key in keys}


def rgba_to_uint32(rgba: np.ndarray, *, flip: bool = True) -> np.ndarray:
    """``(H, W, 4)`` uint8 -> ``(H, W)`` uint32 packed RGBA, as Bokeh's ``image_rgba`` wants.

    ``flip=True`` turns north-up raster rows (row 0 = top) into Bokeh's bottom-up image rows.
    """
    rgba = np.asarray(rgba)
    if rgba.ndim != 3 or rgba.shape[2] != 4 or rgba.dtype != np.uint8:
        raise ValueError(f"rgba must be a (H, W, 4) uint8 array, got {rgba.shape} {rgba.dtype}")
    src = rgba[::-1] if flip else rgba
    return np.ascontiguousarray(src).view(np.uint32).reshape(rgba.shape[:2])


def mercator_bounds(bounds: tuple[float, float, float, float], crs) -> tuple[float, float, float, float]:
    """Chip bounds (left, bottom, right, top) in ``crs`` -> Web Mercator (EPSG:3857) metres.

    The basemap tiles are Web Mercator; a Sen1Floods11 chip (EPSG:4326, ~5 km) is drawn as an
    image stretched to its Mercator bounds. Mercator y is not linear in latitude, but across
    5 km the shift is far below one pixel.
    """
    from rasterio.crs import CRS
    from rasterio.warp import transform_bounds

    src = CRS.from_user_input(crs) if crs is not None else CRS.from_epsg(4326)
    w, s, e, n = (float(v) for v in transform_bounds(src, CRS.from_epsg(3857), *bounds))
    return w, s, e, n
