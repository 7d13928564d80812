"""A tiny in-memory dataset producing floodnb.data.torch-style sample dicts, for distill tests.

Each chip holds a random disc of water: S1 (2, H, W) dark where water, S2 (13, H, W) with a
water-like spectrum, ``label`` (hand, IGNORE_INDEX on a strip), ``weak`` (label with flipped
pixels), ``truth``, ``valid``, ``meta`` (5,), ``chip_id``, ``index``; ``cloud_rows`` > 0 puts a
bright (Sentinel-2 cloud-mask) cloud over the top rows of S2.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from floodnb.bands import IGNORE_INDEX, S2_BANDS

S1_NORM = {"name": "test_s1", "role": "s1", "bands": ["VV", "VH"], "kind": "standard",
           "mean": [0.0, 0.0], "std": [1.0, 1.0], "source": "test"}
#: Sentinel-2 samples are normalised reflectance: raw = mean + std * sample, so the toy S2 (about +-1)
#: is clear-sky reflectance 0.03..0.13 (cirrus band B10 near 0.001) and a planted cloud is bright.
S2_NORM = {"name": "test_s2", "role": "s2", "bands": list(S2_BANDS), "kind": "standardize",
           "mean": [0.08] * 10 + [0.001] + [0.08] * 2, "std": [0.05] * 10 + [0.001] + [0.05] * 2, "source": "test"}
#: Normalised B2 of a planted cloud (raw TOA reflectance 0.5 > the 0.2 blue cloud test).
CLOUD_B2 = (0.5 - 0.08) / 0.05


class ToyChips(torch.utils.data.Dataset):
    def __init__(self, n: int = 8, size: int = 32, *, seed: int = 0, s2: bool = True, nan_s1: tuple[int, ...] = (),
                 prefix: str = "Toy", with_label: bool = True, cloud_rows: int = 0) -> None:
        self.n, self.size, self.seed, self.s2, self.nan_s1 = n, size, seed, s2, set(nan_s1)
        self.prefix, self.with_label, self.cloud_rows = prefix, with_label, cloud_rows
        self.normalizers = {"s1": S1_NORM, "s2": S2_NORM}
        self.catalog = pd.DataFrame({"chip_id": [self._id(i) for i in range(n)],
                                     "s2_path": [f"/x/{self._id(i)}_S2.tif" if s2 else None for i in range(n)]})

    def _id(self, i: int) -> str:
        return f"{self.prefix}_{i}"

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict:
        rng = np.random.default_rng(self.seed * 1000 + i)
        s = self.size
        yy, xx = np.mgrid[:s, :s]
        cy, cx, r = rng.uniform(8, s - 8), rng.uniform(8, s - 8), rng.uniform(4, s / 3)
        water = ((yy - cy) ** 2 + (xx - cx) ** 2) < r * r
        s1 = rng.normal(0, 0.5, (2, s, s)).astype(np.float32) + np.where(water, -1.5, 0.5).astype(np.float32)
        valid = np.ones((s, s), bool)
        if i in self.nan_s1:
            s1[:] = 0.0  # the data layer replaces NaN by 0 after normalising ...
            valid[:] = False  # ... and marks the pixels invalid
        label = water.astype(np.int64)
        label[:, :2] = IGNORE_INDEX
        weak = water.astype(np.int64)
        flip = rng.random((s, s)) < 0.1
        weak[flip] = 1 - weak[flip]
        out = {"s1": torch.from_numpy(s1), "valid": torch.from_numpy(valid), "weak": torch.from_numpy(weak),
               "truth": torch.from_numpy(water.astype(np.int64)),
               "meta": torch.from_numpy(rng.normal(size=5).astype(np.float32)),
               "chip_id": self._id(i), "index": torch.tensor(i)}
        if self.with_label:
            out["label"] = torch.from_numpy(label)
        if self.s2:
            s2 = rng.normal(0, 0.3, (13, s, s)).astype(np.float32) + np.where(water, -1.0, 1.0).astype(np.float32)
            s2[1, :self.cloud_rows] = CLOUD_B2  # a cloud over the top rows (B2 is band index 1)
            out["s2"] = torch.from_numpy(s2)
        return out
