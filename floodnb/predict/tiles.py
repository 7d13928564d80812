"""Overlapping tiles with blended seams, streamed one row of tiles at a time.

A raster of ``H x W`` pixels is covered by the fewest tiles of ``tile x tile`` pixels that
overlap by at least ``overlap`` pixels, spread evenly from the first to the last pixel, so no
tile reads outside the raster and the extra compute of overlapping is as small as it can be
(a raster smaller than a tile is one tile of its own size).

Seams are blended with a separable weight ``w(y, x) = w_y(y) * w_x(x)``: 1 in the tile
interior, a raised-cosine ramp ``0.5 - 0.5 cos(pi (k + 1/2) / overlap)`` over the ``overlap``
pixels of every side that faces another tile (not on sides lying on the raster border, which no
other tile covers). Two facing ramps sum to exactly 1 (a partition of unity), and the blended
probability is ``sum_t w_t p_t / sum_t w_t``, so a translation-equivariant model gives the same
result tiled as untiled, and a CNN's weaker predictions near tile edges (zero padding) are
down-weighted — the usual overlap-tile strategy of U-Net (Ronneberger et al., MICCAI 2015) with
smooth blending instead of hard cropping.

Work is split into independent **row tasks** (:func:`predict_tile_row`: read one strip of
``tile`` rows, predict its tiles in batches, blend them horizontally) and one **writer**
(:class:`RowBlender`: adds the strips vertically, keeping only ``tile`` rows of accumulators,
and emits finished rows in order). Row tasks share nothing, so they can run as
dask.distributed tasks; the blender consumes their results in row order.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from floodnb.predict.model import Predictor
from floodnb.runtime import cpu_forward_chunk


def resolve_batch(batch: int | None, tile_h: int, tile_w: int) -> int:
    """Tiles per forward pass: ``batch``, or when None as many ``tile_h x tile_w`` tiles as fit in
    :data:`floodnb.runtime.CPU_PIXELS_PER_FORWARD` pixels (one 512² tile, four 256² tiles; at least 1:
    on a CPU bigger passes run slower per pixel). ValueError for ``batch < 1``.
    """
    if batch is None:
        return cpu_forward_chunk(tile_h, tile_w)
    if isinstance(batch, bool) or not isinstance(batch, (int, np.integer)) or batch < 1:
        raise ValueError(f"batch must be an integer >= 1 (tiles per forward pass) or None (auto), got {batch!r}")
    return int(batch)


def _starts(n: int, tile: int, overlap: int) -> tuple[int, ...]:
    """Fewest tiles covering ``n`` pixels with >= ``overlap`` overlap, spread evenly from 0 to
    ``n - tile`` (consecutive starts differ by at most ``tile - overlap``).
    """
    if n <= tile:
        return (0,)
    count = -(-(n - overlap) // (tile - overlap))  # ceil
    return tuple(k * (n - tile) // (count - 1) for k in range(count))


def ramp_weights(length: int, *, overlap: int, ramp_start: bool, ramp_end: bool) -> np.ndarray:
    """1-D blending weights ``(length,)`` float32: 1 inside, raised-cosine ramps of ``overlap``
    pixels at the start/end when ``ramp_start``/``ramp_end`` (all weights > 0).
    """
    w = np.ones(length, dtype=np.float64)
    o = min(overlap, length // 2)
    if o > 0:
        k = np.arange(o, dtype=np.float64)
        ramp = 0.5 - 0.5 * np.cos(np.pi * (k + 0.5) / o)
        if ramp_start:
            w[:o] = np.minimum(w[:o], ramp)
        if ramp_end:
            w[length - o:] = np.minimum(w[length - o:], ramp[::-1])
    return w.astype(np.float32)


@dataclass(frozen=True)
class TileGrid:
    """Tile layout of a ``height x width`` raster: tile starts per axis and blending weights.

    ``tile_h``/``tile_w`` are ``min(tile, height/width)``; ``row_starts``/``col_starts`` the
    tile origins (pixels). Build with :meth:`plan`.
    """

    height: int
    width: int
    tile_h: int
    tile_w: int
    overlap: int
    row_starts: tuple[int, ...]
    col_starts: tuple[int, ...]

    @classmethod
    def plan(cls, height: int, width: int, *, tile: int, overlap: int) -> TileGrid:
        if height < 1 or width < 1:
            raise ValueError(f"raster must have at least 1x1 pixels, got {height}x{width}")
        if tile < 8:
            raise ValueError(f"tile must be >= 8 pixels, got {tile}")
        if not 0 <= overlap <= tile // 2:
            raise ValueError(f"overlap must be in [0, tile/2] pixels, got overlap={overlap} for tile={tile}")
        return cls(height=height, width=width, tile_h=min(tile, height), tile_w=min(tile, width), overlap=overlap,
                   row_starts=_starts(height, tile, overlap), col_starts=_starts(width, tile, overlap))

    @property
    def n_rows(self) -> int:
        return len(self.row_starts)

    @property
    def n_tiles(self) -> int:
        return len(self.row_starts) * len(self.col_starts)

    def row_weights(self, i: int) -> np.ndarray:
        """``w_y`` of tile row ``i``: ``(tile_h,)`` float32."""
        s = self.row_starts[i]
        return ramp_weights(self.tile_h, overlap=self.overlap, ramp_start=s > 0,
                            ramp_end=s + self.tile_h < self.height)

    def col_weights(self, j: int) -> np.ndarray:
        """``w_x`` of tile column ``j``: ``(tile_w,)`` float32."""
        s = self.col_starts[j]
        return ramp_weights(self.tile_w, overlap=self.overlap, ramp_start=s > 0,
                            ramp_end=s + self.tile_w < self.width)

    def col_weight_sum(self) -> np.ndarray:
        """``sum_j w_x`` over tile columns, ``(width,)`` float32 (> 0 everywhere)."""
        total = np.zeros(self.width, dtype=np.float32)
        for j, s in enumerate(self.col_starts):
            total[s:s + self.tile_w] += self.col_weights(j)
        return total


@dataclass(frozen=True)
class RowResult:
    """Output of one row task: tile row ``index`` covering raster rows ``[row0, row0 + h)``.

    ``wprob``: ``(h, width)`` float32, ``sum_j w_x_j * p_j`` (horizontally weighted, not yet
    multiplied by ``w_y``); ``valid``: ``(h, width)`` bool, input has data; ``n_forward``: tiles
    actually run through the model (tiles without any valid pixel are skipped).
    """

    index: int
    row0: int
    wprob: np.ndarray
    valid: np.ndarray
    n_forward: int


def predict_tile_row(predictor: Predictor, strip: np.ndarray, grid: TileGrid, index: int, *,
                     batch: int | None = None, inplace: bool = False) -> RowResult:
    """Predict tile row ``index`` of ``grid`` from its raw input ``strip (C, tile_h, width)``.

    The strip is normalised once (:meth:`Predictor.prepare`; ``inplace``: in the strip's own
    memory, for a strip just read that nobody else holds), cut into the row's tiles, run in
    batches of ``batch`` tiles (None: :func:`resolve_batch`) and blended horizontally. Pure:
    shares no state with other rows.
    """
    return predict_prepared_row(predictor, *prepare_strip(predictor, strip, grid, index, inplace=inplace), grid,
                                index, batch=batch)


def prepare_strip(predictor: Predictor, strip: np.ndarray, grid: TileGrid, index: int, *, inplace: bool = False
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Raw strip ``(C, tile_h, width)`` of tile row ``index`` -> ``(x normalised (C, tile_h, width) float32,
    valid (tile_h, width) bool)`` (:meth:`Predictor.prepare`, ``inplace`` as there); ValueError for a
    strip of the wrong shape.
    """
    if strip.shape[1:] != (grid.tile_h, grid.width):
        raise ValueError(f"strip of tile row {index}: expected (C, {grid.tile_h}, {grid.width}), got {strip.shape}")
    return predictor.prepare(strip, inplace=inplace)


