"""CromSS joint training: an S1 and an S2 network trained together on the same weak labels.

Liu, Albrecht, Wang, Zhu: "CromSS: Cross-modal pre-training with noisy labels for remote sensing
image segmentation", IEEE TGRS 2025 (arXiv 2405.01217), late-fusion variant: one U-Net per
sensor, both updated in every optimiser step by one loss (formulation checked against the
authors' code, github.com/zhu-xlab/CromSS, ``models/pl_pretrain_mm_sscom.py``)::

    L = CE_sel(S1) + CE_sel(S2) + lambda * (C(S1 <- S2) + C(S2 <- S1))

* ``CE_sel(d)``: cross-entropy of network ``d`` on the weak label over the class-balanced
  selection of its pixels: per class the ``ratio`` share with the highest *entangled label
  confidence* ``(l_d + l_1 l_2) / 2``, ``l_d = P_d(y)`` (:func:`floodnb.labels.cromss.cromss_confidence`,
  :func:`~floodnb.labels.cromss.class_balanced_selection`); ``ratio`` ramps 1 -> end over the
  epochs (``batch["ratio"]``, :class:`floodnb.experiment.training.WithRatio`). The authors keep
  dropped pixels with a weight ``conf / threshold`` below 1; here they get weight 0 (hard selection).
* ``C(d <- o) = sum_i w_o,i KL(P_o,i || P_d,i) / sum_i w_o,i`` with ``P_o`` detached: network
  ``d`` is pulled towards the other one where the other is confident, ``w_o`` being the other's
  entangled *prediction confidence* ``(q_o + q_1 q_2) / 2``, ``q = 1 - H(P) / log K``, mixed
  with 1 during the ramp as in the authors' code (``w = (1 - s) + s q'``, ``s`` going 0 -> 1 as
  ``ratio`` goes 1 -> end). Every pixel with input data counts, labelled or not.

:class:`SensorPair` holds both networks; its plain call ``pair(x, meta)`` is the S1 network's,
so validation, evaluation and the saved ``best.safetensors`` / ``model.safetensors`` are the S1
model (the row's model); ``last.pt`` holds both networks (resume) and :func:`train_cromss_joint`
writes the final S2 network to ``partner.safetensors``. Budget: the same steps, batch and crop
as any other row, but *two* networks are updated per step.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import Dataset

from floodnb.bands import CLASS_NAMES, S1_BANDS, S2_BANDS
from floodnb.distill.engine import STATE_FILE, TrainConfig, dist_info
from floodnb.distill.inputs import masked_target, valid_mask
from floodnb.distill.losses import masked_cross_entropy
from floodnb.distill.runner import TrainedRun, normalizer_dicts, train_method
from floodnb.labels.cromss import class_balanced_selection, cromss_confidence, entangle, prediction_confidence
from floodnb.models import ModelSpec, build_model, save_checkpoint
from floodnb.models.inputs import InputPlan

PARTNER_FILE = "partner.safetensors"


class SensorPair(nn.Module):
    """Two segmentation networks trained jointly (CromSS late fusion): ``primary`` (S1) and ``partner`` (S2).

    ``pair(x, meta)`` -> primary logits ``(B, K, H, W)``; ``pair(x, meta, partner_x, partner_meta)``
    -> ``(primary logits, partner logits)`` (one call, so data-parallel wrapping sees both).
    :meth:`packaged` is what :func:`floodnb.models.save_checkpoint` writes: the primary network.
    """

    def __init__(self, primary: nn.Module, partner: nn.Module) -> None:
        super().__init__()
        self.primary, self.partner = primary, partner

    def forward(self, x: torch.Tensor, meta: torch.Tensor | None = None, partner_x: torch.Tensor | None = None,
                partner_meta: torch.Tensor | None = None):
        if partner_x is None:
            return self.primary(x, meta)
        return self.primary(x, meta), self.partner(partner_x, partner_meta)

    def packaged(self) -> nn.Module:
        return self.primary

    def config(self) -> dict:
        return self.primary.config()  # type: ignore[operator]  # floodnb models define config()


def _ratio(batch: Mapping) -> float:
    if "ratio" not in batch:
        raise ValueError("CromSS joint training needs the selection ratio 'ratio' in the batch; wrap the training "
                         "data in floodnb.experiment.training.WithRatio")
    return float(batch["ratio"].reshape(-1)[0])


def weighted_consistency(logits_d: torch.Tensor, probs_other: torch.Tensor, weight: torch.Tensor,
                         valid: torch.Tensor) -> torch.Tensor:
    """``sum_i w_i KL(P_other,i || softmax(logits_d)_i) / sum_i w_i`` over ``valid`` pixels (``P_other`` detached).

    ``logits_d (B, K, H, W)``; ``probs_other (B, K, H, W)``; ``weight``, ``valid`` ``(B, H, W)``.
    An exact 0 (attached) when no pixel has weight.
    """
    t = probs_other.detach().to(logits_d.dtype)
    kl = (t * (torch.log(t.clamp_min(1e-12)) - torch.log_softmax(logits_d, dim=1))).sum(dim=1)
    w = torch.where(valid, weight.detach().to(kl.dtype), torch.zeros_like(kl))
    total = w.sum()
    if total <= 0:
        return logits_d.sum() * 0.0
    return (w * kl).sum() / total


@dataclass(frozen=True)
class CromssJointObjective:
    """The CromSS joint loss of a :class:`SensorPair` (see the module doc) on ``batch[target]``.

    ``plan`` / ``partner_plan``: inputs of the S1 and S2 networks; ``consistency``: lambda;
    ``end_ratio``: the ratio the selection ramp ends at (sets the consistency-weight ramp);
    ``select=False`` trains on every labelled pixel (no selection).
    """

    plan: InputPlan
    partner_plan: InputPlan
    target: str = "weak"
    consistency: float = 1.0
    end_ratio: float = 0.5
    select: bool = True

    def __call__(self, model: nn.Module, batch: Mapping) -> tuple[torch.Tensor, dict]:
        x1, m1 = self.plan(batch)
        x2, m2 = self.partner_plan(batch)
        logits_1, logits_2 = model(x1, m1, x2, m2)
        t = masked_target(batch, self.target)
        p1, p2 = (torch.softmax(lg.detach().float(), dim=1) for lg in (logits_1, logits_2))
        ratio = _ratio(batch)
        terms: dict = {}
        loss = logits_1.sum() * 0.0 + logits_2.sum() * 0.0
        conf = cromss_confidence(p1, p2, t, measure="label") if self.select else (None, None)
        for name, logits, c in (("s1", logits_1, conf[0]), ("s2", logits_2, conf[1])):
            w = class_balanced_selection(c, t, ratio=ratio, num_classes=logits.shape[1]).float() if c is not None \
                else None
            ce = masked_cross_entropy(logits, t, pixel_weights=w)
            loss = loss + ce
            terms[f"ce_{name}"] = ce.detach()
        if self.consistency > 0:
            q1, q2 = entangle(prediction_confidence(p1), prediction_confidence(p2))
            s = 1.0 if self.end_ratio >= 1 else min(1.0, max(0.0, (1 - ratio) / (1 - self.end_ratio)))
            v = valid_mask(batch)
            v = torch.ones_like(t, dtype=torch.bool) if v is None else v
            c1 = weighted_consistency(logits_1, p2, (1 - s) + s * q2, v)
            c2 = weighted_consistency(logits_2, p1, (1 - s) + s * q1, v)
            loss = loss + self.consistency * (c1 + c2)
            terms["cons_s1"], terms["cons_s2"] = c1.detach(), c2.detach()
        return loss, terms


def train_cromss_joint(*, train: Dataset, out_dir: str | Path, valid: Dataset | None = None, target: str = "weak",
                       consistency: float = 1.0, end_ratio: float = 0.5, select: bool = True,
                       model: str = "unet_small", normalizers: Mapping | None = None,
                       config: TrainConfig | None = None, evaluate_on: Mapping[str, Dataset] | None = None,
                       reference: str = "label", resume: bool = True, step_callback=None,
                       model_kw: Mapping | None = None) -> TrainedRun:
    """Train an S1 and an S2 network jointly with the CromSS loss; returns the S1 network's run.

    ``train`` samples carry ``s1``, ``s2``, ``valid``, ``batch[target]`` (the weak label) and
    ``ratio`` (:class:`floodnb.experiment.training.WithRatio`); ``valid`` / ``evaluate_on`` need
    ``s1`` and the reference. The S1 network is validated, evaluated and saved as the run's
    ``best.safetensors``; the final S2 network goes to ``partner.safetensors`` (its spec records
    the method). Same settings (steps, batch, crop) as a one-network run; two networks are
    updated per step. ``model_kw``: architecture overrides for both networks.
    """
    config = TrainConfig() if config is None else config
    plan, partner_plan = InputPlan(inputs=("s1",)), InputPlan(inputs=("s2",))
    norms = normalizer_dicts(normalizers, ("s1", "s2"), train)
    kw = dict(model_kw or {})
    partner_spec: dict = {}

    def pair(primary: nn.Module) -> nn.Module:
        partner = build_model(model, in_channels=len(S2_BANDS), num_classes=len(CLASS_NAMES), **kw)
        partner_spec["model_config"] = partner.config()  # type: ignore[operator]  # floodnb models define config()
        return SensorPair(primary, partner)

    obj = CromssJointObjective(plan=plan, partner_plan=partner_plan, target=target, consistency=consistency,
                               end_ratio=end_ratio, select=select)
    run = train_method(method="s1_weak_cromss_joint", model_name=model, plan=plan, bands={"s1": S1_BANDS},
                       normalizers={"s1": norms["s1"]}, objective=obj, train=train, valid=valid, out_dir=out_dir,
                       config=config, evaluate_on=evaluate_on, reference=reference, wrap_model=pair,
                       extra_config={"kind": "s1_weak", "cromss": {"joint": True, "select": select,
                                                                    "end_ratio": end_ratio,
                                                                    "consistency": consistency,
                                                                    "partner": {"inputs": ["s2"],
                                                                                "bands": list(S2_BANDS),
                                                                                "normalizers": norms["s2"]}}},
                       resume=resume, step_callback=step_callback, model_kw=kw)
    if dist_info()[0] == 0:  # rank 0 writes the files
        _save_partner(Path(out_dir), run.spec, model, partner_spec["model_config"], norms["s2"])
    return run


def _save_partner(out: Path, spec: ModelSpec, model: str, model_config: dict, s2_norm: dict) -> None:
    """Write the S2 network of the pair (final weights, from ``last.pt``) as ``partner.safetensors``."""
    state = torch.load(out / STATE_FILE, map_location="cpu", weights_only=True)["model"]
    net = build_model(model, **model_config)
    net.load_state_dict({k[len("partner."):]: v for k, v in state.items() if k.startswith("partner.")})
    pspec = replace(spec, model_config=model_config, inputs=("s2",), bands={"s2": tuple(S2_BANDS)},
                    normalizers={"s2": s2_norm}, metrics={},
                    config={**spec.config, "method": "s1_weak_cromss_joint (S2 partner)", "band_index": {}})
    save_checkpoint(out / PARTNER_FILE, net, spec=pspec)
