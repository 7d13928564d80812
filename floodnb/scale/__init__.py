"""Scaling out: paired S1/S2 pools from STAC, many-scene prediction on dask.distributed, DDP training.

* :func:`floodnb.scale.stac_pool.build_pool` — coincident Sentinel-1/Sentinel-2 acquisitions from a
  STAC API or static catalog, cut into Sen1Floods11-style weak chips the teacher can label.
* :func:`floodnb.scale.dask_predict.predict_scenes` — one COG + one polygon layer per scene, every
  scene's tile rows as dask.distributed tasks, resumable.
* :mod:`floodnb.scale.ddp` — launching and checking data-parallel training (torch.distributed).

Import from the submodules (dask, odc-stac and torch are imported there, not here).
"""