def predict_prepared_row(predictor: Predictor, x: np.ndarray, valid: np.ndarray, grid: TileGrid, index: int, *,
                         batch: int | None = None) -> RowResult:
    """The forward passes and horizontal blending of :func:`predict_tile_row` on a strip already
    through :func:`prepare_strip` (so reading and normalising can run in another thread).
    """
    wprob, n_forward = predict_prepared_cols(predictor, x, valid, grid, range(len(grid.col_starts)), batch=batch)
    return RowResult(index=index, row0=grid.row_starts[index], wprob=wprob, valid=valid, n_forward=n_forward)


def col_span(grid: TileGrid, cols: range) -> tuple[int, int]:
    """Raster columns ``[c0, c1)`` covered by the contiguous tile columns ``cols`` of ``grid``."""
    return grid.col_starts[cols.start], grid.col_starts[cols.stop - 1] + grid.tile_w


def predict_prepared_cols(predictor: Predictor, x: np.ndarray, valid: np.ndarray, grid: TileGrid, cols: range, *,
                          batch: int | None = None) -> tuple[np.ndarray, int]:
    """Forward passes and horizontal blending of the contiguous tile columns ``cols`` of one tile row.

    ``x (C, tile_h, c1 - c0)`` normalised and ``valid (tile_h, c1 - c0)`` cover the raster columns
    ``[c0, c1)`` = :func:`col_span` (``cols``). Returns ``(wprob (tile_h, c1 - c0) float32 =
    sum_j w_x_j p_j over cols, tiles run through the model)``; tiles without a valid pixel are skipped.
    Chunks of one row add up to the row's ``wprob`` (each tile is in one chunk).
    """
    h, w = grid.tile_h, grid.tile_w
    c0, c1 = col_span(grid, cols)
    if x.shape[1:] != (h, c1 - c0) or valid.shape != (h, c1 - c0):
        raise ValueError(f"tile columns {cols.start}..{cols.stop - 1}: expected inputs of (C, {h}, {c1 - c0}), got "
                         f"{x.shape} and valid {valid.shape}")
    batch = resolve_batch(batch, h, w)
    wprob = np.zeros((h, c1 - c0), dtype=np.float32)
    todo = [j for j in cols if valid[:, grid.col_starts[j] - c0:grid.col_starts[j] - c0 + w].any()]
    for k in range(0, len(todo), batch):
        chunk = todo[k:k + batch]
        tiles = np.stack([x[:, :, grid.col_starts[j] - c0:grid.col_starts[j] - c0 + w] for j in chunk])
        probs = predictor.forward(tiles)
        for j, p in zip(chunk, probs, strict=True):
            s = grid.col_starts[j] - c0
            wprob[:, s:s + w] += p * grid.col_weights(j)[None, :]
    return wprob, len(todo)


