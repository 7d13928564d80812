"""``floodnb predict [CHECKPOINT] SCENE... --out-dir DIR``: water maps of whole scenes.

Without a checkpoint the model shipped with floodnb (:mod:`floodnb.models.pretrained`) is used.

One scene and no cluster option: single-process :func:`floodnb.predict.predict_raster`.
Several scenes (positional, ``--scenes-file`` or a ``--stac`` query) or any cluster option
(``--scheduler``, ``--workers``, ``--threads-per-worker``): many-scene inference on
dask.distributed (:func:`floodnb.scale.dask_predict.predict_scenes`), resumable, one class COG,
one probability COG and one polygon layer per scene; exit code 1 when any scene failed.
"""

from __future__ import annotations

import argparse

HELP = "predict water on Sentinel-1 scenes (GeoTIFFs or a STAC query): class + probability COGs + flood polygons"

#: result-table columns printed by the many-scene mode
_SHOWN = ("scene", "status", "height", "width", "n_water", "n_polygons", "water_km2", "seconds", "error")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", metavar="[CHECKPOINT] SCENE", nargs="*",
                        help="optional model checkpoint first (.safetensors, engine .pt, or a run folder with "
                             "best.safetensors; default: the shipped model, see --model), then Sentinel-1 GeoTIFF "
                             "scene(s), bands VV, VH in dB (any size; one output set each)")
    parser.add_argument("--model", default=None, metavar="NAME",
                        help="a model shipped with floodnb, used when no CHECKPOINT is given (default "
                             "s1_sim_student: trained only on simulated data; see floodnb/models/pretrained/"
                             "MODEL_CARD.md)")
    parser.add_argument("--out-dir", required=True, help="folder for <scene>_water.tif, <scene>_water_prob.tif, "
                                                         "<scene>_water.gpkg/.geojson (and <scene>_water.done.json)")
    parser.add_argument("--tile", type=int, default=512, help="tile size in pixels (default 512)")
    parser.add_argument("--overlap", type=int, default=64, help="tile overlap in pixels, blended (default 64)")
    parser.add_argument("--batch", type=int, default=None,
                        help="tiles per forward pass (default: tiles of at most 512² px in all, 1 tile at --tile 512; "
                             "on a CPU bigger forward passes run slower per pixel)")
    parser.add_argument("--threshold", type=float, default=0.5, help="water if probability > this (default 0.5)")
    parser.add_argument("--prob-dtype", choices=["uint8", "float32"], default="uint8",
                        help="probability COG encoding: uint8 percent (nodata 255) or float32 (nodata -1)")
    parser.add_argument("--no-prob", action="store_true", help="write only the class map")
    parser.add_argument("--polygons", action="store_true",
                        help="also write flood-extent polygons (GPKG + GeoJSON); always on for several scenes")
    parser.add_argument("--min-area", type=float, default=0.0, metavar="M2",
                        help="drop polygons smaller than this many m² (default 0)")
    parser.add_argument("--permanent-water", default=None, metavar="FILE",
                        help="one scene: permanent-water GeoTIFF (1 permanent, 0 not, -1/nodata unknown, as "
                             "Sen1Floods11 JRCWaterHand; reprojected to the scene's grid if needed): the summary "
                             "adds flood km² (water minus permanent water) and polygons get kind flood/permanent")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace existing outputs (default: skip scenes whose outputs exist and were made "
                             "with the same checkpoint and settings, recorded in <scene>_water.done.json; "
                             "outputs made otherwise are refused)")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch CPU threads (default 0: $FLOODNB_THREADS, else the CPUs this process may use; "
                             "1 per task on a dask cluster)")
    parser.add_argument("--precision", choices=("float32", "bfloat16"), default="float32",
                        help="forward pass precision (default float32; bfloat16: mixed precision, faster on CPUs "
                             "with AVX-512 BF16/AMX, water IoU within 0.01 of float32: benchmarks/bench_precision.py)")
    many = parser.add_argument_group("many scenes on dask.distributed")
    many.add_argument("--scenes-file", metavar="LIST",
                      help="text file with one scene GeoTIFF per line (# comments; relative to the file's folder)")
    many.add_argument("--scheduler", metavar="ADDR",
                      help="dask scheduler address, e.g. tcp://10.0.0.5:8786 (default: a LocalCluster on 127.0.0.1)")
    many.add_argument("--workers", type=int, default=None, metavar="N",
                      help="LocalCluster worker processes (default 2)")
    many.add_argument("--threads-per-worker", type=int, default=None, metavar="T",
                      help="LocalCluster threads per worker (default 1)")
    many.add_argument("--connect-timeout", type=float, default=10.0, metavar="S",
                      help="seconds to wait for --scheduler before giving up (default 10)")
    stac = parser.add_argument_group("scenes from a STAC API or static catalog")
    stac.add_argument("--stac", metavar="URL", help="STAC API or static catalog (URL or path)")
    stac.add_argument("--collection", default=None,
                      help="Sentinel-1 collection with vv/vh assets (default sentinel-1-rtc)")
    stac.add_argument("--bbox", type=float, nargs=4, metavar=("WEST", "SOUTH", "EAST", "NORTH"),
                      help="area of interest in degrees")
    stac.add_argument("--datetime", metavar="START/END", help="acquisition window, e.g. 2023-03-01/2023-03-31")
    stac.add_argument("--max-items", type=int, default=None, help="at most this many STAC items")
    stac.add_argument("--s1-units", choices=["auto", "db", "linear", "amplitude"], default="auto",
                      help="values of the S1 data: STAC assets (default auto: from the collection id) and local "
                           "GeoTIFFs (default auto: float dB, checked); linear power and amplitude are converted")


