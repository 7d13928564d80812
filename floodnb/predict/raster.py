"""Whole-scene prediction: a Sentinel-1 raster larger than a chip -> class and probability COGs.

:func:`predict_raster` reads the scene one strip of ``tile`` rows at a time (rasterio windowed
reads), predicts the strip's overlapping tiles in batches, blends seams
(:mod:`floodnb.predict.tiles`) and streams finished rows into scratch GeoTIFFs, converted at the
end into Cloud-Optimised GeoTIFFs (:mod:`floodnb.predict.export`). Peak memory is a few strips
(``C x tile x width`` float32 input plus ``tile x width`` accumulators) plus the model's
activations for one batch of tiles — independent of the scene's height.

Sources (:func:`open_source`): one multi-band GeoTIFF (bands matched by their descriptions,
e.g. ``VV``, ``VH``, else by order), several single-band GeoTIFFs on the same grid (one per
band, in the model's band order), or an ``xr.DataArray (band, y, x)`` with a rioxarray CRS.
Values are backscatter in dB (as Sen1Floods11 S1Hand); NaN or the file's nodata value = nodata.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
from collections import deque
from collections.abc import Generator, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from affine import Affine

from floodnb.geotiff import gdal_cache_env
from floodnb.predict.background import BackgroundConsumer, prefetched
from floodnb.predict.export import PROB_DTYPES
from floodnb.predict.model import Predictor, resolve_predictor
from floodnb.predict.scene_writer import SceneWriter
from floodnb.predict.sources import TRANSFORM_TOL as _TRANSFORM_TOL  # noqa: F401  (re-exported)
from floodnb.predict.sources import ArraySource, DbSource, GeoTiffSource, open_source  # noqa: F401
from floodnb.predict.tiles import (
    RowBlender,
    RowResult,
    TileGrid,
    col_span,
    iter_blended,
    predict_prepared_cols,
    predict_prepared_row,
    predict_tile_row,
    prepare_strip,
    resolve_batch,
)


@dataclass(frozen=True)
class RasterPrediction:
    """What :func:`predict_raster` wrote: paths, grid, counts and timing."""

    class_path: Path
    prob_path: Path | None
    height: int
    width: int
    crs: object
    transform: Affine
    n_valid: int
    n_water: int
    n_tiles: int
    n_forward: int
    seconds: float

    @property
    def km2_nominal(self) -> float:
        """Scene extent in km² of nominal 10 m pixels (``height * width * 100 m²``), for throughput."""
        return self.height * self.width * 1e-4


def _default_prob_path(out_path: Path) -> Path:
    return out_path.with_name(f"{out_path.stem}_prob{out_path.suffix}")


def predict_raster(
    model,
    src,
    out_path: str | Path,
    *,
    tile: int = 512,
    overlap: int = 64,
    batch: int | None = None,
    inputs: Sequence[str] | None = None,
    bands: dict | None = None,
    normalizers: dict | None = None,
    meta: Sequence[float] | None = None,
    threshold: float = 0.5,
    prob_path: str | Path | None = None,
    write_prob: bool = True,
    prob_dtype: str = "uint8",
    channels_last: bool | None = None,
    precision: str | None = None,
    overwrite: bool = False,
    progress: bool = True,
    gdal_cache_mb: int = 128,
    s1_units: str = "auto",
    background_io: bool | None = None,
    row_workers: int | None = None,
) -> RasterPrediction:
    """Predict water over a whole raster and write Cloud-Optimised GeoTIFFs.

    ``model``: checkpoint path, ``(model, spec)`` or ``nn.Module`` (then ``normalizers=``; see
    :func:`floodnb.predict.model.resolve_predictor`). ``src``: GeoTIFF path, list of
    single-band GeoTIFF paths, or ``xr.DataArray (band, y, x)``; S1 backscatter in dB, or in
    ``s1_units`` "linear" / "amplitude" (converted); GeoTIFF values are checked first
    (:func:`floodnb.data.units.check_scene`: integers, fill values, values that are not dB).

    Writes ``out_path``: class map int8 (1 water, 0 dry, -1 nodata) and, with ``write_prob``,
    ``prob_path`` (default ``<stem>_prob.tif`` beside it): water probability, ``uint8`` percent
    (nodata 255, scale 0.01) or ``float32`` (nodata -1). Both are COGs written atomically; an
    existing output is only replaced with ``overwrite=True``.

    ``tile``/``overlap`` (pixels) set the tile grid, ``batch`` the tiles per forward pass (default
    None: tiles of at most 512² px in all, i.e. 1 tile of 512² — on a CPU larger forward passes run
    slower per pixel, :data:`floodnb.runtime.CPU_PIXELS_PER_FORWARD`).
    Memory is bounded by the strip height (``tile`` rows), not by the scene size. ``precision``
    (``"float32"`` default, ``"bfloat16"``) and ``channels_last``: as
    :func:`~floodnb.predict.model.resolve_predictor`. ``gdal_cache_mb``: GDAL's block cache (MB)
    while reading and writing. ``background_io``: read + normalise the next strip and blend +
    write the previous one in two threads while the model runs (:mod:`floodnb.predict.background`);
    the output is the same either way. Default None: on only when torch leaves a CPU free
    (``torch.get_num_threads() < floodnb.runtime.machine_cpus()``): when torch's threads take
    every core the I/O threads only compete with them (2 cores, 2 torch threads, 10,000² scene,
    unet_small, batch 1: 25.0 / 25.7 s background vs 21.9 / 22.4 s in line in bfloat16, 60.4 / 54.7 s
    vs 55.0 / 52.4 s in float32, alternated).

    ``row_workers``: threads that read, normalise and predict, each with
    ``torch.get_num_threads() // row_workers`` intra-op threads (set for the call, then restored);
    each tile row is cut into ``row_workers`` chunks of tile columns, one task each, and blending
    and writing stay in the calling thread, in row order. Default None: 2 when torch's threads (at
    least 2) take every CPU of this process and ``background_io`` is not True, else 1. Two forward
    passes on one torch thread each keep both CPUs of a 2-core machine busy through the reading and
    writing between passes, where one pass on two threads leaves them to one CPU (10,000² scene,
    unet_small bfloat16, alternated: 23.1-23.7 s with one worker, 22.0-23.0 s with two on whole
    rows, 19.2-20.4 s with two on half rows and the overviews built while streaming). The maps are
    those of one worker up to float rounding (other thread counts pick other oneDNN kernels).
    Peak memory grows by about one strip per extra worker.
    """
    t0 = time.perf_counter()
    if prob_dtype not in PROB_DTYPES:
        raise ValueError(f"prob_dtype must be one of {PROB_DTYPES}, got {prob_dtype!r}")
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be in [0, 1], got {threshold}")
    if batch is not None:
        resolve_batch(batch, tile, tile)  # ValueError naming the argument, before any output is opened
    predictor = resolve_predictor(model, inputs=inputs, bands=bands, normalizers=normalizers, meta=meta,
                                  channels_last=channels_last, precision=precision)
    row_workers = _resolve_row_workers(row_workers, background_io)
    if background_io is None:
        background_io = row_workers == 1 and _spare_cpu()
    out_path = Path(out_path)
    prob_out = (Path(prob_path) if prob_path is not None else _default_prob_path(out_path)) if write_prob else None
    _check_outputs(src, out_path, prob_out, overwrite=overwrite)
    with gdal_cache_env(gdal_cache_mb):
        source = open_source(src, bands=predictor.band_list, s1_units=s1_units)
        grid = TileGrid.plan(source.height, source.width, tile=tile, overlap=overlap)
        out_path.parent.mkdir(parents=True, exist_ok=True)
        # scratch files and overview levels: a hidden folder of their own beside the output, removed at the end
        work = Path(tempfile.mkdtemp(prefix=f".{out_path.stem}.", suffix=".tmp.partial", dir=out_path.parent))
        forward = [0]  # forward passes, counted by the row generator
        try:
            with SceneWriter(work / "class.tif", work / "prob.tif" if prob_out is not None else None,
                             height=grid.height, width=grid.width, crs=source.crs, transform=source.transform,
                             threshold=threshold, prob_dtype=prob_dtype) as writer:
                rows = (_predicted_rows(predictor, source, grid, batch=batch, progress=progress, forward=forward,
                                        background=background_io) if row_workers == 1 else
                        _worker_rows(predictor, source, grid, batch=batch, progress=progress, forward=forward,
                                     workers=row_workers))
                _blend_and_write(rows, grid, writer, background=background_io)
                writer.to_cogs(out_path, prob_out)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return RasterPrediction(class_path=out_path, prob_path=prob_out, height=grid.height, width=grid.width,
                            crs=source.crs, transform=source.transform, n_valid=writer.n_valid,
                            n_water=writer.n_water, n_tiles=grid.n_tiles, n_forward=forward[0],
                            seconds=time.perf_counter() - t0)


def _spare_cpu() -> bool:
    """Whether torch's intra-op threads leave at least one of this process's CPUs free (for I/O threads)."""
    import torch

    from floodnb.runtime import machine_cpus

    return torch.get_num_threads() < machine_cpus()


def _resolve_row_workers(row_workers: int | None, background_io: bool | None) -> int:
    """``row_workers`` checked (ValueError naming it), or floodnb's choice when None (see :func:`predict_raster`)."""
    import torch

    from floodnb.runtime import machine_cpus

    if row_workers is None:
        threads = torch.get_num_threads()
        return 2 if background_io is not True and threads >= 2 and threads >= machine_cpus() else 1
    if isinstance(row_workers, bool) or not isinstance(row_workers, int) or row_workers < 1:
        raise ValueError(f"row_workers must be an integer >= 1 (tile rows predicted at once) or None (auto), "
                         f"got {row_workers!r}")
    if row_workers > 1 and background_io:
        raise ValueError("background_io=True is for one row worker (reader and writer threads around it); "
                         f"with row_workers={row_workers} the workers read and the calling thread writes")
    return row_workers


