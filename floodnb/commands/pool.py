"""``floodnb pool --bbox W S E N --start D --end D --out ROOT``: a paired S1/S2 pool from STAC."""

from __future__ import annotations

import argparse

HELP = ("Find coincident Sentinel-1/Sentinel-2 acquisitions in a STAC API or static catalog and write them as "
        "Sen1Floods11-style weak chips (S1Weak + v1.0 S2) the teacher can label, with a pool manifest CSV.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from floodnb.scale.collections import (
        DEFAULT_RESOLUTION_DEG,
        DEFAULT_S1_COLLECTION,
        DEFAULT_S2_COLLECTION,
        DEFAULT_STAC_URL,
    )

    parser.add_argument("--bbox", type=float, nargs=4, required=True, metavar=("WEST", "SOUTH", "EAST", "NORTH"),
                        help="area in degrees")
    parser.add_argument("--start", required=True, help="first day, ISO date (e.g. 2023-03-01)")
    parser.add_argument("--end", required=True, help="last day, ISO date (inclusive)")
    parser.add_argument("--out", required=True, metavar="ROOT",
                        help="data root to write into (official layout; an existing Sen1Floods11 mirror is fine)")
    parser.add_argument("--stac-url", default=DEFAULT_STAC_URL,
                        help="STAC API or static catalog.json URL/path (default: %(default)s)")
    parser.add_argument("--s1-collection", default=DEFAULT_S1_COLLECTION, help="default: %(default)s")
    parser.add_argument("--s2-collection", default=DEFAULT_S2_COLLECTION, help="default: %(default)s")
    parser.add_argument("--s1-units", default="auto", choices=("auto", "db", "linear", "amplitude"),
                        help="Sentinel-1 values of the collection (default auto: from the collection id)")
    parser.add_argument("--max-gap-hours", type=float, default=72.0,
                        help="largest time between the S1 and S2 pass (default: %(default)s)")
    parser.add_argument("--max-cloud", type=float, default=20.0,
                        help="largest eo:cloud_cover of an S2 pass, percent (default: %(default)s)")
    parser.add_argument("--chip", type=int, default=512, help="chip side in pixels (default: %(default)s)")
    parser.add_argument("--resolution", type=float, default=DEFAULT_RESOLUTION_DEG,
                        help="pixel size in CRS units (default ~10 m in degrees)")
    parser.add_argument("--crs", default="EPSG:4326", help="output grid CRS (default: %(default)s, as Sen1Floods11)")
    parser.add_argument("--min-valid", type=float, default=0.5,
                        help="fraction of valid pixels both sensors need for a chip (default: %(default)s)")
    parser.add_argument("--prefix", default="STAC", help="event-name prefix of the chip ids (default: %(default)s)")
    parser.add_argument("--max-pairs", type=int, default=None, help="stop after this many S1/S2 pairs")
    parser.add_argument("--on-missing", choices=("skip", "error"), default="skip",
                        help="an item missing a band's asset: skip it and report (default) or stop with an error")
    parser.add_argument("--sign", choices=("none", "planetary-computer"), default="none",
                        help="sign asset URLs (planetary-computer needs the 'planetary-computer' package)")
    parser.add_argument("--overwrite", action="store_true", help="rewrite chips that exist (default: keep them)")


def run(args: argparse.Namespace) -> int:
    import warnings

    from floodnb.scale.stac_pool import build_pool

    modifier = None
    if args.sign == "planetary-computer":
        try:
            import planetary_computer
        except ImportError as exc:
            raise ValueError("--sign planetary-computer needs the 'planetary-computer' package "
                             "(pip install planetary-computer)") from exc
        modifier = planetary_computer.sign_inplace
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        res = build_pool(bbox=args.bbox, start=args.start, end=args.end, out_root=args.out, stac=args.stac_url,
                         s1_collection=args.s1_collection, s2_collection=args.s2_collection,
                         max_gap_hours=args.max_gap_hours, max_cloud=args.max_cloud, chip=args.chip,
                         resolution=args.resolution, crs=args.crs, min_valid=args.min_valid, event_prefix=args.prefix,
                         s1_units=args.s1_units, on_missing=args.on_missing, modifier=modifier,
                         max_pairs=args.max_pairs, overwrite=args.overwrite)
    for w in caught:
        if issubclass(w.category, UserWarning):
            print(f"warning: {w.message}")
    counts = res.manifest["status"].value_counts()
    print(f"{len(res.pairs)} S1/S2 pairs, {len(res.manifest)} chip positions: "
          + ", ".join(f"{k} {v}" for k, v in counts.items()))
    for p in res.pairs:
        print(f"  {p.s1.item_ids[0]}{'...' if len(p.s1.items) > 1 else ''} + {p.s2.item_ids[0]}"
              f"{'...' if len(p.s2.items) > 1 else ''}: gap {p.gap.total_seconds() / 3600:.1f} h, "
              f"cloud {p.s2.cloud_cover}")
    if len(res.skipped):
        print(f"{len(res.skipped)} items skipped (see stac_pool_skipped.csv):")
        print(res.skipped.head(20).to_string(index=False))
    print(f"pool written under {res.root} (floodnb catalog {res.root} lists it)")
    return 0
