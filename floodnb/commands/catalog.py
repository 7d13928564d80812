"""``floodnb catalog ROOT``: chips found per split/group/layer, and what the split CSVs name that is missing."""

from __future__ import annotations

import argparse

HELP = ("List the Sen1Floods11 chips under a data root: counts per split, group and layer present, "
        "and the chips the split CSVs name that are not on disk; optionally write the catalog as CSV.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("root", metavar="ROOT", help="data root (official bucket mirror, v1.1 folder or short layout)")
    parser.add_argument("--layout", default="auto", choices=("auto", "official", "v1.1", "short"),
                        help="layout of ROOT (default: %(default)s = detect)")
    parser.add_argument("--csv", default=None, metavar="OUT", help="write the full catalog (one row per chip) to OUT")
    parser.add_argument("--show-missing", type=int, default=10, metavar="N",
                        help="list at most N missing chips (default: %(default)s; totals are always printed)")


def run(args: argparse.Namespace) -> int:
    import warnings

    import pandas as pd

    from floodnb.data.catalog import build_catalog, missing_report, summarize, write_catalog

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        catalog = build_catalog(args.root, layout=args.layout)
    for w in caught:
        print(f"warning: {w.message}")
    print(f"{len(catalog)} chips under {catalog.attrs['root']} (layout {catalog.attrs['layout']})")
    with pd.option_context("display.width", 200, "display.max_columns", 30):
        print(summarize(catalog).to_string(index=False))
    missing = missing_report(args.root, layout=catalog.attrs["layout"], catalog=catalog)
    if len(missing):
        counts = missing.groupby("split", sort=False).size()
        print(f"\nnamed in the split CSVs but not on disk: {len(missing)} chips ("
              + ", ".join(f"{s} {n}" for s, n in counts.items()) + ") — normal for a partial download")
        print(missing.head(args.show_missing).to_string(index=False))
    else:
        print("\nevery chip named in the split CSVs is on disk")
    if args.csv:
        print(f"wrote {write_catalog(catalog, args.csv)}")
    return 0
