"""``floodnb pack ROOT OUT``: decode chips once into a memory-mapped store for fast training epochs."""

from __future__ import annotations

import argparse

HELP = ("Pack the chips of a data root (optionally one split / group) into a memory-mapped store "
        "(one .npy per layer role + index) that training reads without decoding GeoTIFFs.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("root", metavar="ROOT", help="data root (any layout floodnb catalog knows)")
    parser.add_argument("out", metavar="OUT", help="store folder to create (written atomically)")
    parser.add_argument("--split", default=None, help="comma-separated splits to pack (default: all)")
    parser.add_argument("--group", default=None, choices=("hand", "weak"), help="only this chip group")
    parser.add_argument("--roles", default=None,
                        help="comma-separated roles (s1,s2,label,s1_otsu,s2_index,jrc,truth_water,truth_class); "
                             "default: every role present")
    parser.add_argument("--require", default=None,
                        help="comma-separated roles a chip must have to be packed (e.g. s1,label)")
    parser.add_argument("--overwrite", action="store_true", help="replace OUT once the new store is complete")
    parser.add_argument("--prepare", default=None, metavar="INPUTS",
                        help="also precompute training samples for these inputs (e.g. s1 or s2,s1) with the default "
                             "normalisers and targets --prepare-target/--prepare-weak (floodnb.data.prepared): "
                             "epochs then only copy bytes")
    parser.add_argument("--prepare-target", default="label", help="target role of the prepared samples (default label)")
    parser.add_argument("--prepare-weak", default=None, help="weak-label role of the prepared samples (default none)")


def run(args: argparse.Namespace) -> int:
    from floodnb.bands import ROLES
    from floodnb.data.catalog import build_catalog
    from floodnb.data.store import pack

    def roles_arg(text: str | None, flag: str) -> list[str] | None:
        if text is None:
            return None
        roles = [r.strip() for r in text.split(",") if r.strip()]
        bad = [r for r in roles if r not in ROLES]
        if bad or not roles:
            raise ValueError(f"{flag}: unknown roles {bad}; expected a comma-separated subset of {ROLES}")
        return roles

    roles, require = roles_arg(args.roles, "--roles"), roles_arg(args.require, "--require")
    from pathlib import Path

    if Path(args.out).exists() and not args.overwrite:
        raise ValueError(f"{args.out!r} already exists; pass --overwrite to replace it (only once the new store "
                         "is complete)")
    catalog = build_catalog(args.root)
    if args.split:
        catalog = catalog[catalog["split"].isin([s.strip() for s in args.split.split(",")])]
    if args.group:
        catalog = catalog[catalog["group"] == args.group]
    for r in require or ():
        catalog = catalog[catalog[f"{r}_path"].notna()]
    if roles is not None:
        keep = catalog[[f"{r}_path" for r in roles]].notna().any(axis=1)
        catalog = catalog[keep]
    if catalog.empty:
        raise ValueError(f"no chips under {args.root!r} match --split {args.split!r} --group {args.group!r} "
                         f"--require {args.require!r}")
    store = pack(catalog.reset_index(drop=True), args.out, roles=roles, overwrite=args.overwrite)
    print(f"packed {len(store)} chips ({store.height}x{store.width} px, roles {', '.join(store.roles)}) "
          f"into {store.path}")
    if args.prepare:
        from floodnb.data.prepared import prepare

        inputs = tuple(x.strip() for x in args.prepare.split(",") if x.strip())
        path = prepare(store, inputs=inputs, target=args.prepare_target, weak=args.prepare_weak)
        print(f"prepared training samples (inputs {', '.join(inputs)}, target {args.prepare_target}, "
              f"weak {args.prepare_weak}) in {path}")
    return 0
