"""Units and value ranges of image layers before a model sees them; Sentinel-1 unit conversion.

floodnb's models expect Sen1Floods11 units (Bonafilia et al., CVPR Workshops 2020): Sentinel-1
backscatter in **dB** as float (VV, VH; NaN = nodata) and Sentinel-2 Level-1C **DN =
reflectance x 10000** (0 or the file's nodata tag = nodata). Data in other units run through a
model without any error and give a silently wrong map (S1 in linear power: water IoU 0.61 -> 0.08
on the simulated test split; an untagged -9999 fill is called water), so :func:`s1_to_model_db`
and :func:`check_s2_dn` stop with a :class:`UnitsError` naming the file, the band, what was
observed (range, dtype, the suspicious value) and what is expected.

Checks, chosen so that real Sen1Floods11 chips pass (real S1 dB VV reaches +26 dB on bright
scatterers, VH +7 dB; most pixels are -30..-5 dB):

* S1 stored as integers: refused unless the user states the units (``s1_units`` other than
  "auto"); integers are usually uncalibrated GRD digital numbers or scaled dB.
* S1 value below :data:`S1_MIN_DB` dB (after conversion): an untagged nodata fill (-9999, -32768)
  when one value makes up most of them, else values that are not dB (e.g. dB x 100).
* S1 band with more than :data:`S1_MAX_POSITIVE_FRACTION` of its valid pixels above 0 dB: not dB
  (linear power and amplitude are >= 0); the message suggests ``--s1-units linear|amplitude``.
* S1 stated as linear/amplitude but more than 1 % of its values negative: it is dB already.
* Scenes for prediction (:func:`check_scene`) get the S1 checks on a sample of whole blocks before
  any work, and every strip the prediction reads is checked for fill values (:func:`check_s1_fill`).
* S2 value below :data:`S2_MIN_DN`: an untagged nodata fill; S2 whose valid values all lie in
  [0, :data:`S2_MAX_REFLECTANCE_LIKE`]: reflectance 0..1, not DN (multiply by 10000).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from floodnb.bands import S1_BANDS, S2_BANDS

#: ``s1_units`` values for local files: "auto" = float dB as in Sen1Floods11 (checked); "db" = dB,
#: integers accepted; "linear" (power) and "amplitude" are converted with 10 log10 / 20 log10.
S1_UNITS: tuple[str, ...] = ("auto", "db", "linear", "amplitude")
#: No real backscatter is below this (the Sentinel-1 noise floor is near -50 dB); lower = fill value.
S1_MIN_DB: float = -100.0
#: A dB band with more valid pixels above 0 dB than this fraction is not dB.
S1_MAX_POSITIVE_FRACTION: float = 0.5
#: Level-1C DN are >= 0; Level-2A DN less the 1000 offset go a little below 0. Lower = fill value.
S2_MIN_DN: float = -1000.0
#: S2 whose valid values all lie in [0, this] are reflectance 0..1, not DN.
S2_MAX_REFLECTANCE_LIKE: float = 2.0


class UnitsError(ValueError):
    """Image values in units or ranges a model cannot use (the message names file, band, range, expectation)."""


def _range(v: np.ndarray) -> str:
    return f"{float(v.min()):.4g}..{float(v.max()):.4g}" if v.size else "no valid pixels"


def _fill_value(v: np.ndarray) -> tuple[float, int]:
    """Most frequent value of ``v`` and its count (the likely fill value)."""
    vals, counts = np.unique(v, return_counts=True)
    k = int(np.argmax(counts))
    return float(vals[k]), int(counts[k])


def check_units_option(s1_units: str) -> str:
    """``s1_units`` itself, or ValueError naming the option and the allowed values."""
    if s1_units not in S1_UNITS:
        raise ValueError(f"s1_units (--s1-units) must be one of {S1_UNITS}, got {s1_units!r}")
    return s1_units


def s1_to_model_db(raw: np.ndarray, *, units: str = "auto", nodata: float | None = None, path: str = "<array>",
                   bands: tuple[str, ...] = S1_BANDS) -> np.ndarray:
    """Sentinel-1 file values ``raw (C, H, W)`` in ``units`` -> checked float32 dB ``(C, H, W)``, NaN = nodata.

    ``nodata``: the file's nodata tag (mapped to NaN); non-finite values are nodata; linear
    power -> ``10 log10``, amplitude -> ``20 log10`` (values <= 0 -> NaN). Raises
    :class:`UnitsError` for integer storage with ``units="auto"``, an untagged fill value, values
    that are not dB, or negative values stated as linear/amplitude (see the module docstring).
    """
    check_units_option(units)
    if raw.dtype.kind in "iub" and units == "auto":
        raise UnitsError(f"{path}: Sentinel-1 is stored as {raw.dtype} (observed range {_range(raw)}); expected "
                         "float32 backscatter in dB with NaN = nodata (as Sen1Floods11 S1Hand). Integers are "
                         "usually uncalibrated GRD digital numbers or scaled dB: calibrate and convert to dB floats, "
                         "or state the units with --s1-units db|linear|amplitude (s1_units=)")
    x = raw.astype(np.float32, copy=True)
    bad = ~np.isfinite(x)
    if nodata is not None and not math.isnan(nodata):
        bad |= raw == nodata
    if units in ("linear", "amplitude"):
        for c in range(x.shape[0]):
            v = x[c][~bad[c]]
            neg = int(np.count_nonzero(v < 0))
            if v.size and neg > 0.01 * v.size:
                raise UnitsError(f"{path}: Sentinel-1 band {bands[c]} was stated as {units} but {neg} of {v.size} "
                                 f"valid pixels are negative (observed range {_range(v)}); {units} values are >= 0. "
                                 "These look like dB already: use --s1-units db (s1_units='db')")
        bad |= x <= 0
        x[bad] = 1.0
        x = (np.float32(10.0 if units == "linear" else 20.0) * np.log10(x)).astype(np.float32)
    x[bad] = np.nan
    check_s1_db(x, path=path, units=units, bands=bands)
    return x


def check_s1_db(x: np.ndarray, *, path: str = "<array>", units: str = "auto", bands: tuple[str, ...] = S1_BANDS
                ) -> None:
    """Raise :class:`UnitsError` when ``x (C, H, W)`` (float dB, NaN = nodata) cannot be backscatter in dB.

    ``units``: what the values were converted from (named in the message).
    """
    source = "" if units in ("auto", "db") else f" (converted from {units})"
    for c in range(x.shape[0]):
        band = bands[c] if c < len(bands) else f"#{c + 1}"
        v = x[c][np.isfinite(x[c])]
        if not v.size:
            continue
        low = v[v < S1_MIN_DB]
        val, n = _fill_value(low) if low.size else (0.0, 0)
        if low.size and n < low.size / 2:  # many different impossible values: not a fill, not dB
            raise UnitsError(f"{path}: Sentinel-1 band {band}{source} has {low.size} of {v.size} valid pixels below "
                             f"{S1_MIN_DB:g} dB (observed range {_range(v)}); real backscatter is about -50..+30 dB. "
                             "These are not dB values (scaled, e.g. dB x 100?): convert them to dB floats")
        if low.size:
            raise UnitsError(f"{path}: Sentinel-1 band {band}{source} has {low.size} pixels below {S1_MIN_DB:g} dB "
                             f"({n} of them exactly {val:g}; observed range {_range(v)}); real backscatter is about "
                             "-50..+30 dB. This looks like a nodata fill value without a nodata tag: expected NaN "
                             f"for nodata, or set the file's nodata tag to {val:g}")
        pos = float(np.count_nonzero(v > 0)) / v.size
        if pos > S1_MAX_POSITIVE_FRACTION:
            hint = ("the stated units look wrong" if source else
                    "the values look like linear power or amplitude: state them with --s1-units linear|amplitude "
                    "(s1_units=), or convert (dB = 10 log10(power))")
            raise UnitsError(f"{path}: Sentinel-1 band {band}{source} has {pos:.0%} of its valid pixels above 0 dB "
                             f"(observed range {_range(v)}, median {float(np.median(v)):.4g}); expected backscatter "
                             f"in dB, mostly -30..-5 dB and rarely above 0 (as Sen1Floods11 S1Hand); {hint}")


def check_s2_dn(raw: np.ndarray, valid: np.ndarray, *, path: str = "<array>", bands: tuple[str, ...] = S2_BANDS
                ) -> None:
    """Raise :class:`UnitsError` when Sentinel-2 file values ``raw (C, H, W)`` are not Level-1C DN.

    ``valid (C, H, W)`` bool: pixels that are not nodata (0, the nodata tag, non-finite).
    Untagged fill values (below :data:`S2_MIN_DN`) and reflectance 0..1 are refused.
    """
    v_all = raw[valid]
    if not v_all.size:
        return
    for c in range(raw.shape[0]):
        v = raw[c][valid[c]]
        low = v[v < S2_MIN_DN]
        if low.size:
            val, n = _fill_value(low)
            raise UnitsError(f"{path}: Sentinel-2 band {bands[c]} has {low.size} pixels below {S2_MIN_DN:g} "
                             f"({n} of them exactly {val:g}; observed range {_range(v)}, {raw.dtype}); Level-1C DN "
                             "are >= 0. This looks like a nodata fill value without a nodata tag: expected 0 for "
                             f"nodata (as Sen1Floods11 S2Hand), or set the file's nodata tag to {val:g}")
    if float(v_all.min()) >= 0 and float(v_all.max()) <= S2_MAX_REFLECTANCE_LIKE:
        raise UnitsError(f"{path}: Sentinel-2 values are all within 0..{S2_MAX_REFLECTANCE_LIKE:g} (observed range "
                         f"{_range(v_all)}, {raw.dtype}): this is reflectance 0..1; expected Level-1C DN = "
                         "reflectance x 10000 (as Sen1Floods11 S2Hand, int16, e.g. 500..3000 over land). "
                         "Multiply by 10000 and store as int16 (0 = nodata)")


def check_scene(bands: Sequence[tuple[str, int]], *, units: str = "auto", names: Sequence[str] = S1_BANDS,
                max_side: int = 2048) -> None:
    """Check a Sentinel-1 scene before prediction: each ``(path, band index 1-based)`` of ``bands``
    (named ``names``, in order) is checked as :func:`s1_to_model_db` checks a chip, on a sample of
    the file (:func:`scene_sample`: at most about ``max_side**2`` pixels a band, read at full
    resolution so fill values survive; the bands of one file read together).

    Raises :class:`UnitsError` naming the file and band; reads only, bounded memory. A sample can
    miss a fill value that covers only a few blocks: :func:`check_s1_fill` checks every strip a
    scene prediction reads (:class:`floodnb.predict.sources.GeoTiffSource`).
    """
    import rasterio

    check_units_option(units)
    by_file: dict[str, list[tuple[int, str]]] = {}
    for (path, idx), name in zip(bands, names, strict=True):
        by_file.setdefault(str(path), []).append((idx, name))
    for path, pairs in by_file.items():  # one sampled pass per file: its bands are read together
        with rasterio.open(path) as ds:
            raw = scene_sample(ds, [i for i, _ in pairs], max_pixels=max_side * max_side)
            nodata = ds.nodata
        for k, (_, name) in enumerate(pairs):
            s1_to_model_db(raw[k:k + 1], units=units, nodata=nodata, path=path, bands=(name,))


def scene_sample(ds, indexes: Sequence[int], *, max_pixels: int) -> np.ndarray:
    """Pixels of bands ``indexes`` (1-based) of the open rasterio dataset ``ds`` for a value check:
    ``(len(indexes), 1, n)`` in the file's dtype.

    A raster of at most ``max_pixels`` pixels is read whole. A larger one is read as whole
    internal blocks (a block costs the same to read as any part of it) on an evenly spread grid
    of block rows and columns that always includes the first and last of each (swath edges,
    where fill values lie), about ``max_pixels`` pixels in all: for a 10,000² float32 GeoTIFF in
    512² blocks and the default 2048² budget, 16 of its 400 blocks.
    """
    from rasterio.windows import Window

    h, w = ds.height, ds.width
    if h * w <= max_pixels:
        return ds.read(list(indexes)).reshape(len(indexes), 1, -1)
    bh, bw = ds.block_shapes[indexes[0] - 1]
    nby, nbx = math.ceil(h / bh), math.ceil(w / bw)
    budget = max(4, max_pixels // (bh * bw))  # blocks
    kx = max(min(2, nbx), min(nbx, round(math.sqrt(budget * nbx / nby))))
    ky = max(min(2, nby), min(nby, budget // kx))
    rows = sorted({round(v) for v in np.linspace(0, nby - 1, ky)})
    cols = sorted({round(v) for v in np.linspace(0, nbx - 1, kx)})
    parts = [ds.read(list(indexes), window=Window(c * bw, r * bh, min(bw, w - c * bw), min(bh, h - r * bh)))
             .reshape(len(indexes), -1) for r in rows for c in cols]
    return np.concatenate(parts, axis=1)[:, None, :]


def check_s1_fill(x: np.ndarray, *, path: str, names: Sequence[str], where: str = "") -> None:
    """Raise :class:`UnitsError` when ``x (C, H, W)`` float32 dB (NaN = nodata) holds values below
    :data:`S1_MIN_DB` (an untagged fill value, or values that are not dB; the message as
    :func:`check_s1_db`'s, plus ``where``, e.g. the rows read). Cheap: one comparison a pixel
    when there are none, so it can run on every strip of a scene.
    """
    for c in range(x.shape[0]):
        if (x[c] < S1_MIN_DB).any():  # NaN compares False
            try:
                check_s1_db(x[c:c + 1], path=path, bands=(names[c],))
            except UnitsError as exc:
                raise UnitsError(f"{exc}{where}") from None
