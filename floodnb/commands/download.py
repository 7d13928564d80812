"""``floodnb download``: fetch a chosen subset of the public Sen1Floods11 bucket into the official layout."""

from __future__ import annotations

import argparse

HELP = ("Download Sen1Floods11 (splits, layers, weak chips, v1.0 weak-chip Sentinel-2) over HTTPS into "
        "OUT_ROOT in the official bucket layout: parallel, resumable, size/MD5-verified.")

_DEFAULT_HAND = "S1Hand,LabelHand"


def _csv(value: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in value.split(",") if v.strip())


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from floodnb.data import download as dl

    parser.add_argument("out_root", metavar="OUT_ROOT",
                        help="folder to download into (created; files land under OUT_ROOT/v1.1/... and "
                             "OUT_ROOT/v1.0/...)")
    parser.add_argument("--splits", default="train,valid,test,bolivia",
                        help="comma-separated hand-labelled splits whose chips to fetch, or 'none' "
                             "(default: %(default)s)")
    parser.add_argument("--layers", default=_DEFAULT_HAND,
                        help=f"comma-separated hand layers, subset of {','.join(dl.HAND_LAYERS)} "
                             "(default: %(default)s)")
    parser.add_argument("--weak", action="store_true",
                        help="also fetch the weakly labelled chips (found via the bucket listing)")
    parser.add_argument("--weak-layers", default=",".join(dl.WEAK_LAYERS),
                        help="comma-separated weak layers (default: %(default)s)")
    parser.add_argument("--v10-s2", action="store_true",
                        help="also fetch weak-chip Sentinel-2 from the v1.0 release "
                             "(gs://cnn_chips/S2_NoQC, ~24 GB in full)")
    parser.add_argument("--events", default=None,
                        help="comma-separated events to keep (e.g. Bolivia,Ghana); default: all")
    parser.add_argument("--max-weak-chips", type=int, default=None,
                        help="fetch at most this many weak chips (first in name order); default: all")
    parser.add_argument("--base-url", default=dl.DEFAULT_BASE_URL, help="bucket base URL (default: %(default)s)")
    parser.add_argument("--listing-url", default=dl.DEFAULT_LISTING_URL,
                        help="GCS JSON listing endpoint of the bucket, or 'none' (default: %(default)s)")
    parser.add_argument("--v10-base-url", default=dl.DEFAULT_V10_BASE_URL,
                        help="v1.0 bucket base URL for --v10-s2 (default: %(default)s)")
    parser.add_argument("--v10-listing-url", default=dl.DEFAULT_V10_LISTING_URL,
                        help="GCS JSON listing endpoint of the v1.0 bucket (default: %(default)s)")
    parser.add_argument("--workers", type=int, default=8, help="parallel downloads (default: %(default)s)")
    parser.add_argument("--retries", type=int, default=4,
                        help="retries per file on transient errors, exponential backoff (default: %(default)s)")
    parser.add_argument("--timeout", type=float, default=60, help="seconds per connect/read (default: %(default)s)")
    parser.add_argument("--backoff", type=float, default=1.0,
                        help="first retry wait in seconds, doubled each retry (default: %(default)s)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace local files that differ from the server copy (default: report and leave them)")
    parser.add_argument("--dry-run", action="store_true", help="list what would be fetched; write nothing")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from floodnb.data import download as dl

    splits = () if args.splits.strip().lower() == "none" else _csv(args.splits)
    listing_url = None if str(args.listing_url).strip().lower() == "none" else args.listing_url
    common = dict(
        splits=splits, layers=_csv(args.layers), weak=args.weak, weak_layers=_csv(args.weak_layers),
        include_v10_s2=args.v10_s2, events=None if args.events is None else _csv(args.events),
        max_weak_chips=args.max_weak_chips, base_url=args.base_url, listing_url=listing_url,
        v10_base_url=args.v10_base_url, v10_listing_url=args.v10_listing_url, retries=args.retries,
        timeout=args.timeout, backoff=args.backoff,
    )
    if args.dry_run:
        the_plan = dl.plan(args.out_root, **common)
        for task in the_plan:
            size = "size unknown" if task.size is None else f"{task.size} B"
            print(f"{task.url} -> {task.dest} ({size})")
        unknown = sum(t.size is None for t in the_plan)
        print(f"{len(the_plan)} file(s), {dl.human_bytes(the_plan.known_bytes)}"
              + (f" (+{unknown} of unknown size)" if unknown else "") + "; dry run, nothing written")
        for failure in the_plan.failed:
            print(f"  FAILED {failure}")
        return 1 if the_plan.failed else 0
    report = dl.download(args.out_root, workers=args.workers, overwrite=args.overwrite,
                         progress=not args.no_progress, **common)
    print(report.summary())
    return 0 if report.ok else 1
