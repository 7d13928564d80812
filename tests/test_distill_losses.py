"""floodnb.distill.losses on hand-made tensors: ignore index, class weights, temperature,
confident threshold, planted edge bands, never-NaN on empty masks.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from floodnb.bands import IGNORE_INDEX
from floodnb.distill.evaluate import InputPlan
from floodnb.distill.inputs import collate
from floodnb.distill.losses import (
    class_weights_from_counts,
    confident_pseudo_labels,
    edge_weights,
    hand_pool_loss,
    kl_distillation,
    masked_cross_entropy,
    soften,
)
from floodnb.distill.runner import DistillObjective, EdgeOption


def test_ce_ignores_index_and_matches_torch():
    torch.manual_seed(0)
    logits = torch.randn(2, 2, 4, 4)
    target = torch.randint(0, 2, (2, 4, 4))
    target[0, :2] = IGNORE_INDEX
    ref = F.cross_entropy(logits, target, ignore_index=IGNORE_INDEX)
    assert torch.allclose(masked_cross_entropy(logits, target), ref)
    # garbage logits on ignored pixels do not change the loss
    logits2 = logits.clone()
    logits2[0, :, :2] = 1e4
    assert torch.allclose(masked_cross_entropy(logits2, target), ref)
    cw = torch.tensor([0.3, 3.0])
    assert torch.allclose(masked_cross_entropy(logits, target, class_weights=cw),
                          F.cross_entropy(logits, target, weight=cw, ignore_index=IGNORE_INDEX))


def test_ce_pixel_weights_and_empty_mask():
    logits = torch.zeros(1, 2, 2, 2, requires_grad=True)
    target = torch.tensor([[[0, 1], [1, 1]]])
    pw = torch.tensor([[[1.0, 0.0], [0.0, 0.0]]])  # only pixel (0,0) counts
    loss = masked_cross_entropy(logits, target, pixel_weights=pw)
    assert math.isclose(float(loss.detach()), math.log(2), rel_tol=1e-6)
    empty = masked_cross_entropy(logits, torch.full((1, 2, 2), IGNORE_INDEX))
    assert float(empty.detach()) == 0.0 and empty.requires_grad
    empty.backward()
    assert torch.isfinite(logits.grad).all()
    with pytest.raises(ValueError, match="pixel_weights must have shape"):
        masked_cross_entropy(logits, target, pixel_weights=torch.ones(2, 2))


def test_kl_temperature_and_mask():
    torch.manual_seed(0)
    t_logits = torch.randn(1, 2, 3, 3)
    s_logits = torch.randn(1, 2, 3, 3)
    p = torch.softmax(t_logits, 1)
    assert torch.allclose(soften(p, 3.0), torch.softmax(t_logits / 3.0, 1), atol=1e-5)
    for T in (1.0, 4.0):
        pt = torch.softmax(t_logits / T, 1)
        ref = T * T * (pt * (pt.log() - F.log_softmax(s_logits / T, 1))).sum(1).mean()
        assert torch.allclose(kl_distillation(s_logits, p, temperature=T), ref, atol=1e-5)
    # student == teacher -> zero
    assert float(kl_distillation(t_logits, p, temperature=2.0)) < 1e-6
    # NaN teacher pixels and invalid pixels are excluded, not propagated
    p_nan = p.clone()
    p_nan[:, :, 0, 0] = float("nan")
    valid = torch.ones(1, 3, 3, dtype=torch.bool)
    valid[0, 2, 2] = False
    out = kl_distillation(s_logits, p_nan, temperature=1.0, valid=valid)
    m = torch.ones(3, 3, dtype=torch.bool)
    m[0, 0] = m[2, 2] = False
    kl = (p * (p.log() - F.log_softmax(s_logits, 1))).sum(1)[0]
    assert torch.isfinite(out) and torch.allclose(out, kl[m].mean(), atol=1e-5)
    all_nan = torch.full_like(p, float("nan"))
    assert float(kl_distillation(s_logits, all_nan)) == 0.0


def test_confident_pseudo_labels_threshold():
    water = torch.tensor([[[0.95, 0.6], [0.05, float("nan")]]])
    probs = torch.stack([1 - water, water], dim=1)
    out = confident_pseudo_labels(probs, threshold=0.9)
    assert out.tolist() == [[[1, IGNORE_INDEX], [0, IGNORE_INDEX]]]
    assert confident_pseudo_labels(probs, threshold=0.5).tolist() == [[[1, 1], [0, IGNORE_INDEX]]]
    with pytest.raises(ValueError, match="threshold"):
        confident_pseudo_labels(probs, threshold=1.5)


def test_edge_weights_planted_square():
    label = torch.zeros(1, 9, 9, dtype=torch.long)
    label[0, 3:6, 3:6] = 1  # a 3x3 lake
    label[0, 0, 8] = IGNORE_INDEX
    w = edge_weights(label, width=1, inner=2.0, outer=0.5)
    # inner band: the lake border; its centre (4,4) has only water neighbours
    assert w[0, 4, 4] == 1.0
    assert w[0, 3, 3] == 3.0 and w[0, 3, 4] == 3.0
    # outer band: the ring of dry pixels touching the lake (Chebyshev distance 1)
    assert w[0, 2, 2] == 1.5 and w[0, 6, 4] == 1.5
    assert w[0, 1, 1] == 1.0 and w[0, 0, 8] == 1.0
    assert int((w == 1.5).sum()) == 5 * 5 - 9
    assert int((w == 3.0).sum()) == 8
    w2 = edge_weights(label, width=2, inner=1.0, outer=1.0)
    assert w2[0, 1, 1] == 2.0 and w2[0, 4, 4] == 2.0


def test_class_weights_from_counts():
    w = class_weights_from_counts([900, 100], eps=0)
    assert torch.allclose(w.mean(), torch.tensor(1.0)) and w[1] / w[0] == pytest.approx(9.0)


def _mix(n_hand: int, n_pool: int, hw: int = 4):
    """Per-pixel losses (leaves) and masks of a batch with ``n_hand`` hand chips then ``n_pool`` pool chips."""
    b = n_hand + n_pool
    g = torch.Generator().manual_seed(b)
    hand_l = torch.rand(b, hw, hw, generator=g).requires_grad_(True)
    pool_l = torch.rand(b, hw, hw, generator=g).requires_grad_(True)
    h = torch.zeros(b, hw, hw)
    h[:n_hand] = 1.0
    p = torch.zeros(b, hw, hw)
    p[n_hand:] = 1.0
    return hand_l, h, pool_l, p


def _pixel_ratio(loss, hand_l, pool_l, n_hand):
    """Gradient of a hand pixel's CE over that of a pool pixel's D: their relative weight in the loss."""
    loss.backward()
    return float(hand_l.grad[0, 0, 0] / pool_l.grad[n_hand, 0, 0])


@pytest.mark.parametrize("hand_weight,distill_weight", [(1.0, 1.0), (2.0, 0.5)])
def test_hand_pixel_weight_does_not_depend_on_the_batch_mix(hand_weight, distill_weight):
    new, old = [], []
    for n_hand, n_pool in ((1, 1), (1, 7), (3, 1)):
        hand_l, h, pool_l, p = _mix(n_hand, n_pool)
        loss, terms = hand_pool_loss(hand_l, h, pool_l, p, hand_weight=hand_weight, distill_weight=distill_weight)
        new.append(_pixel_ratio(loss, hand_l, pool_l, n_hand))
        assert math.isclose(float(terms["hand_share"]), hand_weight * n_hand / (hand_weight * n_hand
                                                                              + distill_weight * n_pool), rel_tol=1e-6)
        # the old rule: two separately normalised means added
        hand_l, h, pool_l, p = _mix(n_hand, n_pool)
        old_loss = hand_weight * (h * hand_l).sum() / h.sum() + distill_weight * (p * pool_l).sum() / p.sum()
        old.append(_pixel_ratio(old_loss, hand_l, pool_l, n_hand))
    assert all(math.isclose(r, hand_weight / distill_weight, rel_tol=1e-6) for r in new)
    assert max(old) / min(old) > 5  # under the old rule a hand pixel weighs 1x..7x a pool pixel


def test_hand_pool_loss_is_one_weighted_mean_and_never_nan():
    hand_l, h, pool_l, p = _mix(2, 2)
    loss, terms = hand_pool_loss(hand_l, h, pool_l, p, hand_weight=3.0, distill_weight=1.0)
    want = (3 * (h * hand_l).sum() + (p * pool_l).sum()) / (3 * h.sum() + p.sum())
    assert torch.allclose(loss, want)
    assert torch.allclose(terms["ce"], (h * hand_l).sum() / h.sum())
    assert torch.allclose(terms["distill"], (p * pool_l).sum() / p.sum())
    zero, t0 = hand_pool_loss(hand_l, h * 0, pool_l, p * 0)
    assert float(zero.detach()) == 0.0 and zero.requires_grad and float(t0["hand_share"]) == 0.0
    with pytest.raises(ValueError, match="hand_weight and distill_weight"):
        hand_pool_loss(hand_l, h, pool_l, p, hand_weight=-1.0)
    with pytest.raises(ValueError, match="share one"):
        hand_pool_loss(hand_l, h[:1], pool_l, p)


class _Const(torch.nn.Module):
    def __init__(self, logits):
        super().__init__()
        self.logits = torch.nn.Parameter(logits)

    def forward(self, x, meta=None):
        assert x.shape[0] == self.logits.shape[0]
        return self.logits


def _sample(i: int, *, hand: bool, soft_weight: float | None = None, hw: int = 6) -> dict:
    g = torch.Generator().manual_seed(i)
    s = {"s1": torch.randn(2, hw, hw, generator=g), "valid": torch.ones(hw, hw, dtype=torch.bool),
         "chip_id": f"c{i}"}
    if hand:
        s["label"] = torch.randint(0, 2, (hw, hw), generator=g)
    else:
        s["soft"] = torch.softmax(torch.randn(2, hw, hw, generator=g) * 2, dim=1)
    if soft_weight is not None:
        s["soft_weight"] = torch.tensor(soft_weight)
    return s


def test_distill_objective_per_pixel_and_soft_weight_contract():
    plan = InputPlan(inputs=("s1",))
    torch.manual_seed(0)
    logits = torch.randn(3, 2, 6, 6)
    h0, p1, p2 = _sample(0, hand=True), _sample(1, hand=False), _sample(2, hand=False)
    obj = DistillObjective(plan=plan, temperature=2.0, hand_weight=2.0, distill_weight=0.5,
                           edge=EdgeOption(width=1))
    # soft_weight 2 on a pool chip == that chip twice in the batch (samples without the key count 1)
    batch = collate([h0, {**p1, "soft_weight": torch.tensor(2.0)}, p2])
    assert batch["soft_weight"].tolist() == [1.0, 2.0, 1.0]
    loss, terms = obj(_Const(logits), batch)
    dup = collate([h0, p1, p1, p2])
    loss_dup, _ = obj(_Const(torch.stack([logits[0], logits[1], logits[1], logits[2]])), dup)
    assert torch.allclose(loss, loss_dup, atol=1e-6)
    # soft_weight 0 removes the chip's pool term
    loss0, _ = obj(_Const(logits), collate([h0, {**p1, "soft_weight": torch.tensor(0.0)}, p2]))
    loss_without, _ = obj(_Const(logits[[0, 2]]), collate([h0, p2]))
    assert torch.allclose(loss0, loss_without, atol=1e-6)
    assert 0.0 < float(terms["hand_share"]) < 1.0 and float(terms["ce"]) > 0 and float(terms["distill"]) > 0
    with pytest.raises(ValueError, match="soft_weight"):
        obj(_Const(logits), collate([h0, {**p1, "soft_weight": torch.tensor(-1.0)}, p2]))
    with pytest.raises(ValueError, match="hand_weight and distill_weight"):
        DistillObjective(plan=plan, hand_weight=-1.0)
