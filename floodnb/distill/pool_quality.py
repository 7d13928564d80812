"""Cloud masking of the teacher's pool targets and the teacher's quality in clear vs cloudy pixels.

Sen1Floods11 hand labels are -1 under cloud (Bonafilia et al. 2020), so the Sentinel-2 teacher
of cross-modal distillation (Garg et al. 2023, arXiv 2302.08180) never learns what lies under a
cloud; its probabilities there are guesses (measured with ``benchmarks/bench_pool_clouds.py`` on
200 simulated pool chips: the S2+S1 teacher's water IoU 0.960 in clear pixels vs 0.400 in the
8.8 % of pool pixels under the cloud mask). :func:`floodnb.distill.teacher.label_pool` therefore
sets the pool targets to NaN where :func:`cloud_mask_of_batch` is set, and the student's
distillation term (soft KL and hard pseudo-labels alike, :mod:`floodnb.distill.losses`) ignores
NaN targets.

The cloud mask is :func:`floodnb.labels.weak.s2_cloud_mask` (B2 > 0.2 or cirrus B10 > 0.012
TOA reflectance) on the pool chip's Sentinel-2, recovered from the normalised sample with the
normaliser's affine inverse. Cloud *shadows* are not masked: shadows darken land towards the
spectrum of water, and the simple spectral shadow tests tried (dark NIR/SWIR near clouds, a
blue/NIR ratio) masked 65-89 % of the clear water to catch 55-75 % of the shadow on simulated
chips (``benchmarks/bench_shadow_tests.py``; the cloud test alone: 99.4 % of cloud, 0.9 % of clear
water); the hand labels (and so the teacher's training data) include shadowed pixels.

:class:`PoolQuality` accumulates the teacher's confusion matrix against a reference (the
simulator's true water) separately for clear and cloud-masked pixels; its table is written next
to the pool targets (``<pool>.quality.csv``).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import torch

from floodnb.bands import CLASS_NAMES, S2_BANDS, WATER
from floodnb.metrics import ConfusionAccumulator

#: How the pool's cloud mask is computed (recorded with the pool targets and in run configs).
CLOUD_MASK_METHOD: str = ("floodnb.labels.weak.s2_cloud_mask on the pool chip's Sentinel-2 "
                          "(B2 > 0.2 or B10 > 0.012 TOA reflectance); shadows not masked")
#: Pixel sets of :class:`PoolQuality` (``all`` = both).
PIXEL_SETS: tuple[str, ...] = ("clear", "cloud", "all")
QUALITY_COLUMNS: tuple[str, ...] = ("pixel_set", "pixels", "share_of_pixels", "water_iou", "water_precision",
                                    "water_recall", "accuracy", "reference_water_fraction")


def _affine_inverse(normalizer: Mapping) -> tuple[np.ndarray, np.ndarray]:
    """``(k, c)`` (C, 1, 1) of a ``Normalizer.to_dict()`` so that ``raw = (y - c) / k``."""
    from floodnb.data.normalize import Normalizer

    return Normalizer.from_dict(normalizer).affine()


def cloud_mask_of_batch(batch: Mapping, s2_normalizer: Mapping) -> torch.Tensor:
    """Cloud mask ``(B, H, W)`` bool of a batch's normalised ``s2 (B, 13, H, W)``; False where ``valid`` is not.

    ``s2_normalizer``: ``Normalizer.to_dict()`` of the 13 S2 bands the samples were normalised
    with (its affine map is inverted to get TOA reflectance back). Raises ``ValueError`` when
    the batch has no ``s2`` or the normaliser does not cover the 13 bands.
    """
    from floodnb.labels.weak import s2_cloud_mask

    if "s2" not in batch:
        raise ValueError("cloud-masking the pool needs Sentinel-2 in the pool samples (key 's2'); "
                         "build the pool dataset with inputs including 's2' or pass mask_clouds=False")
    bands = tuple(s2_normalizer["bands"])
    if bands != S2_BANDS:
        raise ValueError(f"cloud mask: the S2 normaliser covers bands {list(bands)}, expected all of {list(S2_BANDS)}")
    k, c = _affine_inverse(s2_normalizer)
    y = batch["s2"].detach().float().cpu().numpy()
    if y.shape[1] != len(S2_BANDS):
        raise ValueError(f"cloud mask: batch 's2' has {y.shape[1]} bands, expected {len(S2_BANDS)}")
    raw = (y - c[None]) / k[None]
    mask = np.stack([s2_cloud_mask(r) for r in raw])
    out = torch.from_numpy(mask)
    if "valid" in batch:
        out &= batch["valid"].bool().cpu()
    return out.to(batch["s2"].device)


class PoolQuality:
    """Teacher predictions vs a reference in clear and cloud-masked pixels (one confusion matrix each)."""

    def __init__(self) -> None:
        self.acc = {s: ConfusionAccumulator(num_classes=len(CLASS_NAMES)) for s in PIXEL_SETS}

    def update(self, pred: torch.Tensor, reference: torch.Tensor, cloud: torch.Tensor) -> None:
        """``pred``/``reference`` ``(B, H, W)`` int (-1/IGNORE_INDEX ignored), ``cloud`` ``(B, H, W)`` bool."""
        p, r, m = (t.detach().cpu().numpy() for t in (pred, reference, cloud))
        for i in range(p.shape[0]):
            self.acc["all"].update(p[i], r[i])
            self.acc["clear"].update(np.where(m[i], -1, p[i]), r[i])
            self.acc["cloud"].update(np.where(m[i], p[i], -1), r[i])

    def table(self) -> pd.DataFrame:
        """One row per pixel set (:data:`PIXEL_SETS`) with :data:`QUALITY_COLUMNS`; water IoU from the
        global confusion matrix of that set (NaN when the set has no water in reference or prediction).
        """
        rows = []
        total = max(int(self.acc["all"].total.sum()), 1)
        for s in PIXEL_SETS:
            m = self.acc[s].summary()
            cm = self.acc[s].total
            n = int(cm.sum())
            rows.append({"pixel_set": s, "pixels": n, "share_of_pixels": n / total,
                         "water_iou": m["water_iou"], "water_precision": m["water_precision"],
                         "water_recall": m["water_recall"], "accuracy": m["accuracy"],
                         "reference_water_fraction": float(cm[WATER].sum() / n) if n else float("nan")})
        return pd.DataFrame(rows, columns=list(QUALITY_COLUMNS))
