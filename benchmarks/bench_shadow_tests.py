"""Why the pool's cloud mask leaves shadows alone: simple S2 shadow tests vs the simulator's cloud/shadow fields.

For 3 simulated 256 px chips per event (seed 0) the simulator's own cloud opacity and shadow
strength are captured (``floodnb.simulate.scene.make_s2`` wrapped; the simulator is not changed)
and compared with candidate masks computed from the Level-1C reflectance alone:

* ``cloud`` — :func:`floodnb.labels.weak.s2_cloud_mask` (B2 > 0.2 or B10 > 0.012);
* ``cloud+d3`` — the same, dilated by 3 px (thin cloud edges);
* ``cloud+d3+dark_near64`` — plus dark pixels (B8 < 0.12 and B11 < 0.08) within 64 px of a cloud;
* ``blue_ratio`` — ``cloud+d3`` plus dark-NIR pixels that are relatively blue (B8 < 0.12, B2 > 1.2 B8, B3 < 1.1 B2).

Printed per mask: recall of true cloud (opacity > 0.35, where hand labels are -1), recall of
true shadow (strength > 0.3 outside cloud), and the share of clear true-water pixels masked
(targets the student would lose). Depends on the simulator's internals (``make_s2``, ``S2Scene``).

    python benchmarks/bench_shadow_tests.py
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

import floodnb.simulate.scene as sc
from floodnb.labels.weak import s2_cloud_mask
from floodnb.simulate.config import SimConfig
from floodnb.simulate.events import EVENTS


def main() -> None:
    cap: dict = {}
    orig = sc.make_s2

    def capture(*a, **k):
        cap["scene"] = orig(*a, **k)
        return cap["scene"]

    sc.make_s2 = capture
    cfg = SimConfig(size=256)
    events = list(EVENTS) if isinstance(EVENTS, (list, tuple)) else list(EVENTS.values())
    stats: dict[str, np.ndarray] = {}
    try:
        for ev in events:
            for i in range(3):
                chip = sc.simulate_chip(chip_id="x", event=ev, seq=sc.chip_seed(0, ev, i), config=cfg,
                                        vh_threshold=-20.0)
                scene = cap["scene"]
                refl = chip.s2.astype(np.float32) / 10000
                cloud = scene.cloud > 0.35
                shadow = (scene.shadow > 0.3) & ~cloud
                clear_water = ~cloud & ~shadow & (chip.truth_water == 1)
                c0 = s2_cloud_mask(refl)
                d3 = ndimage.binary_dilation(c0, iterations=3)
                b2, b3, b8, b11 = refl[1], refl[2], refl[7], refl[11]
                near = ndimage.binary_dilation(c0, iterations=64) if c0.any() else np.zeros_like(c0)
                masks = {"cloud": c0, "cloud+d3": d3,
                         "cloud+d3+dark_near64": d3 | ((b8 < 0.12) & (b11 < 0.08) & near),
                         "blue_ratio": d3 | ((b8 < 0.12) & (b2 > 1.2 * b8) & (b3 < 1.1 * b2))}
                for name, m in masks.items():
                    stats.setdefault(name, np.zeros(6))
                    stats[name] += [(m & cloud).sum(), cloud.sum(), (m & shadow).sum(), shadow.sum(),
                                    (m & clear_water).sum(), clear_water.sum()]
    finally:
        sc.make_s2 = orig
    for name, s in stats.items():
        print(f"{name:22s} cloud recall {s[0] / max(s[1], 1):.3f}  shadow recall {s[2] / max(s[3], 1):.3f}  "
              f"clear water masked {s[4] / max(s[5], 1):.3f}")


if __name__ == "__main__":
    main()
