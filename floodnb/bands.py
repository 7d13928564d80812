"""Band tuples, layer names, class names/colours and nodata conventions — one place for all.

Sen1Floods11 (Bonafilia et al., CVPR Workshops 2020) stores one GeoTIFF per layer and chip,
named ``<Event>_<id>_<Layer>.tif``. This module names every layer floodnb knows, the role each
plays in an ``xr.Dataset`` chip, and the palette every plot uses.

Conventions (see ``../shared/DESIGN.md``):

* ``S1Hand`` / ``S1Weak``: float32, bands (VV, VH), backscatter in dB, NaN = nodata.
* ``S2Hand`` / v1.0 weak-chip Sentinel-2: 13 bands B1..B12 with B8A, Level-1C TOA reflectance
  x 10000, stored as int16, 0 = nodata. In memory floodnb holds S2 as float32 reflectance
  (divided by :data:`S2_SCALE`) with NaN for nodata.
* Label layers (``LabelHand``, ``S1OtsuLabel*``, ``S2IndexLabelWeak``, ``JRCWaterHand``): int16,
  -1 = nodata / cloud / not valid (:data:`LABEL_NODATA`), 0 = dry, 1 = water.
* Simulator truth (``SimTruthWater``, ``SimTruthClass``) is written only by
  :mod:`floodnb.simulate`; loaders expose it as ``truth_water`` / ``truth_class`` and never as a
  training label.
* Inside torch, nodata labels become :data:`IGNORE_INDEX` in exactly one place
  (:mod:`floodnb.data.torch`).
"""

from __future__ import annotations

from dataclasses import dataclass

S1_BANDS: tuple[str, ...] = ("VV", "VH")
S2_BANDS: tuple[str, ...] = (
    "B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B10", "B11", "B12",
)
#: Sentinel-2 L1C digital numbers are reflectance x 10000.
S2_SCALE: float = 10000.0
#: Central wavelengths (nm) of the S2 bands, for plots and spectral indices.
S2_WAVELENGTH_NM: dict[str, float] = {
    "B1": 443, "B2": 490, "B3": 560, "B4": 665, "B5": 705, "B6": 740, "B7": 783,
    "B8": 842, "B8A": 865, "B9": 945, "B10": 1375, "B11": 1610, "B12": 2190,
}
S2_RGB: tuple[str, str, str] = ("B4", "B3", "B2")
#: False colour (SWIR2, NIR, red): water is dark blue/black, vegetation green.
S2_FALSE_COLOR: tuple[str, str, str] = ("B12", "B8", "B4")

LABEL_NODATA: int = -1
DRY: int = 0
WATER: int = 1
#: Target value for pixels the loss must ignore (torch's default for cross-entropy).
IGNORE_INDEX: int = -100

CLASS_NAMES: tuple[str, ...] = ("dry", "water")
NUM_CLASSES: int = len(CLASS_NAMES)
#: One palette for every plot: nodata, dry, water (RGBA hex).
CLASS_COLORS: dict[int, str] = {LABEL_NODATA: "#00000000", DRY: "#d9c89e", WATER: "#1f5fbf"}
DISAGREE_COLOR: str = "#e4572e"
#: Colour map for S1 backscatter in dB and its display range.
S1_CMAP: str = "gray"
S1_DB_RANGE: tuple[float, float] = (-30.0, 5.0)
NOISE_CMAP: str = "magma"

#: Simulator land-cover classes (``SimTruthClass`` values).
SIM_CLASSES: tuple[str, ...] = (
    "permanent_water", "flood_water", "cropland", "forest", "bare_soil", "urban",
    "flooded_vegetation", "sand",
)


@dataclass(frozen=True)
class Layer:
    """One Sen1Floods11 layer: its file-name suffix, group, role in a chip Dataset, dtype."""

    name: str
    group: str  # "hand" | "weak"
    role: str  # variable name in the chip Dataset / path column stem in the catalog
    dtype: str
    bands: tuple[str, ...]
    nodata: float | int | None


LAYERS: dict[str, Layer] = {
    layer.name: layer
    for layer in (
        Layer("S1Hand", "hand", "s1", "float32", S1_BANDS, float("nan")),
        Layer("S2Hand", "hand", "s2", "int16", S2_BANDS, 0),
        Layer("LabelHand", "hand", "label", "int16", ("label",), LABEL_NODATA),
        Layer("S1OtsuLabelHand", "hand", "s1_otsu", "int16", ("label",), LABEL_NODATA),
        Layer("JRCWaterHand", "hand", "jrc", "int16", ("label",), LABEL_NODATA),
        Layer("S1Weak", "weak", "s1", "float32", S1_BANDS, float("nan")),
        # Sentinel-2 for weak chips exists only in the v1.0 bucket (no quality control).
        Layer("S2Weak", "weak", "s2", "int16", S2_BANDS, 0),
        Layer("S1OtsuLabelWeak", "weak", "s1_otsu", "int16", ("label",), LABEL_NODATA),
        Layer("S2IndexLabelWeak", "weak", "s2_index", "int16", ("label",), LABEL_NODATA),
        # Written only by floodnb.simulate: the known truth, never a training label.
        Layer("SimTruthWater", "truth", "truth_water", "int16", ("label",), LABEL_NODATA),
        Layer("SimTruthClass", "truth", "truth_class", "int16", ("class",), LABEL_NODATA),
    )
}

#: Chip roles in the order they appear as catalog path columns (``<role>_path``).
ROLES: tuple[str, ...] = (
    "s1", "s2", "label", "s1_otsu", "s2_index", "jrc", "truth_water", "truth_class",
)

SPLITS: tuple[str, ...] = ("train", "valid", "test", "bolivia", "weak")