class RowBlender:
    """Adds :class:`RowResult` strips vertically and yields finished rows, in order.

    Holds only ``tile_h`` rows of accumulators (``tile_h x width`` float32 + bool), never the
    whole raster. :meth:`add` must receive tile rows in order ``0, 1, ...``; it returns the
    rows that no later tile row touches as ``(row0, prob (n, width) float32 in [0, 1] with 0 at
    nodata, valid (n, width) bool)``. :meth:`finish` returns the rest.
    """

    def __init__(self, grid: TileGrid) -> None:
        self.grid = grid
        self._inv_colsum = 1.0 / grid.col_weight_sum()
        self._acc = np.zeros((grid.tile_h, grid.width), dtype=np.float32)
        self._rowsum = np.zeros(grid.tile_h, dtype=np.float32)
        self._valid = np.zeros((grid.tile_h, grid.width), dtype=bool)
        self._base = 0
        self._next = 0

    def _emit(self, n: int) -> tuple[int, np.ndarray, np.ndarray]:
        # every raster row and column lies in at least one tile, whose weights are > 0: the sums are > 0
        prob = self._acc[:n] * (1.0 / self._rowsum[:n])[:, None]
        prob *= self._inv_colsum[None, :]
        valid = self._valid[:n].copy()
        np.clip(prob, 0.0, 1.0, out=prob)
        prob *= valid  # 0 at nodata
        out = (self._base, prob, valid)
        # shift the window down by n rows
        keep = self.grid.tile_h - n
        for arr, empty in ((self._acc, 0.0), (self._rowsum, 0.0), (self._valid, False)):
            if keep > 0:
                arr[:keep] = arr[n:].copy()
            arr[keep:] = empty
        self._base += n
        return out

    def add(self, res: RowResult) -> list[tuple[int, np.ndarray, np.ndarray]]:
        if res.index != self._next:
            raise ValueError(f"RowBlender: expected tile row {self._next}, got {res.index}")
        self._next += 1
        g = self.grid
        off = res.row0 - self._base
        wy = g.row_weights(res.index)
        acc = self._acc[off:off + g.tile_h]
        acc += res.wprob * wy[:, None]
        self._rowsum[off:off + g.tile_h] += wy
        self._valid[off:off + g.tile_h] = res.valid
        out = []
        nxt = g.row_starts[self._next] if self._next < g.n_rows else None
        if nxt is not None and nxt > self._base:
            out.append(self._emit(nxt - self._base))
        return out

    def finish(self) -> list[tuple[int, np.ndarray, np.ndarray]]:
        if self._next != self.grid.n_rows:
            raise ValueError(f"RowBlender: {self.grid.n_rows - self._next} tile rows were never added")
        n = self.grid.height - self._base
        return [self._emit(n)] if n > 0 else []


def iter_blended(results: Iterator[RowResult], grid: TileGrid) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """Blend a stream of row results (in row order) into finished ``(row0, prob, valid)`` strips."""
    blender = RowBlender(grid)
    for res in results:
        yield from blender.add(res)
    yield from blender.finish()
