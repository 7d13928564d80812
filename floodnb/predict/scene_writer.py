"""A scene's outputs written strip by strip: blended probability rows -> class (+ probability) COGs.

:class:`SceneWriter` is shared by :func:`floodnb.predict.predict_raster` (one process) and the
per-scene writer task of :mod:`floodnb.scale.dask_predict` (on a dask worker), so both write the
same bytes: each blended strip ``(prob (h, W) float32, valid (h, W) bool)`` is encoded
(:func:`floodnb.predict.export.encode_class` / :func:`~floodnb.predict.export.encode_prob`) into
tiled scratch GeoTIFFs (:class:`floodnb.predict.export.StripTiff`), counted (valid and water
pixels), their overview levels are built as the strips arrive (:class:`floodnb.predict.pyramid.PyramidTiff`:
class by majority, probability by average), and the scratch files are converted into
Cloud-Optimised GeoTIFFs at the end (:func:`floodnb.predict.export.to_cog`, which copies those
overviews). Memory: GDAL's block cache and one row a level; nothing of the scene is held.
"""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from floodnb.predict.export import (
    CLASS_NODATA,
    PROB_FLOAT_NODATA,
    PROB_UINT8_NODATA,
    encode_class,
    encode_prob,
    to_cog,
)
from floodnb.predict.pyramid import PyramidTiff

__all__ = ["SceneWriter"]

CLASS_DESCRIPTION = "water class (1 water, 0 dry, -1 nodata)"


class SceneWriter:
    """Scratch class map (int8) and, when ``prob_scratch`` is given, probability map of one grid,
    each with its overview levels (:class:`~floodnb.predict.pyramid.PyramidTiff`: a scratch file a level
    and a VRT beside each, so best give the scratch files a folder of their own).

    ``threshold``: probability at or above which a valid pixel is water. ``prob_dtype``: "uint8"
    (percent, nodata 255, scale 0.01) or "float32" (nodata -1). Use as a context manager (or call
    :meth:`close`): the scratch files are closed on exit, also after an error; removing them is
    the caller's business. ``n_valid`` / ``n_water``: pixels written so far.
    """

    def __init__(self, class_scratch: Path, prob_scratch: Path | None, *, height: int, width: int, crs, transform,
                 threshold: float, prob_dtype: str) -> None:
        self.threshold, self.prob_dtype = threshold, prob_dtype
        self.n_valid = self.n_water = 0
        self._writers = [PyramidTiff(class_scratch, height=height, width=width, dtype="int8", nodata=CLASS_NODATA,
                                     crs=crs, transform=transform, reducer="mode", description=CLASS_DESCRIPTION)]
        if prob_scratch is not None:
            try:
                self._writers.append(PyramidTiff(
                    prob_scratch, height=height, width=width, dtype=prob_dtype,
                    nodata=PROB_UINT8_NODATA if prob_dtype == "uint8" else PROB_FLOAT_NODATA, crs=crs,
                    transform=transform, reducer="average", scale=0.01 if prob_dtype == "uint8" else None,
                    description="water probability" + (" (percent)" if prob_dtype == "uint8" else "")))
            except BaseException:
                self.close()
                raise

    @property
    def has_prob(self) -> bool:
        return len(self._writers) == 2

    def write(self, row0: int, prob: np.ndarray, valid: np.ndarray) -> None:
        """Rows ``[row0, row0 + h)`` (in order, else ValueError): encode, write and count one blended strip."""
        cls = encode_class(prob, valid, threshold=self.threshold)
        self._writers[0].write(row0, cls)
        if self.has_prob:
            self._writers[1].write(row0, encode_prob(prob, valid, dtype=self.prob_dtype))
        self.n_valid += int(np.count_nonzero(valid))
        self.n_water += int(np.count_nonzero(cls == 1))

    def write_all(self, strips: Iterable[tuple[int, np.ndarray, np.ndarray]]) -> None:
        """:meth:`write` every ``(row0, prob, valid)`` of ``strips``."""
        for row0, prob, valid in strips:
            self.write(row0, prob, valid)

    def to_cogs(self, class_path: Path, prob_path: Path | None) -> tuple[Path, Path | None]:
        """Close the scratch files and convert them to COGs at ``class_path`` / ``prob_path``
        (``prob_path`` is used only when a probability map is written). Returns the written paths.
        """
        self.close()
        if self.has_prob and prob_path is None:
            raise ValueError("prob_path is needed: this writer holds a probability map")
        vrts = [w.vrt() for w in self._writers]  # the overviews built while streaming: the COG driver copies them
        if not self.has_prob or prob_path is None:
            return to_cog(vrts[0], class_path, resampling="MODE"), None
        # the two conversions in two threads: GDAL releases the GIL (10,000² px on 2 CPUs: 1.6 -> 1.35 s
        # when the COG driver still computed the overviews)
        with ThreadPoolExecutor(2, thread_name_prefix="floodnb-cog") as pool:
            prob_job = pool.submit(to_cog, vrts[1], prob_path, resampling="AVERAGE")
            out_class = to_cog(vrts[0], class_path, resampling="MODE")
            return out_class, prob_job.result()

    def close(self) -> None:
        for w in self._writers:
            w.close()

    def __enter__(self) -> SceneWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
