"""Labels: weak labels made from imagery and label-noise scores (pure array functions).

* :mod:`floodnb.labels.weak` — Sentinel-1 Otsu-on-VH and Sentinel-2 water-index weak labels, the
  way Sen1Floods11 (Bonafilia et al., CVPR Workshops 2020) made them.
* the other modules of this package score where labels, sensors and models disagree.

Nothing heavy is imported here; import the submodule you need.
"""
