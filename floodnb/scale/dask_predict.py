r"""Many-scene water mapping on a dask.distributed cluster, resumable.

:func:`predict_scenes` maps a batch of Sentinel-1 scenes (GeoTIFF paths in dB, lists of
single-band paths, or STAC items with ``vv``/``vh`` assets) to one class COG, one probability COG
and one flood-polygon layer per scene, with the prediction engine of :mod:`floodnb.predict`
(overlapping tiles blended with raised-cosine ramps, the U-Net overlap-tile strategy of
Ronneberger et al., MICCAI 2015), so every output equals :func:`floodnb.predict.predict_raster`
on the same scene:

* one **writer task per scene** (:func:`_write_scene`) runs on a worker. It secedes from the
  worker's thread pool (``worker_client``), submits the scene's **tile-row tasks**
  (:func:`floodnb.predict.tiles.predict_tile_row`: read a strip of ``tile`` rows, predict its
  overlapping tiles, blend them horizontally) at most ``rows_ahead`` at a time, consumes them in
  order (:class:`floodnb.predict.tiles.RowBlender` blends them vertically), releases each row as
  soon as it is written, and streams the rows to scratch GeoTIFFs. Cluster memory per scene is
  therefore ``rows_ahead`` strips (``tile x width`` float32 + bool), never a whole scene;
* the client keeps at most ``scenes_in_flight`` writers running (default: the cluster's thread
  count + 1) and submits the next scene when one finishes, so a batch of thousands of scenes
  needs no more memory than a batch of a few;
* all outputs of an attempt are built in a hidden per-attempt folder
  ``.<scene>_water.<tag>.partial/`` in ``out_dir`` (scratch strips -> COGs -> polygons), then
  ``os.replace``\ d onto their final names (an old marker is removed just before), then a
  **marker** ``<scene>_water.done.json`` is written atomically; a redone scene whose new attempt
  fails keeps its old outputs and marker. A re-run skips scenes whose marker and outputs exist
  (same checkpoint and settings) and redoes the others, so an interrupted batch resumes where it stopped. Partial
  folders of a dead attempt are removed when the scene is retried.

A killed worker loses only its tasks: the scheduler re-runs them elsewhere (dask's
``distributed.scheduler.allowed-failures``), a writer that died is re-run from its first row,
and the batch completes. The model (a :class:`floodnb.predict.Predictor`, weights included) is
a task result computed from the pickled predictor, so it is re-created if every worker holding
it dies. Scenes, ``out_dir`` and the checkpoint must be reachable by the workers (shared file
system or URLs).

Cluster (:func:`open_client`): ``scheduler=None`` starts a ``LocalCluster`` on 127.0.0.1
(``n_workers`` processes of ``threads_per_worker`` threads); ``scheduler="tcp://host:8786"``
connects to a running scheduler (:class:`SchedulerUnreachableError` naming the address after
``connect_timeout`` seconds); a ``distributed.Client`` is used as is.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import pickle
import shutil
import time
import warnings
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from floodnb.io_utils import atomic_write_json
from floodnb.predict.sources import ArraySource, DbSource, GeoTiffSource  # DbSource also re-exported
from floodnb.scale.scenes import GDAL_READ_OPTIONS, open_scene, scene_name  # noqa: F401

MARKER_SUFFIX = "_water.done.json"
RESULT_COLUMNS: tuple[str, ...] = ("scene", "source", "status", "class_path", "prob_path", "polygons_path",
                                   "height", "width", "n_valid", "n_water", "n_polygons", "water_km2", "seconds",
                                   "error")
STATUSES: tuple[str, ...] = ("done", "skipped", "failed")


class SchedulerUnreachableError(ConnectionError):
    """The dask scheduler at the given address did not answer within the timeout."""


@dataclass(frozen=True)
class ScenePlan:
    """One scene of the batch: its name, its windowed source and its output paths."""

    scene: str
    source_text: str
    source: GeoTiffSource | ArraySource | DbSource
    class_path: Path
    prob_path: Path | None
    polygons_base: Path | None
    marker: Path

    @property
    def stem(self) -> str:
        return self.class_path.stem

    def outputs(self) -> list[Path]:
        """Final output paths (class COG, probability COG, GeoPackage, GeoJSON), marker excluded."""
        out = [self.class_path] + ([self.prob_path] if self.prob_path is not None else [])
        if self.polygons_base is not None:
            out += [self.polygons_base.with_name(self.polygons_base.name + s) for s in (".gpkg", ".geojson")]
        return out


def _checkpoint_id(checkpoint, predictor) -> str:
    """sha256 of the checkpoint file(s), else the predictor's model name and source."""
    if isinstance(checkpoint, (str, Path)):
        p = Path(checkpoint)
        files = sorted(p.glob("*.safetensors")) if p.is_dir() else [p]
        h = hashlib.sha256()
        for f in files:
            with open(f, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    h.update(block)
        return f"sha256:{h.hexdigest()}"
    return f"{predictor.name} ({predictor.source})"


def _is_finished(plan: ScenePlan, settings: dict) -> bool:
    """True when the marker exists, matches ``settings`` and every output it lists exists.

    Raises ValueError naming the marker when it records other settings (another checkpoint,
    threshold, tile size ...): resuming would mix two models' outputs in one folder.
    """
    if not plan.marker.is_file():
        return False
    try:
        done = json.loads(plan.marker.read_text(encoding="utf-8"))
        then, outputs = done["settings"], done["outputs"]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ValueError(f"scene marker {plan.marker} is not a floodnb marker ({exc}); delete it to redo "
                         f"scene {plan.scene!r}") from exc
    if then != settings:
        keys = [*settings, *(k for k in then if k not in settings)]  # e.g. a precision only one of them records
        diff = {k: (then.get(k), settings.get(k)) for k in keys if then.get(k) != settings.get(k)}
        raise ValueError(f"{plan.marker}: scene {plan.scene!r} was finished with other settings "
                         f"{{field: (then, now)}} {diff}; use another output folder or overwrite")
    return all(Path(p).is_file() for p in outputs)


def _clean_partial(plan: ScenePlan) -> None:
    """Remove hidden leftovers of earlier attempts at ``plan`` (partial folders, marker temp files)."""
    folder = plan.class_path.parent
    for d in folder.glob(f".{plan.stem}.*.partial"):
        shutil.rmtree(d, ignore_errors=True)
    for f in folder.glob(f".{plan.marker.stem}.*.tmp.json"):
        with contextlib.suppress(FileNotFoundError):
            f.unlink()


def _import_on_worker(worker=None) -> None:
    """Import the modules tasks unpickle, once, before any task runs on ``worker``.

    Without it a fresh worker process may import :mod:`floodnb.predict` from two threads at
    once (the event loop deserialising a scene, an executor thread loading the model), which
    Python's import-deadlock avoidance reports as an ImportError of a partially initialised module.
    """
    import floodnb.predict  # noqa: F401
    import floodnb.predict.tiles  # noqa: F401
    import floodnb.scale.collections  # noqa: F401


def _import_plugin():
    """A ``WorkerPlugin`` running :func:`_import_on_worker` on every worker, restarted ones included."""
    from distributed.diagnostics.plugin import WorkerPlugin

    class ImportFloodnb(WorkerPlugin):
        def setup(self, worker) -> None:
            _import_on_worker(worker)

    return ImportFloodnb()


def _load_predictor(blob: bytes):
    """Task: the (cloud)pickled :class:`floodnb.predict.Predictor` -> the object (kept on the workers)."""
    return pickle.loads(blob)


def _row_task(predictor, source, grid, index: int, batch: int | None, torch_threads: int):
    """Task: read tile row ``index`` of ``source`` (``(C, tile_h, width)``) and predict it
    (a :class:`floodnb.predict.tiles.RowResult`).
    """
    import torch

    from floodnb.geotiff import gdal_cache_env
    from floodnb.predict.tiles import predict_tile_row

    if torch_threads > 0 and torch.get_num_threads() != torch_threads:
        torch.set_num_threads(torch_threads)
    with gdal_cache_env(64, **GDAL_READ_OPTIONS):
        strip = source.read(grid.row_starts[index], grid.tile_h)
    return predict_tile_row(predictor, strip, grid, index, batch=batch, inplace=getattr(source, "fresh_reads", False))


def _write_scene(plan: ScenePlan, grid, model_key: str, *, batch: int | None, torch_threads: int, rows_ahead: int,
                 threshold: float, prob_dtype: str, polygons: bool, min_area_m2: float, settings: dict,
                 gdal_cache_mb: int) -> dict:
    """Task: predict one scene's tile rows on the cluster, write its COGs and polygons, then its marker.

    GDAL's block cache is held to ``gdal_cache_mb`` MB while writing (its default, 5 % of RAM,
    would otherwise fill with scratch blocks). Returns the scene's result row (:data:`RESULT_COLUMNS`).
    """
    from floodnb.geotiff import gdal_cache_env

    with gdal_cache_env(gdal_cache_mb):
        return _write_scene_body(plan, grid, model_key, batch=batch, torch_threads=torch_threads,
                                 rows_ahead=rows_ahead, threshold=threshold, prob_dtype=prob_dtype, polygons=polygons,
                                 min_area_m2=min_area_m2, settings=settings)


def _write_scene_body(plan: ScenePlan, grid, model_key: str, *, batch: int | None, torch_threads: int, rows_ahead: int,
                      threshold: float, prob_dtype: str, polygons: bool, min_area_m2: float, settings: dict) -> dict:
    """Body of :func:`_write_scene`: rows -> scratch strips -> COGs (+ polygons) staged in a hidden
    per-attempt folder, moved onto the final names, then the marker. Returns the result row.
    """
    from distributed import worker_client

    from floodnb.predict.scene_writer import SceneWriter
    from floodnb.predict.tiles import RowBlender

    t0 = time.perf_counter()
    _clean_partial(plan)  # leftovers of an earlier attempt whose worker died
    tag = f"{os.getpid()}{os.urandom(3).hex()}"
    work = plan.class_path.with_name(f".{plan.stem}.{tag}.partial")
    work.mkdir()
    try:
        with SceneWriter(work / "class.scratch.tif", work / "prob.scratch.tif" if plan.prob_path is not None else None,
                         height=grid.height, width=grid.width, crs=plan.source.crs, transform=plan.source.transform,
                         threshold=threshold, prob_dtype=prob_dtype) as writer:
            blender = RowBlender(grid)
            with worker_client() as client:  # secedes: this thread does not hold a worker slot while waiting
                for res in _row_results(client, plan, grid, model_key, tag=tag, batch=batch,
                                        torch_threads=torch_threads, rows_ahead=rows_ahead):
                    writer.write_all(blender.add(res))
            writer.write_all(blender.finish())
            cls, prob = writer.to_cogs(work / plan.class_path.name,
                                       work / plan.prob_path.name if plan.prob_path is not None else None)
        staged: dict[Path, Path] = {plan.class_path: cls}
        if plan.prob_path is not None and prob is not None:
            staged[plan.prob_path] = prob
        n_poly, water_km2 = _stage_polygons(plan, staged, work, min_area_m2=min_area_m2) if polygons else (0, 0.0)
        plan.marker.unlink(missing_ok=True)  # the old marker (if any) no longer describes the final files
        for final, tmp in staged.items():  # every output is complete: move them onto their final names
            os.replace(tmp, final)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    row = {"scene": plan.scene, "source": plan.source_text, "status": "done", "class_path": str(plan.class_path),
           "prob_path": None if plan.prob_path is None else str(plan.prob_path),
           "polygons_path": None if plan.polygons_base is None else str(plan.outputs()[-2]),
           "height": grid.height, "width": grid.width, "n_valid": writer.n_valid, "n_water": writer.n_water,
           "n_polygons": n_poly, "water_km2": water_km2, "seconds": time.perf_counter() - t0, "error": None}
    atomic_write_json(plan.marker, {"scene": plan.scene, "source": plan.source_text, "settings": settings,
                                    "outputs": [str(p) for p in plan.outputs()], "result": row,
                                    "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
    return row


def _row_results(client, plan: ScenePlan, grid, model_key: str, *, tag: str, batch: int | None, torch_threads: int,
                 rows_ahead: int):
    """The scene's :class:`floodnb.predict.tiles.RowResult` s in row order, computed by
    :func:`_row_task` s of which at most ``rows_ahead`` are submitted ahead; each row's task is
    released as soon as it is yielded, the model future at the end.
    """
    from distributed import Future

    model: Future = Future(model_key, client=client)
    pending: deque = deque()
    submitted = 0

    def submit_next() -> None:
        nonlocal submitted
        pending.append(client.submit(_row_task, model, plan.source, grid, submitted, batch, torch_threads,
                                     key=f"row-{plan.scene}-{submitted}-{tag}", pure=False))
        submitted += 1

    while submitted < min(rows_ahead, grid.n_rows):
        submit_next()
    for _ in range(grid.n_rows):
        fut = pending.popleft()
        res = fut.result()
        fut.release()
        if submitted < grid.n_rows:
            submit_next()
        yield res
    model.release()


def _stage_polygons(plan: ScenePlan, staged: dict, work: Path, *, min_area_m2: float) -> tuple[int, float]:
    """Flood polygons of the staged class COG written into ``work`` and added to ``staged``
    (final path -> staged path). Returns ``(number of polygons, water area in km²)``.
    """
    from floodnb.predict.polygons import extent_polygons, write_polygons

    if plan.polygons_base is None:
        raise ValueError(f"scene {plan.scene}: polygons requested without a polygon output path")
    gdf = extent_polygons(staged[plan.class_path], min_area_m2=min_area_m2)
    gpkg, geojson = write_polygons(gdf, work / plan.polygons_base.name)
    final = plan.outputs()[-2:]
    staged[final[0]], staged[final[1]] = gpkg, geojson
    return len(gdf), float(gdf["area_m2"].sum()) / 1e6


@contextlib.contextmanager
def open_client(scheduler=None, *, n_workers: int = 2, threads_per_worker: int = 1, processes: bool = True,
                connect_timeout: float = 10.0, memory_limit: str | int = "auto"):
    """A ``distributed.Client``: to ``scheduler`` (address or Client) or to a new ``LocalCluster``.

    The LocalCluster (scheduler, workers, dashboard) listens on 127.0.0.1 only, on free TCP
    ports (also with ``processes=False``, so other processes can connect to it), and is closed
    on exit. Raises :class:`SchedulerUnreachableError` naming the address when no
    scheduler answers within ``connect_timeout`` seconds, ValueError for a malformed address.
    """
    from distributed import Client, LocalCluster

    if isinstance(scheduler, Client):
        yield scheduler
        return
    if scheduler is not None:
        address = str(scheduler)
        try:
            client = Client(address, timeout=connect_timeout, set_as_default=False)
        except (OSError, TimeoutError) as exc:
            raise SchedulerUnreachableError(
                f"dask scheduler {address!r} is unreachable (no answer within {connect_timeout:g} s): {exc}. "
                "Start one with 'dask scheduler' and 'dask worker <address>', or omit the scheduler to use a "
                "LocalCluster") from exc
        except ValueError as exc:
            raise ValueError(f"scheduler {address!r} is not a dask scheduler address (expected e.g. "
                             f"tcp://host:8786): {exc}") from exc
        try:
            yield client
        finally:
            client.close()
        return
    if n_workers < 1 or threads_per_worker < 1:
        raise ValueError(f"n_workers and threads_per_worker must be >= 1, got {n_workers}, {threads_per_worker}")
    cluster = LocalCluster(n_workers=n_workers, threads_per_worker=threads_per_worker, processes=processes,
                           host="127.0.0.1", protocol="tcp://", dashboard_address="127.0.0.1:0",
                           memory_limit=memory_limit)
    try:
        client = Client(cluster, set_as_default=False)
        try:
            yield client
        finally:
            client.close()
    finally:
        cluster.close()


def predict_scenes(
    checkpoint,
    scenes: Sequence,
    out_dir: str | Path,
    *,
    scheduler=None,
    n_workers: int = 2,
    threads_per_worker: int = 1,
    processes: bool = True,
    connect_timeout: float = 10.0,
    tile: int = 512,
    overlap: int = 64,
    batch: int | None = None,
    threshold: float = 0.5,
    write_prob: bool = True,
    prob_dtype: str = "uint8",
    polygons: bool = True,
    min_area_m2: float = 0.0,
    s1_units: str = "auto",
    overwrite: bool = False,
    torch_threads: int = 1,
    precision: str | None = None,
    gdal_cache_mb: int = 128,
    scenes_in_flight: int | None = None,
    rows_ahead: int | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Predict water on every scene of ``scenes`` on a dask.distributed cluster (see module doc).

    ``checkpoint``: checkpoint path, ``(model, spec)`` or a :class:`floodnb.predict.Predictor`.
    ``scenes``: GeoTIFF paths (S1 VV/VH in dB, any size), lists of single-band paths, or STAC
    items with ``vv``/``vh`` assets (``s1_units``: their values, "db", "linear" or "amplitude";
    "auto" reads the collection id, e.g. ``sentinel-1-rtc`` -> linear power). Outputs in
    ``out_dir`` per scene ``<scene>`` (file stem or item id): ``<scene>_water.tif`` (int8 class
    COG, 1 water / 0 dry / -1 nodata), ``<scene>_water_prob.tif`` (probability COG, encoded as
    in :func:`floodnb.predict.predict_raster`), ``<scene>_water.gpkg``/``.geojson`` (polygons with
    geodesic area), ``<scene>_water.done.json`` (marker). ``tile``/``overlap`` (pixels)/``batch``
    (tiles per forward pass): as :func:`floodnb.predict.predict_raster`; each task is one tile
    row of one scene. ``torch_threads``: torch threads per task (1 = one core per worker thread).
    ``precision``: ``"float32"`` (default) / ``"bfloat16"`` forward pass, in the markers when not float32.
    ``gdal_cache_mb``: GDAL block cache while writing a scene (MB, as ``predict_raster``).
    ``scenes_in_flight`` / ``rows_ahead``: bounds on concurrent scenes and on tile rows queued per
    scene (memory); default: cluster threads + 1, and enough rows to keep every thread busy.
    ``overwrite``: redo finished scenes too (their outputs are replaced only when the new ones are
    complete).

    Returns one row per scene in input order (:data:`RESULT_COLUMNS`; ``status`` done / skipped /
    failed, ``error`` naming the scene and the cause); ``table.attrs["dashboard"]`` is the
    dashboard link (None when no cluster was needed). Scenes that cannot be opened, lack a band
    the model needs or whose bands the model does not take fail before any work is sent; failed
    scenes never leave outputs under final names.
    """
    from floodnb.predict.model import resolve_predictor

    _check_arguments(scenes, tile=tile, overlap=overlap, batch=batch, threshold=threshold, prob_dtype=prob_dtype,
                     min_area_m2=min_area_m2, scenes_in_flight=scenes_in_flight, rows_ahead=rows_ahead)
    predictor = resolve_predictor(checkpoint, precision=precision)
    settings = _settings(checkpoint, predictor, tile=tile, overlap=overlap, threshold=threshold, write_prob=write_prob,
                         prob_dtype=prob_dtype, polygons=polygons, min_area_m2=min_area_m2, s1_units=s1_units)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    order, results, todo = _plan_scenes(scenes, out, predictor, settings, tile=tile, overlap=overlap,
                                        write_prob=write_prob, polygons=polygons, s1_units=s1_units,
                                        overwrite=overwrite)
    link = None
    if todo:
        with open_client(scheduler, n_workers=n_workers, threads_per_worker=threads_per_worker, processes=processes,
                         connect_timeout=connect_timeout) as client:
            link = client.dashboard_link
            if progress:
                print(f"dask: {len(todo)} scene(s) to predict, {len(results)} skipped or failed before start; "
                      f"dashboard {link}", flush=True)
            results.update(_run_batch(client, predictor, todo, batch=batch, threshold=threshold,
                                      prob_dtype=prob_dtype, polygons=polygons, min_area_m2=min_area_m2,
                                      settings=settings, torch_threads=torch_threads, gdal_cache_mb=gdal_cache_mb,
                                      scenes_in_flight=scenes_in_flight, rows_ahead=rows_ahead, progress=progress))
    table = pd.DataFrame([results[n] for n in order], columns=list(RESULT_COLUMNS))
    table.attrs["dashboard"] = link
    return table


def _settings(checkpoint, predictor, **options) -> dict:
    """What a scene's outputs depend on (recorded in its marker): checkpoint id, ``options`` and the
    precision when not float32 (so float32 markers of earlier releases stay valid).
    """
    settings = {"checkpoint": _checkpoint_id(checkpoint, predictor), **options}
    return {**settings, "precision": predictor.precision} if predictor.precision != "float32" else settings


def _check_arguments(scenes, *, tile: int, overlap: int, batch: int | None, threshold: float, prob_dtype: str,
                     min_area_m2: float, scenes_in_flight: int | None, rows_ahead: int | None) -> None:
    """ValueError naming the first bad argument of :func:`predict_scenes`, before any work."""
    from floodnb.predict.export import PROB_DTYPES
    from floodnb.predict.tiles import TileGrid, resolve_batch

    if prob_dtype not in PROB_DTYPES:
        raise ValueError(f"prob_dtype must be one of {PROB_DTYPES}, got {prob_dtype!r}")
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be in [0, 1], got {threshold}")
    if batch is not None:
        resolve_batch(batch, tile, tile)  # ValueError naming the argument
    if min_area_m2 < 0:
        raise ValueError(f"min_area_m2 must be >= 0, got {min_area_m2}")
    for name, v in (("scenes_in_flight", scenes_in_flight), ("rows_ahead", rows_ahead)):
        if v is not None and v < 1:
            raise ValueError(f"{name} must be >= 1, got {v}")
    if not scenes:
        raise ValueError("scenes: no scene given")
    TileGrid.plan(tile, tile, tile=tile, overlap=overlap)  # validates tile/overlap before any work


def _plan_scenes(scenes, out: Path, predictor, settings: dict, *, tile: int, overlap: int, write_prob: bool,
                 polygons: bool, s1_units: str, overwrite: bool) -> tuple[list[str], dict[str, dict], list]:
    """Open every scene: ``(names in input order, result rows of scenes failed or skipped already,
    [(ScenePlan, TileGrid) to predict])``. Raises ValueError when two scenes share a name.
    """
    from floodnb.predict.tiles import TileGrid

    results: dict[str, dict] = {}
    todo: list[tuple[ScenePlan, object]] = []
    order: list[str] = []
    for scene in scenes:
        try:
            name, text, source = open_scene(scene, bands=predictor.band_list, s1_units=s1_units)
        except (ValueError, OSError) as exc:
            name = scene_name(scene)
            if name in order:
                raise ValueError(f"two scenes are both named {name!r} (outputs would collide in {out}); "
                                 "rename one") from None
            order.append(name)
            results[name] = _failed(name, str(getattr(scene, "id", scene)), f"{type(exc).__name__}: {exc}")
            continue
        if name in order:
            raise ValueError(f"two scenes are both named {name!r} (outputs would collide in {out}); rename one")
        order.append(name)
        plan = ScenePlan(scene=name, source_text=text, source=source, class_path=out / f"{name}_water.tif",
                         prob_path=(out / f"{name}_water_prob.tif") if write_prob else None,
                         polygons_base=(out / f"{name}_water") if polygons else None,
                         marker=out / f"{name}{MARKER_SUFFIX}")
        if not overwrite and _is_finished(plan, settings):
            done = json.loads(plan.marker.read_text(encoding="utf-8"))["result"]
            results[name] = {**done, "status": "skipped", "seconds": 0.0}
            continue
        todo.append((plan, TileGrid.plan(source.height, source.width, tile=tile, overlap=overlap)))
    return order, results, todo


def _failed(name: str, source: str, error: str) -> dict:
    row: dict[str, Any] = {c: None for c in RESULT_COLUMNS}
    row.update(scene=name, source=source, status="failed", error=error)
    return row


def _run_batch(client, predictor, todo, *, batch, threshold, prob_dtype, polygons, min_area_m2, settings,
               torch_threads, gdal_cache_mb, scenes_in_flight, rows_ahead, progress) -> dict[str, dict]:
    """Submit the writers of ``todo`` (at most ``scenes_in_flight`` at a time); result row per scene."""
    from distributed import as_completed
    from tqdm.auto import tqdm

    threads = max(1, sum(client.nthreads().values()))
    in_flight = scenes_in_flight or threads + 1
    ahead = rows_ahead or max(2, math.ceil(2 * threads / min(len(todo), in_flight)))
    token = os.urandom(4).hex()
    client.register_plugin(_import_plugin(), name="floodnb-imports")
    with warnings.catch_warnings():  # the pickled model rides in the task graph on purpose (recomputable)
        warnings.filterwarnings("ignore", message=".*[Ll]arge.*", category=UserWarning)
        import cloudpickle  # a dependency of distributed; pickles lambda normalisers of bare modules too

        model = client.submit(_load_predictor, cloudpickle.dumps(predictor), key=f"model-{token}", pure=False)
    queue = deque(todo)
    running: dict[str, ScenePlan] = {}
    done = as_completed(loop=client.loop)

    def submit() -> None:
        plan, grid = queue.popleft()
        fut = client.submit(_write_scene, plan, grid, model.key, batch=batch, torch_threads=torch_threads,
                            rows_ahead=ahead, threshold=threshold, prob_dtype=prob_dtype, polygons=polygons,
                            min_area_m2=min_area_m2, settings=settings, gdal_cache_mb=gdal_cache_mb,
                            key=f"write-{plan.scene}-{token}",
                            pure=False)
        running[fut.key] = plan
        done.add(fut)

    while queue and len(running) < in_flight:
        submit()
    out: dict[str, dict] = {}
    n_failed = 0
    with tqdm(total=len(todo), desc="scenes", unit="scene", disable=not progress) as bar:
        for fut in done:
            plan = running.pop(fut.key)
            try:
                out[plan.scene] = fut.result()
            except Exception as exc:  # noqa: BLE001 - any task error fails this scene, named, not the batch
                n_failed += 1
                out[plan.scene] = _failed(plan.scene, plan.source_text, f"{type(exc).__name__}: {exc}")
            fut.release()
            bar.update(1)
            bar.set_postfix(failed=n_failed)
            if queue:
                submit()
    model.release()
    return out
