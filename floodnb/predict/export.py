"""Writing predictions: atomic files, streamed GeoTIFF strips, Cloud-Optimised GeoTIFF.

* files are written atomically with :func:`floodnb.io_utils.atomic_gdal_path` (a temporary name
  in the target's folder, ``os.replace``d onto the target only when the block succeeds).
* :class:`StripTiff` — a tiled GeoTIFF written strip by strip (rows in order), bounded memory.
* :func:`to_cog` — copy a GeoTIFF to a COG with GDAL's ``COG`` driver (tiles, DEFLATE,
  internal overviews, IFDs before image data), atomically.
* :func:`validate_cog` — the layout checks of GDAL's ``validate_cloud_optimized_geotiff.py``:
  tiled, overviews present, main IFD first then overview IFDs in decreasing size, overview data
  stored before full-resolution data.

Encodings (``-1`` = nodata, as everywhere in floodnb):

* class map: ``int8``, 1 water, 0 dry, -1 nodata (``nodata=-1``), overviews by majority (MODE;
  streamed scenes: :mod:`floodnb.predict.pyramid`, ties to water);
* probability ``uint8``: ``round(100 * p)`` in 0..100 with ``nodata=255`` and scale 0.01
  (GDAL readers applying scale/offset get ``p`` back); or ``float32`` ``p`` with ``nodata=-1``;
  overviews by AVERAGE (streamed scenes: :mod:`floodnb.predict.pyramid`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
import rasterio.shutil

from floodnb.io_utils import atomic_gdal_path

CLASS_NODATA = -1
PROB_UINT8_NODATA = 255
PROB_FLOAT_NODATA = -1.0
PROB_DTYPES = ("uint8", "float32")


def encode_prob(prob: np.ndarray, valid: np.ndarray, *, dtype: str) -> np.ndarray:
    """Probability ``(h, w)`` in [0, 1] -> stored values (see module docstring)."""
    if dtype == "uint8":
        pct = prob * np.float32(100.0)
        np.rint(pct, out=pct)
        out = pct.astype(np.uint8)
        out |= (~valid).view(np.uint8) * np.uint8(PROB_UINT8_NODATA)  # 255: every bit set (a masked copy is 2x slower)
        return out
    if dtype == "float32":
        out = prob.astype(np.float32, copy=True)
        out[~valid] = PROB_FLOAT_NODATA
        return out
    raise ValueError(f"prob_dtype must be one of {PROB_DTYPES}, got {dtype!r}")


def encode_class(prob: np.ndarray, valid: np.ndarray, *, threshold: float) -> np.ndarray:
    """Class map ``(h, w)`` int8: 1 where ``prob > threshold``, 0 elsewhere, -1 where not valid."""
    out = (prob > threshold).view(np.int8)  # a new bool array: viewed as 0 / 1 int8
    nodata = (~valid).view(np.int8)
    np.negative(nodata, out=nodata)  # -1 (every bit set) at nodata, 0 elsewhere: OR-ed in (a masked copy is 4x slower)
    out |= nodata
    return out


class StripTiff:
    """A tiled, uncompressed scratch GeoTIFF written in row strips (call :meth:`write` in order).

    Used as the intermediate that :func:`to_cog` converts; memory stays at GDAL's block cache.
    """

    def __init__(self, path: Path, *, height: int, width: int, dtype: str, nodata: float | int, crs, transform,
                 scale: float | None = None, description: str = "") -> None:
        block = 512 if min(height, width) >= 512 else 256
        tiled = min(height, width) >= 16
        profile = dict(driver="GTiff", height=height, width=width, count=1, dtype=dtype, nodata=nodata, crs=crs,
                       transform=transform, BIGTIFF="IF_SAFER")
        if tiled:
            profile.update(tiled=True, blockxsize=block, blockysize=block)
        self.path, self.height, self.width = path, height, width
        self._ds = rasterio.open(path, "w", **profile)
        if scale is not None:
            self._ds.scales = (scale,)
        if description:
            self._ds.set_band_description(1, description)
        self._row = 0

    @property
    def rows_written(self) -> int:
        """Rows written so far (the next :meth:`write` starts there)."""
        return self._row

    def write(self, row0: int, data: np.ndarray) -> None:
        if row0 != self._row:
            raise ValueError(f"{self.path}: strips must be written in order; expected row {self._row}, got {row0}")
        self._ds.write(data, 1, window=rasterio.windows.Window(0, row0, data.shape[1], data.shape[0]))
        self._row += data.shape[0]

    def close(self) -> None:
        if not self._ds.closed:
            self._ds.close()


def cog_blocksize(height: int, width: int) -> int:
    """COG block side in px: 512, or 256 for rasters under 2048 px (so chips get overviews)."""
    return 512 if max(width, height) >= 2048 else 256


def to_cog(src: str | Path, dst: str | Path, *, resampling: str, blocksize: int | None = None) -> Path:
    """Copy GeoTIFF (or VRT) ``src`` to a Cloud-Optimised GeoTIFF ``dst`` (GDAL ``COG`` driver,
    DEFLATE, internal overviews down to one block), written atomically. The overviews are the
    source's own when it has them (a :class:`floodnb.predict.pyramid.PyramidTiff` VRT), else
    resampled by ``resampling``. Blocks are compressed on all CPUs (``NUM_THREADS=ALL_CPUS``: each
    block on its own, so the same bytes). ``blocksize`` defaults to :func:`cog_blocksize`.
    """
    dst = Path(dst)
    if blocksize is None:
        with rasterio.open(src) as ds:
            blocksize = cog_blocksize(ds.height, ds.width)
    with atomic_gdal_path(dst) as tmp:
        rasterio.shutil.copy(str(src), str(tmp), driver="COG", COMPRESS="DEFLATE", BLOCKSIZE=str(blocksize),
                             OVERVIEW_RESAMPLING=resampling, OVERVIEWS="AUTO", BIGTIFF="IF_SAFER",
                             NUM_THREADS="ALL_CPUS")
    return dst


def validate_cog(path: str | Path) -> list[str]:
    """Problems that keep ``path`` from being a Cloud-Optimised GeoTIFF (empty list: valid).

    Checks (after GDAL's ``validate_cloud_optimized_geotiff.py``): GeoTIFF, tiled, has internal
    overviews when larger than one block, main IFD offset < first overview IFD offset < ...,
    overviews in decreasing size, and the smallest overview's first block stored before the
    full-resolution first block.
    """
    path = Path(path)
    problems: list[str] = []
    with rasterio.open(path) as ds:
        if ds.driver != "GTiff":
            return [f"{path}: driver {ds.driver}, not a GeoTIFF"]
        structure = ds.tags(ns="IMAGE_STRUCTURE")
        if "LAYOUT" not in structure or structure["LAYOUT"] != "COG":
            problems.append(f"{path}: no COG layout marker (IMAGE_STRUCTURE LAYOUT=COG ghost header)")
        bw, bh = ds.block_shapes[0]
        tiled = bool(ds.profile["tiled"]) if "tiled" in ds.profile else False
        if not tiled and max(ds.width, ds.height) > 512:
            problems.append(f"{path}: not tiled (block {bw}x{bh})")
        ovr = ds.overviews(1)
        if max(ds.width, ds.height) > (max(bw, bh) if tiled else 512) and not ovr:
            problems.append(f"{path}: no internal overviews")
        try:
            main_ifd = int(ds.get_tag_item("IFD_OFFSET", "TIFF", bidx=1))
            ifds = [int(ds.get_tag_item("IFD_OFFSET", "TIFF", bidx=1, ovr=i)) for i in range(len(ovr))]
            main_blk = int(ds.get_tag_item("BLOCK_OFFSET_0_0", "TIFF", bidx=1))
            ovr_blks = [int(ds.get_tag_item("BLOCK_OFFSET_0_0", "TIFF", bidx=1, ovr=i)) for i in range(len(ovr))]
        except (TypeError, ValueError) as exc:
            return problems + [f"{path}: cannot read TIFF IFD/block offsets ({exc})"]
        if ifds and main_ifd > ifds[0]:
            problems.append(f"{path}: main IFD at {main_ifd} after the first overview IFD at {ifds[0]}")
        if ifds != sorted(ifds):
            problems.append(f"{path}: overview IFDs not in increasing file order: {ifds}")
        if ovr != sorted(ovr):
            problems.append(f"{path}: overview factors not increasing: {ovr}")
        if ovr_blks and ovr_blks[-1] > main_blk:
            problems.append(f"{path}: smallest overview data at {ovr_blks[-1]} after full-resolution data at "
                            f"{main_blk}")
        if ifds and max([main_ifd] + ifds) > min([main_blk] + ovr_blks):
            problems.append(f"{path}: image data stored before the last IFD (IFDs not all at the start)")
    return problems
