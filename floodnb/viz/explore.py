"""Interactive views for the explore and evaluate notebooks: hvplot chip panels and leafmap chip maps.

* :func:`chip_panel_hv` — one chip side by side: Sentinel-1 VV and VH in dB on a grey ramp over
  :data:`~floodnb.bands.S1_DB_RANGE`, Sentinel-2 true colour (B4, B3, B2) and false colour
  (B12, B8, B4) with a 2-98 % percentile stretch (:mod:`floodnb.viz.stretch`; raw L1C
  reflectance looks black otherwise), and label layers in ``CLASS_COLORS``.
* :func:`split_counts_hv`, :func:`chip_locations_hv`, :func:`backscatter_samples` +
  :func:`backscatter_hist_hv` — the dataset at a glance (chips per event and split, where they
  are, VV/VH dB of water vs dry pixels).
* :func:`chip_map` — a ``folium.Map`` with chip footprints and RGBA overlays
  (:mod:`floodnb.viz.maplayers`) embedded as images and Leaflet inlined
  (:func:`floodnb.viz.offline.offline_map`): no tile server and no network needed to build,
  save or open it.

Arrays follow :func:`floodnb.data.io.load_chip`: ``s1 (2, y, x)`` dB, ``s2 (13, y, x)``
reflectance, labels ``(y, x)`` in {-1, 0, 1}; x/y are lon/lat (EPSG:4326 for Sen1Floods11).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from floodnb.bands import CLASS_COLORS, DRY, LABEL_NODATA, S1_BANDS, S1_DB_RANGE, WATER
from floodnb.io_utils import atomic_path
from floodnb.viz.offline import ensure_hvplot


def chip_bounds(chip) -> tuple[float, float, float, float]:
    """``(west, south, east, north)`` in degrees (EPSG:4326) of a chip ``xr.Dataset``'s pixel edges."""
    xs, ys = np.asarray(chip["x"].values, float), np.asarray(chip["y"].values, float)
    rx = abs(xs[1] - xs[0]) if len(xs) > 1 else 0.0
    ry = abs(ys[1] - ys[0]) if len(ys) > 1 else 0.0
    bounds = (xs.min() - rx / 2, ys.min() - ry / 2, xs.max() + rx / 2, ys.max() + ry / 2)
    crs = chip.rio.crs if hasattr(chip, "rio") else None
    if crs is not None and crs.to_epsg() != 4326:
        from rasterio.warp import transform_bounds

        bounds = transform_bounds(crs, "EPSG:4326", *bounds)
    w, s, e, n = (float(b) for b in bounds)
    return w, s, e, n


def _rgb_element(rgb: np.ndarray, bounds, title: str, height: int):
    import holoviews as hv

    rgb = np.asarray(rgb, dtype=np.float32)
    alpha = np.all(np.isfinite(rgb), axis=-1).astype(np.float32)
    rgba = np.dstack([np.nan_to_num(rgb, nan=0.0), alpha])
    return hv.RGB(rgba, bounds=bounds, label=title).opts(title=title, frame_height=height, aspect="equal",
                                                         xlabel="lon", ylabel="lat", tools=["hover"])