def _scenes_from_file(path: str) -> list[str]:
    from pathlib import Path

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"--scenes-file {p} not found")
    out = []
    for line in p.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            q = Path(line)
            out.append(str(q if q.is_absolute() else p.parent / q))
    if not out:
        raise ValueError(f"--scenes-file {p} lists no scene (one GeoTIFF path per line expected)")
    return out


def _stac_items(args: argparse.Namespace) -> list:
    from floodnb.scale.collections import DEFAULT_S1_COLLECTION
    from floodnb.scale.stac_search import search_items

    if args.bbox is None or args.datetime is None:
        raise ValueError("--stac needs --bbox WEST SOUTH EAST NORTH and --datetime START/END")
    start, sep, end = args.datetime.partition("/")
    if not start:
        raise ValueError(f"--datetime {args.datetime!r}: expected START/END or a single date, e.g. "
                         "2023-03-01/2023-03-31")
    collection = args.collection or DEFAULT_S1_COLLECTION
    items = search_items(args.stac, collection=collection, bbox=args.bbox, start=start, end=end if sep else start,
                         max_items=args.max_items)
    if not items:
        raise ValueError(f"STAC {args.stac}: no item of collection {collection!r} in bbox {list(args.bbox)} "
                         f"during {args.datetime}")
    print(f"STAC {args.stac}: {len(items)} item(s) of {collection}")
    return items


def looks_like_checkpoint(path: str) -> bool:
    """True for a ``.safetensors``/``.pt`` file name or a run folder holding best/model.safetensors."""
    from pathlib import Path

    p = Path(path)
    if p.suffix in (".safetensors", ".pt"):
        return True
    return p.is_dir() and any((p / n).is_file() for n in ("best.safetensors", "model.safetensors"))


def resolve_checkpoint(args: argparse.Namespace) -> list:
    """Set ``args.checkpoint`` (the first positional when it is a checkpoint, else the shipped ``--model``);
    returns the scene paths left.
    """
    from floodnb.models.pretrained import DEFAULT, pretrained_path

    paths = list(args.inputs)
    if paths and looks_like_checkpoint(paths[0]):
        if args.model is not None:
            raise ValueError(f"give either a CHECKPOINT ({paths[0]}) or --model {args.model}, not both")
        args.checkpoint = paths.pop(0)
    else:
        args.checkpoint = str(pretrained_path(args.model or DEFAULT))
        print(f"model: shipped {args.model or DEFAULT} ({args.checkpoint})")
    return paths


