"""``floodnb predict CHECKPOINT INPUT... --out-dir DIR``: water maps of whole scenes."""

from __future__ import annotations

import argparse

HELP = "predict water on Sentinel-1 GeoTIFF scenes: class + probability COGs (+ flood polygons)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", metavar="CHECKPOINT",
                        help="model checkpoint (.safetensors, engine .pt, or a run folder with best.safetensors)")
    parser.add_argument("inputs", metavar="INPUT", nargs="+",
                        help="Sentinel-1 GeoTIFF scene(s), bands VV, VH in dB (any size; one output set each)")
    parser.add_argument("--out-dir", required=True, help="folder for <scene>_water.tif, <scene>_water_prob.tif, "
                                                         "<scene>_water.gpkg/.geojson")
    parser.add_argument("--tile", type=int, default=512, help="tile size in pixels (default 512)")
    parser.add_argument("--overlap", type=int, default=64, help="tile overlap in pixels, blended (default 64)")
    parser.add_argument("--batch", type=int, default=4, help="tiles per forward pass (default 4)")
    parser.add_argument("--threshold", type=float, default=0.5, help="water if probability > this (default 0.5)")
    parser.add_argument("--prob-dtype", choices=["uint8", "float32"], default="uint8",
                        help="probability COG encoding: uint8 percent (nodata 255) or float32 (nodata -1)")
    parser.add_argument("--no-prob", action="store_true", help="write only the class map")
    parser.add_argument("--polygons", action="store_true", help="also write flood-extent polygons (GPKG + GeoJSON)")
    parser.add_argument("--min-area", type=float, default=0.0, metavar="M2",
                        help="drop polygons smaller than this many m² (default 0)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace existing outputs (default: skip scenes whose outputs already exist)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (default 0: torch's choice)")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    import torch

    from floodnb.models import load_checkpoint
    from floodnb.predict import extent_polygons, predict_raster, write_polygons

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    out_dir = Path(args.out_dir)
    loaded = load_checkpoint(args.checkpoint)
    for inp in args.inputs:
        stem = Path(inp).stem
        out = out_dir / f"{stem}_water.tif"
        prob = None if args.no_prob else out_dir / f"{stem}_water_prob.tif"
        poly = out_dir / f"{stem}_water"
        wanted = [out] + ([prob] if prob else []) + ([poly.with_suffix(".gpkg"), poly.with_suffix(".geojson")]
                                                      if args.polygons else [])
        if not args.overwrite and all(p.exists() for p in wanted):
            print(f"{inp}: outputs exist in {out_dir}, skipped (--overwrite to redo)")
            continue
        res = predict_raster(loaded, inp, out, tile=args.tile, overlap=args.overlap, batch=args.batch,
                             threshold=args.threshold, prob_path=prob, write_prob=prob is not None,
                             prob_dtype=args.prob_dtype, overwrite=True)
        line = (f"{inp}: {res.height}x{res.width} px, {res.n_water} water / {res.n_valid} valid px, "
                f"{res.seconds:.1f} s -> {res.class_path}")
        if args.polygons:
            gdf = extent_polygons(res.class_path, min_area_m2=args.min_area)
            gpkg, _ = write_polygons(gdf, poly)
            line += f", {len(gdf)} polygons ({gdf['area_m2'].sum() / 1e6:.3f} km²) -> {gpkg}"
        print(line)
    return 0
