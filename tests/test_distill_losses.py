"""floodnb.distill.losses on hand-made tensors: ignore index, class weights, temperature,
confident threshold, planted edge bands, never-NaN on empty masks.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from floodnb.bands import IGNORE_INDEX
from floodnb.distill.losses import (
    class_weights_from_counts,
    confident_pseudo_labels,
    edge_weights,
    kl_distillation,
    masked_cross_entropy,
    soften,
)


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
