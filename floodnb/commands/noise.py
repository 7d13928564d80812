"""``floodnb noise``: score label noise chip by chip, write tables, a gallery and (with truth) validation."""

from __future__ import annotations

import argparse

HELP = ("Score weak-label noise per chip (agreement between label sources), write the per-chip table, "
        "per-event confusion, worst-chips gallery and, on simulated data, the validation against truth.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("data_root", metavar="DATA_ROOT", help="Sen1Floods11 (or simulated) data root")
    parser.add_argument("--out-dir", required=True, help="folder for noise_chips.csv, event_confusion.csv, "
                        "validation.csv, worst_chips.png, event_confusion.png (created; files replaced atomically)")
    parser.add_argument("--sources", default="hand,s1_otsu,s2_index",
                        help="comma-separated label sources: hand, s1_otsu, s2_index, jrc (provided layers), "
                             "s1_otsu_chip, s1_otsu_event, s2_index_recomputed (recomputed from imagery); "
                             "default: %(default)s")
    parser.add_argument("--weak", default=None,
                        help="the source whose noise is scored (default: s1_otsu if listed, else the second source)")
    parser.add_argument("--split", default=None,
                        help="only chips of this split (train/valid/test/bolivia/weak); default: all")
    parser.add_argument("--maps", action="store_true",
                        help="also write per-chip noise maps (GeoTIFF) to OUT_DIR/noise_maps")
    parser.add_argument("--gallery", type=int, default=8, help="chips in the worst-chips gallery (0: none)")
    parser.add_argument("--limit", type=int, default=None, help="score at most this many chips (catalog order)")
    parser.add_argument("--model", default=None, metavar="CHECKPOINT",
                        help="model (usually the S2 teacher) whose probabilities give the self-confidence score "
                             "1 - P(weak label | x); use it on chips it was not trained on")
    parser.add_argument("--other-model", default=None, metavar="CHECKPOINT",
                        help="a model of the other sensor (e.g. an S1 model): with --model, adds the CromSS "
                             "cross-sensor score (Liu et al., TGRS 2025)")


def _sources_and_weak(args: argparse.Namespace) -> tuple[list[str], str]:
    """``(sources, weak)`` from ``--sources`` / ``--weak``; ``ValueError`` for unknown names or bad counts."""
    from floodnb.labels import stream

    sources = [s.strip() for s in str(args.sources).split(",") if s.strip()]
    known = [*stream.SOURCE_ROLES, *stream.RECOMPUTED_SOURCES]
    bad = [s for s in sources if s not in known]
    if bad or len(sources) < 1:
        raise ValueError(f"--sources: unknown {bad}; expected a comma-separated subset of {known}")
    weak = args.weak or ("s1_otsu" if "s1_otsu" in sources else sources[min(1, len(sources) - 1)])
    if weak not in sources:
        raise ValueError(f"--weak {weak!r} must be one of --sources {sources}")
    if args.gallery < 0 or (args.limit is not None and args.limit < 1):
        raise ValueError("--gallery must be >= 0 and --limit >= 1")
    return sources, weak


def _gallery_items(top, catalog, chips, *, weak: str) -> list[dict]:
    """Items of the worst-chips gallery: per ranked chip of ``top`` its per-pixel score map ``(H, W)``,
    S1 / S2 images (None when absent), noise rate and rank. ``chips(cat, truth)`` yields scorer inputs.
    """
    from floodnb.data.io import load_chip
    from floodnb.labels import stream

    items = []
    rows = catalog.set_index("chip_id")
    for _, r in top.iterrows():
        sub = rows.loc[[r["chip_id"]]].reset_index()
        scores, _, _ = stream.score_chip(next(chips(sub, False)), weak=weak)
        img_roles = [x for x in ("s1", "s2") if isinstance(sub.iloc[0][f"{x}_path"], str)]
        img = load_chip(sub.iloc[0], roles=img_roles) if img_roles else None
        items.append({"chip_id": r["chip_id"], "score": scores[r["noise_score"]],
                      "s1": None if img is None or "s1" not in img else img["s1"].values,
                      "s2": None if img is None or "s2" not in img else img["s2"].values,
                      "noise_rate": float(r["noise_rate"]), "rank": int(r["rank"])})
    return items


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    import pandas as pd

    from floodnb.data.catalog import build_catalog
    from floodnb.labels import stream

    sources, weak = _sources_and_weak(args)
    out_dir = Path(args.out_dir)

    catalog = build_catalog(args.data_root)
    if args.split is not None:
        catalog = catalog[catalog["split"] == args.split]
    need = stream.SOURCE_ROLES.get(weak, "s2" if weak == "s2_index_recomputed" else "s1")
    has = catalog[f"{need}_path"].notna() & (catalog[f"{need}_path"].astype("string") != "")
    skipped = int((~has).sum())
    catalog = catalog[has]
    if args.limit is not None:
        catalog = catalog.head(args.limit)
    if catalog.empty:
        raise ValueError(f"no chip under {args.data_root!r} has the {weak!r} label (layer role {need!r})"
                         + (f" in split {args.split!r}" if args.split else ""))
    with_truth = "truth_water_path" in catalog.columns and bool(catalog["truth_water_path"].notna().any())

    from floodnb.labels.model_probs import iter_catalog_with_models, load_predictor

    if args.other_model and not args.model:
        raise ValueError("--other-model is CromSS's second sensor: give --model too")
    model, other_model = load_predictor(args.model), load_predictor(args.other_model)

    def chips(cat, truth: bool):
        return iter_catalog_with_models(cat, sources=sources, with_truth=truth, model=model,
                                        other_model=other_model)

    result = stream.score_stream(
        chips(catalog, with_truth), weak=weak,
        out_dir=out_dir, write_maps=bool(args.maps), total=len(catalog))
    paths = stream.write_tables(result, out_dir)

    from floodnb.viz.noise import event_confusion_figure, worst_chips_gallery

    if not result.events.empty:
        event_confusion_figure(result.events, path=out_dir / "event_confusion.png")
        paths["event_figure"] = out_dir / "event_confusion.png"
    top = result.chips[result.chips["rank"].notna()].head(args.gallery)
    if len(top):
        worst_chips_gallery(_gallery_items(top, catalog, chips, weak=weak), path=out_dir / "worst_chips.png")
        paths["gallery"] = out_dir / "worst_chips.png"

    ranked = int(result.chips["rank"].notna().sum())
    print(f"scored {len(result.chips)} chips ({ranked} ranked, {len(result.chips) - ranked} without valid pixels; "
          f"{skipped} lacking {weak!r} skipped); weak label: {weak}")
    with pd.option_context("display.width", 160, "display.max_columns", 20):
        print(result.chips.head(10).to_string(index=False))
        if result.validation is not None:
            print("\nvalidation against truth (finding wrong weak-label pixels):")
            print(result.validation.to_string(index=False))
    for k, p in paths.items():
        print(f"wrote {k}: {p}")
    return 0