def _check_outputs(src, out_path: Path, prob_out: Path | None, *, overwrite: bool) -> None:
    """Refuse outputs that are input rasters (ValueError) or exist without ``overwrite`` (FileExistsError)."""
    src_files = {Path(p).resolve() for p in ([src] if isinstance(src, (str, Path)) else
                                              (src if isinstance(src, (list, tuple)) else []))}
    for p in (out_path, prob_out):
        if p is None:
            continue
        if p.resolve() in src_files:
            raise ValueError(f"output {p} is one of the input rasters; choose another output path")
        if p.exists() and not overwrite:
            raise FileExistsError(f"output {p} exists; pass overwrite=True to replace it")


def _predicted_rows(predictor: Predictor, source, grid: TileGrid, *, batch: int | None, progress: bool,
                    forward: list[int], background: bool) -> Generator[RowResult, None, None]:
    """Tile rows of ``source`` predicted in order (a progress bar when ``progress``); adds each
    row's forward passes to ``forward[0]``. With ``background`` the next strip is read and
    normalised in a reader thread while this one runs through the model.
    """
    own = getattr(source, "fresh_reads", False)  # each read a new array nobody else holds: normalise it in place

    def prepared() -> Generator[tuple[np.ndarray, np.ndarray], None, None]:
        for i in range(grid.n_rows):
            yield prepare_strip(predictor, source.read(grid.row_starts[i], grid.tile_h), grid, i, inplace=own)

    strips: Generator[tuple[np.ndarray, np.ndarray], None, None] = (
        prefetched(prepared(), depth=1, name="floodnb-read") if background else prepared())
    bar = _progress(range(grid.n_rows), enabled=progress, desc=f"predict {source.name}", unit="tile row")
    try:
        for i, (x, valid) in zip(bar, strips, strict=True):
            res = predict_prepared_row(predictor, x, valid, grid, i, batch=batch)
            forward[0] += res.n_forward
            yield res
    finally:
        strips.close()  # stops the reader thread also when the caller stops early or fails


