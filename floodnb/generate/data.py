"""Joint training samples of the generator from hand-labelled chips.

:class:`JointChips` wraps a sample-dict dataset (``floodnb.data.torch.ChipDataset`` vocabulary:
``"s1"`` normalised (2, H, W), ``"valid"`` (H, W), ``"label"`` int64 (H, W) with IGNORE_INDEX) and
yields ``{"x": (3, H, W) float32, "mask": (3, H, W) bool, "index", "chip_id"}``: ``x`` holds VV,
VH (floodnb normalisation) and the label channel ``2 p_water - 1`` in ``[-1, 1]``; ``mask`` marks
the pixels whose noise the loss counts (image: valid input; label: labelled and valid). Where the
label is unknown the label channel is 0 (``fill_unknown=False``) or, with ``fill_unknown=True``,
the value of the nearest labelled pixel (Euclidean distance transform): such pixels stay out of
the loss either way, but a constant 0 there teaches the denoiser that a label channel near 0
(p_water = 0.5) may stay there unpenalised, which at sampling time leaves undecided, fragmented
labels; filling keeps the model's input a two-valued label map like the one it must produce.
The DAKTer balancing factor is applied by the objective, not here.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from floodnb.bands import IGNORE_INDEX, WATER
from floodnb.distill.inputs import dataset_len


class JointChips(Dataset):
    """Joint (VV, VH, label) samples of ``data``; see the module doc. Forwards ``set_epoch``."""

    def __init__(self, data: Dataset, *, fill_unknown: bool = False) -> None:
        if dataset_len(data) == 0:
            raise ValueError("JointChips: the wrapped dataset is empty (0 chips)")
        self.data = data
        self.fill_unknown = bool(fill_unknown)

    @property
    def normalizers(self):
        return self.data.normalizers

    def set_epoch(self, epoch: int) -> None:
        if hasattr(self.data, "set_epoch"):
            self.data.set_epoch(epoch)

    def __len__(self) -> int:
        return dataset_len(self.data)

    def __getitem__(self, i: int) -> dict:
        s = self.data[i]
        for key in ("s1", "label"):
            if key not in s:
                raise ValueError(f"JointChips: sample {i} has no {key!r}; the generator needs S1 chips with hand "
                                 f"labels (ChipDataset(inputs=('s1',), target='label'))")
        s1 = torch.as_tensor(s["s1"]).float()
        label = torch.as_tensor(s["label"]).long()
        valid = torch.as_tensor(s["valid"]).bool() if "valid" in s else torch.ones(label.shape, dtype=torch.bool)
        known = valid & (label != IGNORE_INDEX)
        lab = torch.where(known, 2.0 * (label == WATER).float() - 1.0, torch.zeros_like(s1[0]))
        if self.fill_unknown:
            lab = fill_nearest(lab, known)
        x = torch.cat([s1, lab[None]], dim=0)
        mask = torch.stack([valid, valid, known])
        out = {"x": x, "mask": mask, "index": torch.tensor(int(s["index"]) if "index" in s else i)}
        if "chip_id" in s:
            out["chip_id"] = s["chip_id"]
        return out


def fill_nearest(values: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
    """``values`` (H, W) with every pixel outside ``known`` (H, W) bool set to its nearest known pixel's
    value (Euclidean distance transform); unchanged when no pixel or every pixel is known.
    """
    k = known.numpy()
    if k.all() or not k.any():
        return values
    from scipy import ndimage

    idx = ndimage.distance_transform_edt(~k, return_distances=False, return_indices=True)
    return torch.from_numpy(values.numpy()[idx[0], idx[1]])


def stack_samples(data: Dataset, n: int | None = None) -> dict[str, torch.Tensor]:
    """The first ``n`` (default all) samples of a :class:`JointChips` stacked: ``x``, ``mask`` (N, 3, H, W)."""
    count = dataset_len(data) if n is None else min(n, dataset_len(data))
    if count == 0:
        raise ValueError("stack_samples: no samples")
    items = [data[i] for i in range(count)]
    shapes = {tuple(s["x"].shape) for s in items}
    if len(shapes) > 1:
        raise ValueError(f"stack_samples: chips differ in size {sorted(shapes)}; crop them to one size")
    return {"x": torch.stack([s["x"] for s in items]), "mask": torch.stack([s["mask"] for s in items])}


def to_db_and_label(x: np.ndarray, mask: np.ndarray, normalizer) -> tuple[np.ndarray, np.ndarray]:
    """Joint samples back to the realism statistics' units: ``s1`` dB (N, 2, H, W) with NaN where the
    image mask is off, ``label`` int (N, H, W) in {-1, 0, 1} (-1 unknown).
    """
    from floodnb.generate.sample import denormalize

    s1 = denormalize(x[:, :2], normalizer)
    s1 = np.where(mask[:, :2], s1, np.nan).astype(np.float32)
    label = np.where(mask[:, 2], (x[:, 2] > 0).astype(np.int16), -1).astype(np.int16)
    return s1, label
