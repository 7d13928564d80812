"""Plots and display helpers: static quick looks (matplotlib), hvplot views, dashboard builders.

Submodules (import the one you need; nothing heavy is imported here):

* :mod:`floodnb.viz.stretch` — percentile stretch for Sentinel-2 true/false colour and Sentinel-1
  dB display (pure numpy, reused by every plot and the dashboard).
* :mod:`floodnb.viz.noise` — label-noise heat maps, disagreement overlays, per-event confusion
  tables and the worst-chips gallery (matplotlib figures, hvplot objects).
* :mod:`floodnb.viz.maplayers`, :mod:`floodnb.viz.dashboard` — the Panel dashboard (its data:
  :mod:`floodnb.viz.run_data`, :mod:`floodnb.viz.chip_arrays`, cached for every session by
  :mod:`floodnb.viz.layer_cache`; its map: :mod:`floodnb.viz.mapfigure`;
  text: :mod:`floodnb.viz.dashboard_text`; downloads: :mod:`floodnb.viz.dashboard_exports` over
  :mod:`floodnb.viz.exports`; serving: :mod:`floodnb.viz.serve`; the offline one-file copy:
  :mod:`floodnb.viz.static_export`).
"""