def _worker_rows(predictor: Predictor, source, grid: TileGrid, *, batch: int | None, progress: bool,
                 forward: list[int], workers: int) -> Generator[RowResult, None, None]:
    """Tile rows of ``source`` predicted by ``workers`` threads, yielded in row order; adds each row's
    forward passes to ``forward[0]``.

    Each row is cut into ``workers`` chunks of contiguous tile columns; a chunk is one task (read
    its columns of the strip, normalise, forward passes, horizontal blending:
    :func:`~floodnb.predict.tiles.predict_prepared_cols`), so the last rows keep every worker busy
    too. The chunks of a row are added into its :class:`RowResult` here. At most ``workers + 1``
    rows are in flight. torch's intra-op threads are ``torch.get_num_threads() // workers`` until
    the generator is closed.
    """
    import torch

    own = getattr(source, "fresh_reads", False)  # each read a new array nobody else holds: normalise it in place
    chunks = [range(int(c[0]), int(c[-1]) + 1) for c in np.array_split(np.arange(len(grid.col_starts)), workers)
              if len(c)]

    def task(i: int, cols: range) -> tuple[np.ndarray, np.ndarray, int]:
        c0, c1 = col_span(grid, cols)
        strip = source.read(grid.row_starts[i], grid.tile_h, c0, c1 - c0)
        x, valid = predictor.prepare(strip, inplace=own)
        return (valid, *predict_prepared_cols(predictor, x, valid, grid, cols, batch=batch))

    def row(i: int, parts: list[Future[tuple[np.ndarray, np.ndarray, int]]]) -> RowResult:
        wprob = np.empty((grid.tile_h, grid.width), dtype=np.float32)
        valid = np.empty((grid.tile_h, grid.width), dtype=bool)
        n = end = 0  # chunks are in column order and overlap only the one before: copy, add on the overlap
        for cols, part in zip(chunks, parts, strict=True):
            v, wp, k = part.result()
            c0, c1 = col_span(grid, cols)
            wprob[:, c0:end] += wp[:, :end - c0]
            wprob[:, end:c1] = wp[:, end - c0:]
            valid[:, c0:c1] = v
            n, end = n + k, c1
        return RowResult(index=i, row0=grid.row_starts[i], wprob=wprob, valid=valid, n_forward=n)

    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, threads // workers))
    try:
        with ThreadPoolExecutor(workers, thread_name_prefix="floodnb-row") as pool:
            pending: deque[list[Future]] = deque()
            try:
                for i in _progress(range(grid.n_rows), enabled=progress, desc=f"predict {source.name}",
                                   unit="tile row"):
                    while len(pending) <= workers and i + len(pending) < grid.n_rows:
                        pending.append([pool.submit(task, i + len(pending), cols) for cols in chunks])
                    res = row(i, pending.popleft())
                    forward[0] += res.n_forward
                    yield res
            finally:
                for parts in pending:  # an error or an early stop: no new chunks; running ones finish
                    for f in parts:
                        f.cancel()
    finally:
        torch.set_num_threads(threads)


