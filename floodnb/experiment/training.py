"""Equal-budget datasets and the CromSS training options used by the experiment's rows.

* :class:`FixedLength` — a dataset view of exactly ``length`` samples per epoch drawn without
  replacement from a cycle through the wrapped dataset (every chip equally often over epochs),
  so that every row trains the same number of steps whatever its data's size.
* :class:`WithRatio` — adds ``sample["ratio"]``: the CromSS selection ratio of the current
  epoch (linear 1 -> ``end``; :func:`floodnb.labels.cromss.selection_ratio`), set by the engine's
  ``set_epoch`` (so resumed runs get the right ratio).
* :class:`CromssSupervisedObjective` — the S1-weak baseline with CromSS-style selection against a
  *fixed* partner (rows ``s1_weak_*_fixed_partner``): cross-entropy on the weak label restricted
  to the class-balanced most confident pixels (entangled label confidence of the S1 model being
  trained and a separately trained, frozen S2 model on the same weak labels), optionally plus a
  consistency term pulling the S1 prediction to the frozen partner's, weighted by the partner's
  entangled confidence. CromSS proper (Liu et al., TGRS 2025) trains both networks jointly:
  :mod:`floodnb.distill.cromss_joint`.
* :class:`CromssDistillObjective` — the student with a fixed-partner weighting of the
  distillation term (rows ``student_soft_*_fixed_partner``): the teacher's argmax is the noisy
  label, the student's current prediction the other "sensor"; ``select=True`` keeps the
  class-balanced most confident pool pixels, ``consistency=True`` weights every pool pixel by
  the (fixed) teacher's entangled prediction confidence.

Batch keys (``floodnb.data.torch`` vocabulary): ``"soft" (B,K,H,W)`` partner/teacher
probabilities (NaN = none), ``"weak"``/``"label"`` ``(B,H,W)``, ``"valid"``, ``"ratio" (B,)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from floodnb.distill.evaluate import InputPlan
from floodnb.distill.inputs import dataset_len, masked_target, valid_mask
from floodnb.distill.losses import confident_pseudo_labels, hand_pool_loss, masked_cross_entropy
from floodnb.distill.runner import student_pixel_terms
from floodnb.labels.cromss import (
    class_balanced_selection,
    consistency_loss,
    consistency_weight,
    cromss_confidence,
    selection_ratio,
)


class _Wrapper(Dataset):
    """A dataset over ``self.data`` that forwards the epoch and exposes its ``normalizers``."""

    data: Dataset
    epoch: int

    @property
    def normalizers(self):
        return self.data.normalizers

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
        if hasattr(self.data, "set_epoch"):
            self.data.set_epoch(epoch)


class FixedLength(_Wrapper):
    """``length`` samples per epoch from ``data``, cycling through seeded permutations of it.

    Sample ``i`` of epoch ``e`` is chip ``perm_c[g mod N]`` with ``g = e * length + i``,
    ``c = g // N`` and ``perm_c`` a permutation seeded by ``(seed, c)``: over the epochs every
    chip is drawn equally often, and the mapping depends only on ``(seed, e, i)`` (resumable).
    Exposes the wrapped dataset's ``normalizers`` for checkpoint specs.
    """

    def __init__(self, data: Dataset, length: int, *, seed: int) -> None:
        if dataset_len(data) == 0:
            raise ValueError("FixedLength: the wrapped dataset is empty (0 chips)")
        if length < 1:
            raise ValueError(f"FixedLength: length must be >= 1, got {length}")
        self.data, self.length, self.seed, self.epoch = data, int(length), int(seed), 0
        self._perms: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return self.length

    def _perm(self, cycle: int) -> np.ndarray:
        if cycle not in self._perms:
            if len(self._perms) > 8:
                self._perms.clear()
            self._perms[cycle] = np.random.default_rng((self.seed, 7919, cycle)).permutation(dataset_len(self.data))
        return self._perms[cycle]

    def __getitem__(self, i: int) -> dict:
        if not 0 <= i < self.length:
            raise IndexError(f"index {i} out of range for {self.length} samples")
        cycle, pos = divmod(self.epoch * self.length + int(i), dataset_len(self.data))
        return self.data[int(self._perm(cycle)[pos])]


class WithRatio(_Wrapper):
    """Adds ``sample["ratio"]`` (float32 scalar): CromSS selection ratio of the current epoch."""

    def __init__(self, data: Dataset, *, epochs: int, end: float, start: float = 1.0) -> None:
        self.data, self.epochs, self.start, self.end, self.epoch = data, int(epochs), float(start), float(end), 0

    def ratio(self) -> float:
        return selection_ratio(min(self.epoch, self.epochs - 1), epochs=self.epochs, start=self.start, end=self.end)

    def __len__(self) -> int:
        return dataset_len(self.data)

    def __getitem__(self, i: int) -> dict:
        s = dict(self.data[i])
        s["ratio"] = torch.tensor(self.ratio(), dtype=torch.float32)
        return s


def _probs(batch: Mapping) -> torch.Tensor:
    """``batch["soft"]`` as float32 renormalised probabilities (float16 storage rounds sums off 1)."""
    if "soft" not in batch:
        raise ValueError("CromSS needs the other sensor's probabilities 'soft' (B,K,H,W) in the batch")
    p = batch["soft"].float()
    return p / p.sum(dim=1, keepdim=True)


def _ratio(batch: Mapping) -> float:
    if "ratio" not in batch:
        raise ValueError("CromSS selection needs 'ratio' in the batch; wrap the training data in WithRatio")
    return float(batch["ratio"].reshape(-1)[0])


def _selection(own: torch.Tensor, other: torch.Tensor, labels: torch.Tensor, ratio: float) -> torch.Tensor:
    c_own, _ = cromss_confidence(own, other, labels, measure="label")
    return class_balanced_selection(c_own, labels, ratio=ratio, num_classes=own.shape[1]).float()


@dataclass(frozen=True)
class CromssSupervisedObjective:
    """CE on ``batch[target]`` over CromSS-selected pixels (+ ``consistency`` x consistency term).

    The other sensor's probabilities are ``batch["soft"]`` (an S2 model trained on the same weak
    labels). Selection: per class, the ``ratio`` share of labelled pixels with the highest
    entangled label confidence ``(l_s1 + l_s1 * l_s2) / 2`` of the model being trained.
    """

    plan: InputPlan
    target: str = "weak"
    select: bool = True
    consistency: float = 0.0

    def __call__(self, model: nn.Module, batch: Mapping) -> tuple[torch.Tensor, dict]:
        x, meta = self.plan(batch)
        logits = model(x, meta)
        t = masked_target(batch, self.target)
        other = _probs(batch)
        own = torch.softmax(logits.detach().float(), dim=1)
        w = _selection(own, other, t, _ratio(batch)) if self.select else None
        ce = masked_cross_entropy(logits, t, pixel_weights=w)
        terms = {"ce": ce.detach()}
        loss = ce
        if self.consistency > 0:
            cw = consistency_weight(other, own, t, measure="prediction")
            cons = consistency_loss(logits, torch.nan_to_num(other, nan=0.0), weight=cw,
                                    valid=torch.isfinite(other).all(dim=1) & (t >= 0))
            loss = loss + self.consistency * cons
            terms["consistency"] = cons.detach()
        if w is not None:
            terms["kept"] = (w.sum() / (t >= 0).sum().clamp_min(1)).detach()
        return loss, terms


@dataclass(frozen=True)
class CromssDistillObjective:
    """Student loss with a fixed partner's confidence on the pool term (not CromSS's joint training).

    Hand CE and pool ``T^2 KL(teacher || student)`` combined per pixel with ``hand_weight`` and
    ``distill_weight`` (:func:`floodnb.distill.losses.hand_pool_loss`), the pool pixel weight
    ``c_i`` being: ``select`` — 1 on the class-balanced ``ratio`` share of pool pixels with the
    highest entangled label confidence (label = teacher argmax; "sensors" = the student now and
    the *fixed* S2 teacher), 0 elsewhere; ``consistency`` — the teacher's entangled prediction
    confidence ``(q_s2 + q_s2 * q_s1) / 2``, a confidence weighting against a fixed partner.
    Hand chips carry NaN ``soft``; ``soft_weight`` multiplies the pool weight as in
    :class:`floodnb.distill.runner.DistillObjective`.
    """

    plan: InputPlan
    temperature: float = 2.0
    distill_weight: float = 1.0
    hand_weight: float = 1.0
    select: bool = False
    consistency: bool = False

    def __post_init__(self) -> None:
        if self.select == self.consistency:
            raise ValueError("CromssDistillObjective: choose exactly one of select=True or consistency=True")

    def __call__(self, model: nn.Module, batch: Mapping) -> tuple[torch.Tensor, dict]:
        x, meta = self.plan(batch)
        logits = model(x, meta)
        w = None
        if "soft" in batch:
            soft = _probs(batch)
            pseudo = confident_pseudo_labels(soft, threshold=0.0, valid=valid_mask(batch))
            own = torch.softmax(logits.detach().float(), dim=1)
            if self.select:
                w = _selection(own, soft, pseudo, _ratio(batch))
            else:
                w = consistency_weight(soft, own, pseudo, measure="prediction")
            batch = {**batch, "soft": soft}
        ce, h, d, p = student_pixel_terms(logits, batch, mode="soft", temperature=self.temperature, pool_weight=w)
        return hand_pool_loss(ce, h, d, p, hand_weight=self.hand_weight, distill_weight=self.distill_weight)