def chip_panel_hv(chip, *, height: int = 260, pred: np.ndarray | None = None, max_px: int = 96):
    """HoloViews layout of one chip: S1 VV/VH (dB), S2 true/false colour, hand label, weak labels, ``pred``.

    Panels whose data the chip lacks are left out. ``pred``: optional ``(y, x)`` predicted class.
    Chips larger than ``max_px`` on a side are shown thinned by an integer stride (nearest pixel;
    the figure's data is embedded in the notebook, so this bounds its size).
    """
    import holoviews as hv
    ensure_hvplot()

    from floodnb.viz.stretch import s2_false_color, s2_true_color

    w, s, e, n = chip_bounds(chip)
    step = max(1, -(-max(chip.sizes["y"], chip.sizes["x"]) // max_px))
    if step > 1:
        chip = chip.isel(y=slice(None, None, step), x=slice(None, None, step))
        pred = None if pred is None else np.asarray(pred)[::step, ::step]
    title = str(chip.attrs["chip_id"]) if "chip_id" in chip.attrs else "chip"
    panels = []
    if "s1" in chip:
        for band in S1_BANDS:
            da = chip["s1"].sel(s1_band=band) if "s1_band" in chip["s1"].coords else chip["s1"][S1_BANDS.index(band)]
            panels.append(da.rename(f"{band}_dB").hvplot.image(
                x="x", y="y", cmap="gray", clim=S1_DB_RANGE, frame_height=height, aspect="equal", colorbar=True,
                title=f"{title} S1 {band} (dB)", xlabel="lon", ylabel="lat"))
    if "s2" in chip:
        s2 = np.asarray(chip["s2"].values)
        panels.append(_rgb_element(s2_true_color(s2), (w, s, e, n), f"{title} S2 true colour (2-98 %)", height))
        panels.append(_rgb_element(s2_false_color(s2), (w, s, e, n), f"{title} S2 false colour B12/B8/B4", height))
    layers = {k: chip[k].values for k in ("label", "s1_otsu", "s2_index", "truth_water") if k in chip}
    if pred is not None:
        layers["prediction"] = np.asarray(pred)
    cmap = [CLASS_COLORS[DRY], CLASS_COLORS[WATER]]
    for name, lab in layers.items():
        arr = np.where(np.asarray(lab) == LABEL_NODATA, np.nan, np.asarray(lab, dtype=np.float32))
        panels.append(hv.Image(arr[::-1], bounds=(w, s, e, n), label=name).opts(
            cmap=cmap, clim=(0, 1), frame_height=height, aspect="equal", colorbar=False, title=f"{title} {name}",
            xlabel="lon", ylabel="lat", tools=["hover"]))
    if not panels:
        raise ValueError(f"chip {title} has no s1, s2 or label variables to show (has {list(chip.data_vars)})")
    return hv.Layout(panels).cols(4)


def split_counts_hv(catalog: pd.DataFrame, *, height: int = 300):
    """Stacked bars: chips per event, coloured by split."""
    ensure_hvplot()

    counts = catalog.groupby(["event", "split"]).size().rename("chips").reset_index()
    counts["event"] = counts["event"].astype(str)
    counts["split"] = counts["split"].astype(str)
    return counts.hvplot.bar(x="event", y="chips", by="split", stacked=True, rot=45, height=height,
                             title="chips per event and split")


def chip_locations_hv(catalog: pd.DataFrame, *, height: int = 320):
    """Scatter of chip centres (lon, lat) coloured by split (no basemap: works offline)."""
    ensure_hvplot()

    pts = catalog[["chip_id", "event", "split", "lon", "lat"]].dropna(subset=["lon", "lat"]).copy()
    for c in ("chip_id", "event", "split"):
        pts[c] = pts[c].astype(str)
    return pts.hvplot.points(x="lon", y="lat", by="split", hover_cols=["chip_id", "event"], height=height,
                             title="chip centres", xlabel="lon", ylabel="lat")


def backscatter_samples(catalog: pd.DataFrame, *, reference: str = "label", chips: int = 20,
                        pixels_per_chip: int = 500, seed: int = 0) -> pd.DataFrame:
    """Random VV/VH dB pixel samples of up to ``chips`` chips with a ``reference`` label.

    Returns columns chip_id, event, band ("VV"/"VH"), db (float), cls ("dry"/"water").
    ``reference``: "label" (hand) or "truth_water" (simulated truth) — chips lacking it are skipped.
    """
    from floodnb.data.io import load_chip

    col = f"{reference}_path"
    if col not in catalog.columns:
        raise ValueError(f"catalog has no {col!r} column; reference must be 'label' or 'truth_water'")
    rows = catalog[catalog[col].notna() & catalog["s1_path"].notna()]
    rng = np.random.default_rng(seed)
    pick = rows.iloc[rng.permutation(len(rows))[:chips]] if len(rows) else rows
    parts = []
    for _, row in pick.iterrows():
        chip = load_chip(row, roles=("s1", "label") if reference == "label" else ("s1",),
                         with_truth=reference == "truth_water")
        lab = np.asarray(chip[reference].values)
        s1 = np.asarray(chip["s1"].values)
        ok = np.flatnonzero((((lab == 0) | (lab == 1)) & np.all(np.isfinite(s1), axis=0)).ravel())
        idx = rng.choice(ok, size=min(pixels_per_chip, ok.size), replace=False) if ok.size else ok
        cls = np.where(lab.ravel()[idx] == 1, "water", "dry")
        for b, band in enumerate(S1_BANDS):
            parts.append(pd.DataFrame({"chip_id": str(row["chip_id"]), "event": str(row["event"]), "band": band,
                                       "db": s1[b].ravel()[idx].astype(float), "cls": cls}))
    if not parts:
        raise ValueError(f"no chip has both S1 and a {reference!r} label to sample")
    return pd.concat(parts, ignore_index=True)


def backscatter_hist_hv(samples: pd.DataFrame, *, height: int = 280):
    """Overlaid histograms of dB per class, one panel per band (from :func:`backscatter_samples`)."""
    import holoviews as hv
    ensure_hvplot()

    plots = [samples[samples["band"] == b].hvplot.hist(
        y="db", by="cls", bins=60, alpha=0.5, height=height, title=f"S1 {b} backscatter (dB) by class",
        xlabel=f"{b} (dB)", color=[CLASS_COLORS[DRY], CLASS_COLORS[WATER]]) for b in S1_BANDS]
    return hv.Layout(plots).cols(2)


def chip_map(footprints: pd.DataFrame, *, overlays: Sequence[Mapping] = (), zoom: int | None = None,
             max_px: int = 64):
    """A ``folium.Map`` of chip footprints plus image overlays that works with no network.

    ``footprints``: columns chip_id, west, south, east, north (degrees) and optionally split,
    event, water_iou (shown on hover). ``overlays``: dicts ``{"name", "rgba" (H, W, 4) uint8,
    "bounds" (west, south, east, north), "opacity"}`` (e.g. :func:`floodnb.viz.maplayers.class_rgba`
    of a prediction), each its own layer in the layer control. Leaflet is inlined and the images
    are embedded (:func:`floodnb.viz.offline.offline_map`); there are no basemap tiles, which the
    map says in a note, so the saved HTML and the notebook output draw every layer offline.
    Overlays larger than ``max_px`` on a side are thinned by an integer stride (nearest pixel),
    which keeps maps of many chips small.
    """
    import folium

    from floodnb.viz.offline import offline_map

    need = ["chip_id", "west", "south", "east", "north"]
    missing = [c for c in need if c not in footprints.columns]
    if missing:
        raise ValueError(f"footprints lacks columns {missing}; expected {need}")
    if footprints.empty:
        raise ValueError("footprints is empty: no chips to map")
    lat = float((footprints["south"] + footprints["north"]).mean() / 2)
    lon = float((footprints["west"] + footprints["east"]).mean() / 2)
    m = offline_map((lat, lon), zoom=zoom or 9)
    for ov in overlays:
        w, s, e, n = ov["bounds"]
        rgba = np.asarray(ov["rgba"], dtype=np.uint8)
        step = max(1, -(-max(rgba.shape[:2]) // max_px))
        folium.raster_layers.ImageOverlay(rgba[::step, ::step], bounds=[[s, w], [n, e]],
                                          name=str(ov["name"]), opacity=float(ov.get("opacity", 0.8)),
                                          mercator_project=False).add_to(m)
    group = folium.FeatureGroup(name="chip footprints")
    for _, r in footprints.iterrows():
        tip = " | ".join(f"{k}: {r[k]:.3f}" if isinstance(r[k], float) else f"{k}: {r[k]}"
                         for k in ("chip_id", "event", "split", "water_iou") if k in r.index)
        folium.Rectangle(bounds=[[r["south"], r["west"]], [r["north"], r["east"]]], color="#ff7f0e", weight=1,
                         fill=False, tooltip=tip).add_to(group)
    group.add_to(m)
    folium.LayerControl(collapsed=len(overlays) > 6).add_to(m)
    if zoom is None:
        m.fit_bounds([[float(footprints["south"].min()), float(footprints["west"].min())],
                      [float(footprints["north"].max()), float(footprints["east"].max())]])
    return m


def save_map(m, path: str | Path) -> Path:
    """Write a folium/leafmap map as a stand-alone HTML file, atomically."""
    path = Path(path)
    if path.suffix.lower() != ".html":
        raise ValueError(f"map path must end in .html, got {str(path)!r}")
    with atomic_path(path) as tmp:
        m.save(str(tmp))
    return path


def footprints_of(catalog: pd.DataFrame) -> pd.DataFrame:
    """Footprint table (chip_id, event, split, west, south, east, north) from the chips' S1 (or S2) GeoTIFFs."""
    import rasterio
    from rasterio.warp import transform_bounds

    rows = []
    for _, r in catalog.iterrows():
        src = r["s1_path"] if isinstance(r["s1_path"], str) else r["s2_path"]
        if not isinstance(src, str):
            continue
        with rasterio.open(src) as ds:
            b = ds.bounds
            w, s, e, n = (transform_bounds(ds.crs, "EPSG:4326", *b) if ds.crs and ds.crs.to_epsg() != 4326
                          else (b.left, b.bottom, b.right, b.top))
        rows.append({"chip_id": str(r["chip_id"]), "event": str(r["event"]), "split": str(r["split"]),
                     "west": w, "south": s, "east": e, "north": n})
    return pd.DataFrame(rows)


def chip_figure(chip, *, path: str | Path | None = None):
    """Static (matplotlib) panels of one chip: S1 VV and VH in dB (grey, :data:`S1_DB_RANGE`), S2 true and
    false colour (2-98 % stretch), hand label — the PNG counterpart of :func:`chip_panel_hv`.
    """
    from matplotlib.colors import ListedColormap
    from matplotlib.figure import Figure

    from floodnb.viz.noise import save_figure
    from floodnb.viz.stretch import s1_db_display, s2_false_color, s2_true_color

    title = str(chip.attrs["chip_id"]) if "chip_id" in chip.attrs else "chip"
    panels: list[tuple[str, np.ndarray, Any]] = []  # (title, image, colormap: name, object or None)
    if "s1" in chip:
        s1 = np.asarray(chip["s1"].values)
        panels += [(f"S1 {b} (dB, {S1_DB_RANGE[0]:g}..{S1_DB_RANGE[1]:g})", s1_db_display(s1, band=b), "gray")
                   for b in S1_BANDS]
    if "s2" in chip:
        s2 = np.asarray(chip["s2"].values)
        panels += [("S2 true colour", np.nan_to_num(s2_true_color(s2)), None),
                   ("S2 false colour B12/B8/B4", np.nan_to_num(s2_false_color(s2)), None)]
    for k in ("label", "truth_water"):
        if k in chip:
            lab = np.asarray(chip[k].values, dtype=np.float32)
            panels.append((k, np.where(lab == LABEL_NODATA, np.nan, lab),
                           ListedColormap([CLASS_COLORS[DRY], CLASS_COLORS[WATER]])))
    if not panels:
        raise ValueError(f"chip {title} has no s1, s2 or label variables to show (has {list(chip.data_vars)})")
    fig = Figure(figsize=(2.6 * len(panels), 3.4), layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    grey = None
    for ax, (name, img, cmap) in zip(axes, panels, strict=True):
        im = ax.imshow(img, cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
        grey = im if cmap == "gray" else grey
        ax.set_title(name, fontsize=8)
        ax.set_axis_off()
    _chip_legend(fig, axes, grey, labels=any(isinstance(c, ListedColormap) for _, _, c in panels))
    fig.suptitle(title, fontsize=10)
    if path is not None:
        save_figure(fig, path)
    return fig


def _chip_legend(fig, axes, grey, *, labels: bool) -> None:
    """Colour bar of the S1 dB ramp (``grey``: an S1 image, or None) and a legend of the label classes."""
    from matplotlib.patches import Patch

    if grey is not None:
        lo, hi = S1_DB_RANGE
        bar = fig.colorbar(grey, ax=list(axes), location="bottom", fraction=0.05, shrink=0.35, pad=0.02)
        bar.set_ticks([0, 0.5, 1], labels=[f"{lo:g}", f"{(lo + hi) / 2:g}", f"{hi:g}"])
        bar.set_label("Sentinel-1 backscatter (dB)", fontsize=8)
        bar.ax.tick_params(labelsize=7)
    if labels:
        fig.legend(handles=[Patch(color=CLASS_COLORS[WATER], label="water"),
                            Patch(color=CLASS_COLORS[DRY], label="dry"),
                            Patch(facecolor="white", edgecolor="grey", label="no label (cloud / nodata)")],
                   loc="outside lower right", ncols=3, fontsize=8, frameon=False)


def noise_gallery_items(catalog: pd.DataFrame, noise_table: pd.DataFrame, maps_dir: str | Path, *,
                        n: int = 8) -> list[dict]:
    """Items for :func:`floodnb.viz.noise.worst_chips_gallery`: the ``n`` worst ranked chips of
    ``noise_table`` (``noise_chips.csv``) with their noise map (``<maps_dir>/<chip_id>_noise.tif``)
    and imagery. Chips without a map are skipped.
    """
    import rasterio

    from floodnb.data.io import load_chip

    rows = catalog.drop_duplicates("chip_id").set_index("chip_id", drop=False)
    ranked = noise_table[noise_table["rank"].notna()].sort_values("rank")
    items: list[dict[str, Any]] = []
    for _, r in ranked.iterrows():
        if len(items) >= n:
            break
        cid = str(r["chip_id"])
        path = Path(maps_dir) / f"{cid}_noise.tif"
        if not path.is_file() or cid not in rows.index:
            continue
        with rasterio.open(path) as ds:
            score = ds.read(1).astype(np.float32)
        row = rows.loc[cid]
        roles = tuple(x for x in ("s1", "s2") if isinstance(row[f"{x}_path"], str))
        chip = load_chip(row, roles=roles) if roles else None
        items.append({"chip_id": cid, "score": score, "noise_rate": float(r["noise_rate"]), "rank": int(r["rank"]),
                      "s1": None if chip is None or "s1" not in chip else chip["s1"].values,
                      "s2": None if chip is None or "s2" not in chip else chip["s2"].values})
    return items


__all__ = ["backscatter_hist_hv", "backscatter_samples", "chip_bounds", "chip_figure", "chip_locations_hv", "chip_map",
           "chip_panel_hv", "footprints_of", "noise_gallery_items", "save_map", "split_counts_hv"]
