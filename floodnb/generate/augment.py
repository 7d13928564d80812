"""Generated pairs as training samples of the S1 models (DAKTer's soft-label knowledge transfer).

:class:`GeneratedPairs` turns :class:`~floodnb.generate.sample.Generated` pairs into sample dicts
in the student's vocabulary (:mod:`floodnb.distill.inputs`): ``"s1"`` (2, H, W) normalised,
``"valid"`` (H, W) all True, ``"label"`` (H, W) all IGNORE_INDEX (no hand label: no CE),
``"soft"`` (2, H, W) ``[p_dry, p_water]`` (KD target of :class:`~floodnb.distill.runner.DistillObjective`)
and ``"soft_weight"`` () float32: the generated pairs' own KD weight, a per-sample scalar that
multiplies the sample's KD pixel weights in the student's per-pixel loss
(:func:`floodnb.distill.losses.hand_pool_loss`, read by :class:`~floodnb.distill.runner.DistillObjective`).
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from floodnb.bands import IGNORE_INDEX
from floodnb.generate.sample import Generated


class GeneratedPairs(Dataset):
    """Samples of generated pairs (see the module doc); ``soft_weight`` >= 0 is their KD weight."""

    def __init__(self, generated: Generated, *, soft_weight: float = 1.0) -> None:
        if len(generated) == 0:
            raise ValueError("GeneratedPairs: no generated pairs")
        if not soft_weight >= 0:
            raise ValueError(f"GeneratedPairs: soft_weight must be >= 0, got {soft_weight!r}")
        if generated.soft.shape[1] != 2 or generated.soft.shape[2:] != generated.s1.shape[2:]:
            raise ValueError(f"GeneratedPairs: soft must be (N, 2, H, W) like s1 {generated.s1.shape}, got "
                             f"{generated.soft.shape}")
        self.generated, self.soft_weight = generated, float(soft_weight)

    @property
    def normalizers(self) -> dict:
        from floodnb.data.normalize import Normalizer

        return {"s1": Normalizer.from_dict(self.generated.normalizer)}

    def __len__(self) -> int:
        return len(self.generated)

    def __getitem__(self, i: int) -> dict:
        if not 0 <= i < len(self):
            raise IndexError(f"index {i} out of range for {len(self)} generated pairs")
        s1 = torch.from_numpy(np.ascontiguousarray(self.generated.s1[i], dtype=np.float32))
        hw = s1.shape[-2:]
        return {"s1": s1, "valid": torch.ones(hw, dtype=torch.bool),
                "label": torch.full(hw, IGNORE_INDEX, dtype=torch.int64),
                "soft": torch.from_numpy(np.ascontiguousarray(self.generated.soft[i], dtype=np.float32)),
                "soft_weight": torch.tensor(self.soft_weight, dtype=torch.float32),
                "index": torch.tensor(i), "chip_id": f"generated_{i:05d}"}