def _blend_and_write(rows: Generator[RowResult, None, None], grid: TileGrid, writer: SceneWriter, *,
                     background: bool) -> None:
    """Blend ``rows`` vertically (:class:`~floodnb.predict.tiles.RowBlender`) and write the finished
    strips; with ``background`` blending, encoding and writing run in a writer thread. ``rows`` is
    closed on return, also after an error (which stops its reader thread).
    """
    with contextlib.closing(rows):
        _blend_and_write_rows(rows, grid, writer, background=background)


def _blend_and_write_rows(rows: Iterator[RowResult], grid: TileGrid, writer: SceneWriter, *,
                          background: bool) -> None:
    if not background:
        writer.write_all(iter_blended(rows, grid))
        return
    blender = RowBlender(grid)
    def write(res: RowResult) -> None:
        writer.write_all(blender.add(res))

    with BackgroundConsumer(write, depth=1, name="floodnb-write") as bg:
        for res in rows:
            bg.put(res)
    writer.write_all(blender.finish())


def predict_source_row(predictor: Predictor, source: GeoTiffSource | ArraySource, grid: TileGrid, index: int, *,
                       batch: int | None = None) -> RowResult:
    """One independent task: read tile row ``index`` of ``grid`` from ``source`` and predict it.

    All arguments are picklable (a :class:`GeoTiffSource` opens its files per read), so a
    scheduler such as dask.distributed can run rows on workers and feed the results, in row
    order, to a single :class:`~floodnb.predict.tiles.RowBlender` + writer.
    """
    return predict_tile_row(predictor, source.read(grid.row_starts[index], grid.tile_h), grid, index, batch=batch)


def _progress(it, *, enabled: bool, desc: str, unit: str):
    if not enabled:
        return it
    from tqdm.auto import tqdm

    return tqdm(it, desc=desc, unit=unit)


def predict_array(predictor: Predictor, raw: np.ndarray, *, tile: int, overlap: int, batch: int | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Tiled, blended prediction of an in-memory raw input ``(C, H, W)`` (bands in the
    predictor's order, NaN = nodata) -> ``(prob (H, W) float32, 0 at nodata; valid (H, W) bool)``.
    """
    _, h, w = raw.shape
    grid = TileGrid.plan(h, w, tile=tile, overlap=overlap)
    prob = np.zeros((h, w), dtype=np.float32)
    valid = np.zeros((h, w), dtype=bool)
    results = (predict_tile_row(predictor, raw[:, s:s + grid.tile_h], grid, i, batch=batch)
               for i, s in enumerate(grid.row_starts))
    for row0, p, v in iter_blended(results, grid):
        prob[row0:row0 + p.shape[0]] = p
        valid[row0:row0 + p.shape[0]] = v
    return prob, valid