def run(args: argparse.Namespace) -> int:
    scenes: list = resolve_checkpoint(args)
    if args.scenes_file:
        scenes += _scenes_from_file(args.scenes_file)
    if args.stac:
        scenes += _stac_items(args)
    elif args.bbox is not None or args.datetime is not None or args.collection is not None:
        raise ValueError("--bbox/--datetime/--collection select STAC items: give --stac URL too")
    if not scenes:
        raise ValueError("no scene given: pass SCENE paths, --scenes-file or --stac")
    many = (len(scenes) > 1 or args.scenes_file or args.stac or args.scheduler or args.workers is not None
            or args.threads_per_worker is not None)
    if many:
        if args.permanent_water:
            raise ValueError(f"--permanent-water {args.permanent_water} applies to a single scene; got "
                             f"{len(scenes)} scene(s) or a cluster option")
        return _run_many(args, scenes)
    return _run_single(args, scenes[0])


def _run_many(args: argparse.Namespace, scenes: list) -> int:
    import sys

    import pandas as pd

    from floodnb.scale.dask_predict import SchedulerUnreachableError, predict_scenes

    try:
        table = predict_scenes(
            args.checkpoint, scenes, args.out_dir, scheduler=args.scheduler,
            n_workers=2 if args.workers is None else args.workers,
            threads_per_worker=1 if args.threads_per_worker is None else args.threads_per_worker,
            connect_timeout=args.connect_timeout, tile=args.tile, overlap=args.overlap, batch=args.batch,
            threshold=args.threshold, write_prob=not args.no_prob, prob_dtype=args.prob_dtype, polygons=True,
            min_area_m2=args.min_area, s1_units=args.s1_units, overwrite=args.overwrite,
            torch_threads=args.threads if args.threads > 0 else 1, precision=args.precision, progress=True)
    except SchedulerUnreachableError as exc:
        print(f"floodnb predict: error: {exc}", file=sys.stderr)
        return 2
    with pd.option_context("display.max_colwidth", 120, "display.width", 200):
        print(table[list(_SHOWN)].to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    counts = table["status"].value_counts()
    print(", ".join(f"{s} {int(counts[s])}" for s in ("done", "skipped", "failed") if s in counts.index)
          + f" -> {args.out_dir}" + (f" (dashboard was {table.attrs['dashboard']})" if table.attrs["dashboard"]
                                     else ""))
    failed = table[table["status"] == "failed"]
    if len(failed):
        for _, r in failed.iterrows():
            print(f"floodnb predict: scene {r['scene']} failed: {r['error']}", file=sys.stderr)
        print(f"floodnb predict: {len(failed)} scene(s) failed: {', '.join(failed['scene'])}; fix them and re-run "
              "the same command (finished scenes are skipped)", file=sys.stderr)
        return 1
    return 0


def _single_settings(args: argparse.Namespace, checkpoint_id: str) -> dict:
    """What the outputs of one scene depend on; recorded in its marker (same keys as many-scene mode)."""
    return {"checkpoint": checkpoint_id, "tile": args.tile, "overlap": args.overlap, "threshold": args.threshold,
            "write_prob": not args.no_prob, "prob_dtype": args.prob_dtype, "polygons": bool(args.polygons),
            "min_area_m2": args.min_area, "s1_units": args.s1_units, "permanent_water": args.permanent_water,
            **({"precision": args.precision} if args.precision != "float32" else {})}


def _up_to_date(marker, wanted: list, settings: dict, scene: str) -> bool:
    """True when ``marker`` records ``settings`` and every wanted output exists. Refuses (ValueError
    naming the marker and the differing settings) outputs made with another checkpoint or other
    settings, and outputs without a marker (nothing says what made them): never keep stale maps.
    """
    import json

    existing = [p for p in wanted if p.exists()]
    if not marker.is_file():
        if existing:
            raise ValueError(f"{existing[0]} exists but {marker.name} (the record of the checkpoint and settings "
                             f"that made it) does not; pass --overwrite to recompute scene {scene!r}")
        return False
    try:
        then = json.loads(marker.read_text(encoding="utf-8"))["settings"]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ValueError(f"scene marker {marker} is not a floodnb marker ({exc}); pass --overwrite to redo "
                         f"scene {scene!r}") from None
    diff = {k: (then.get(k), v) for k, v in settings.items() if then.get(k) != v}
    if diff:
        raise ValueError(f"{marker}: scene {scene!r} was predicted with other settings {{field: (then, now)}} "
                         f"{diff}; pass --overwrite to recompute it or choose another --out-dir")
    return len(existing) == len(wanted)


def _run_single(args: argparse.Namespace, inp: str) -> int:
    import math
    import time
    from pathlib import Path

    from floodnb.area import AREA_DEFINITIONS
    from floodnb.commands import check_out_dir
    from floodnb.io_utils import atomic_write_json
    from floodnb.models import load_checkpoint
    from floodnb.predict import extent_polygons, predict_raster, write_polygons
    from floodnb.predict.permanent import check_permanent, scene_areas
    from floodnb.runtime import apply_threads
    from floodnb.scale.dask_predict import MARKER_SUFFIX, _checkpoint_id

    apply_threads(args.threads)
    out_dir = check_out_dir(args.out_dir)
    loaded = load_checkpoint(args.checkpoint)
    stem = Path(inp).stem
    out = out_dir / f"{stem}_water.tif"
    prob = None if args.no_prob else out_dir / f"{stem}_water_prob.tif"
    poly = out_dir / f"{stem}_water"
    polys = [out_dir / f"{stem}_water.gpkg", out_dir / f"{stem}_water.geojson"] if args.polygons else []
    wanted = [out] + ([prob] if prob else []) + polys
    marker = out_dir / f"{stem}{MARKER_SUFFIX}"
    settings = _single_settings(args, _checkpoint_id(args.checkpoint, None))
    if not args.overwrite and _up_to_date(marker, wanted, settings, stem):
        print(f"{inp}: outputs in {out_dir} made with the same checkpoint and settings, skipped "
              "(--overwrite to redo)")
        return 0
    if args.permanent_water:
        check_permanent(args.permanent_water, **_scene_grid(inp))
    marker.unlink(missing_ok=True)  # from here on the old record no longer describes the files
    res = predict_raster(loaded, inp, out, tile=args.tile, overlap=args.overlap, batch=args.batch,
                         threshold=args.threshold, prob_path=prob, write_prob=prob is not None,
                         prob_dtype=args.prob_dtype, overwrite=True, s1_units=args.s1_units, precision=args.precision)
    areas = scene_areas(res.class_path, permanent=args.permanent_water)
    line = (f"{inp}: {res.height}x{res.width} px, {res.n_water} water / {res.n_valid} valid px, "
            f"{res.seconds:.1f} s -> {res.class_path}\n{_area_line(areas)}")
    n_poly = 0
    if args.polygons:
        gdf = extent_polygons(res.class_path, min_area_m2=args.min_area, permanent=args.permanent_water)
        gpkg, _ = write_polygons(gdf, poly)
        n_poly = len(gdf)
        line += f"\n{n_poly} polygons ({gdf['area_km2'].sum():.3f} km² of polygons >= {args.min_area} m²) -> {gpkg}"
    row = {"scene": stem, "source": str(inp), "status": "done", "class_path": str(out),
           "prob_path": None if prob is None else str(prob), "polygons_path": str(polys[0]) if polys else None,
           "height": res.height, "width": res.width, "n_valid": int(res.n_valid), "n_water": int(res.n_water),
           "n_polygons": n_poly, **{k: None if math.isnan(v) else v for k, v in areas.items()},
           "seconds": res.seconds, "error": None}
    atomic_write_json(marker, {"scene": stem, "source": str(inp), "settings": settings,
                               "outputs": [str(p) for p in wanted], "result": row,
                               "area_definitions": AREA_DEFINITIONS,
                               "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
    print(line)
    return 0


def _scene_grid(inp: str) -> dict:
    """``crs``, ``transform``, ``shape`` of a scene GeoTIFF (the class map's grid)."""
    from floodnb.area import raster_grid

    crs, transform, shape = raster_grid(inp)
    return {"crs": crs, "transform": transform, "shape": shape}


def _area_line(areas: dict) -> str:
    """Summary line: predicted water km² (of the valid area), and flood / permanent km² when known."""
    import math

    text = f"water {areas['water_km2']:.4f} km² of {areas['valid_km2']:.4f} km² with data"
    if not math.isnan(areas["flood_km2"]):
        text += f"; flood {areas['flood_km2']:.4f} km², permanent water {areas['permanent_km2']:.4f} km²"
    return text
