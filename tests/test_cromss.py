"""CromSS measures (Liu et al., TGRS 2025): formulas, selection, weights, numpy/torch parity."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from floodnb.bands import IGNORE_INDEX
from floodnb.labels import cromss
from floodnb.labels.validate import auroc


def _probs(pw):
    pw = np.asarray(pw, np.float32)
    return np.stack([1 - pw, pw], axis=-3)


def test_measures_follow_the_formulas():
    p = _probs([[0.9, 0.5], [0.2, 1.0]])  # (2, 2, 2)
    y = np.array([[1, 0], [1, -1]])
    lc = cromss.label_confidence(p, y)
    np.testing.assert_allclose(lc, [[0.9, 0.5], [0.2, 0.0]], atol=1e-6)
    q = cromss.prediction_confidence(p)
    h = -(0.9 * math.log(0.9) + 0.1 * math.log(0.1))
    np.testing.assert_allclose(q[0, 0], 1 - h / math.log(2), atol=1e-5)
    assert q[0, 1] == pytest.approx(0.0, abs=1e-6) and q[1, 1] == pytest.approx(1.0, abs=1e-5)
    a, b = cromss.entangle(np.array([0.8]), np.array([0.5]))
    assert a[0] == pytest.approx((0.8 + 0.4) / 2) and b[0] == pytest.approx((0.5 + 0.4) / 2)


def test_selection_ratio_ramps_from_one_to_half():
    r = [cromss.selection_ratio(e, epochs=11) for e in range(11)]
    assert r[0] == 1.0 and r[-1] == pytest.approx(0.5) and np.all(np.diff(r) < 0)
    assert cromss.selection_ratio(2, epochs=11, warmup_epochs=3) == 1.0
    with pytest.raises(ValueError, match="epoch must lie"):
        cromss.selection_ratio(11, epochs=11)


def test_class_balanced_selection_keeps_ratio_per_class_most_confident():
    rng = np.random.default_rng(0)
    y = np.zeros((1, 20, 20), np.int64)
    y[0, :4] = 1  # rare class: 80 px water, 320 dry
    y[0, -1, :5] = IGNORE_INDEX
    conf = rng.random(y.shape).astype(np.float32)
    keep = cromss.class_balanced_selection(conf, y, ratio=0.5)
    assert keep[y == 1].sum() == 40 and keep[y == 0].sum() == math.ceil(0.5 * (y == 0).sum())
    assert not keep[y == IGNORE_INDEX].any()
    assert conf[(y == 1) & keep].min() >= conf[(y == 1) & ~keep].max()


def test_weights_drop_planted_wrong_pixels_and_numpy_torch_agree():
    rng = np.random.default_rng(1)
    truth = (rng.random((2, 32, 32)) < 0.3).astype(np.int64)
    weak = truth.copy()
    weak[0, :8, :8] = 1 - weak[0, :8, :8]
    p1 = _probs(np.clip(np.where(truth == 1, 0.8, 0.2) + rng.normal(0, 0.1, truth.shape), 0.01, 0.99))
    p2 = _probs(np.clip(np.where(truth == 1, 0.85, 0.15) + rng.normal(0, 0.1, truth.shape), 0.01, 0.99))
    w = cromss.cromss_pixel_weights(p1, p2, weak, ratio=0.6)
    wrong = weak != truth
    assert w[wrong].mean() < 0.05 and w[~wrong].mean() > 0.55
    wt = cromss.cromss_pixel_weights(torch.from_numpy(p1), torch.from_numpy(p2), torch.from_numpy(weak), ratio=0.6)
    assert isinstance(wt, torch.Tensor)
    np.testing.assert_array_equal(wt.numpy(), w)
    s = cromss.cromss_noise_score(p1, p2, weak)
    assert auroc(s, wrong) > 0.97
    soft = cromss.cromss_pixel_weights(p1, p2, weak, ratio=1.0, soft=True)
    assert (soft > 0).all() and soft.max() <= 1


def test_consistency_loss_weighted_by_other_sensor_and_differentiable():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, (1, 8, 8))
    p_other = _probs(rng.uniform(0.05, 0.95, (1, 8, 8)))
    p_d = _probs(rng.uniform(0.05, 0.95, (1, 8, 8)))
    w = cromss.consistency_weight(p_other, p_d, y)
    logits = torch.zeros(1, 2, 8, 8, requires_grad=True)
    loss = cromss.consistency_loss(logits, p_other, weight=w)
    loss.backward()
    assert loss.item() > 0 and logits.grad is not None and torch.isfinite(logits.grad).all()
    # zero weight -> zero loss; matching prediction -> zero loss
    assert cromss.consistency_loss(logits, p_other, weight=np.zeros((1, 8, 8), np.float32)).item() == 0
    exact = torch.log(torch.from_numpy(p_other))
    assert cromss.consistency_loss(exact, p_other, weight=w).item() == pytest.approx(0, abs=1e-6)


def test_bad_input_errors():
    p = _probs(np.full((1, 4, 4), 0.5))
    with pytest.raises(ValueError, match="do not sum to one"):
        cromss.label_confidence(p * 0.8, np.zeros((1, 4, 4), int))
    with pytest.raises(ValueError, match="outside \\[0, 2\\)"):
        cromss.label_confidence(p, np.full((1, 4, 4), 3))
    with pytest.raises(ValueError, match="does not match labels"):
        cromss.label_confidence(p, np.zeros((1, 3, 4), int))
    with pytest.raises(ValueError, match="ratio must lie"):
        cromss.class_balanced_selection(np.zeros((4, 4)), np.zeros((4, 4), int), ratio=0)
    with pytest.raises(ValueError, match="measure must be one of"):
        cromss.cromss_confidence(p, p, np.zeros((1, 4, 4), int), measure="entropy")


# ---------------------------------------------------------------- joint S1+S2 training (CromSS, late fusion)
class _Net(torch.nn.Module):
    def __init__(self, logits):
        super().__init__()
        self.logits = torch.nn.Parameter(logits)

    def forward(self, x, meta=None):
        return self.logits


def _joint_batch(ratio=1.0):
    g = torch.Generator().manual_seed(3)
    return {"s1": torch.randn(2, 2, 6, 6, generator=g), "s2": torch.randn(2, 13, 6, 6, generator=g),
            "valid": torch.ones(2, 6, 6, dtype=torch.bool), "weak": torch.randint(0, 2, (2, 6, 6), generator=g),
            "ratio": torch.full((2,), ratio)}


def test_joint_objective_is_both_ce_plus_both_consistency_directions():
    from floodnb.distill.cromss_joint import CromssJointObjective, SensorPair
    from floodnb.distill.losses import masked_cross_entropy
    from floodnb.models.inputs import InputPlan

    torch.manual_seed(0)
    l1, l2 = torch.randn(2, 2, 6, 6), torch.randn(2, 2, 6, 6)
    plans = dict(plan=InputPlan(inputs=("s1",)), partner_plan=InputPlan(inputs=("s2",)))
    batch = _joint_batch(ratio=1.0)
    pair = SensorPair(_Net(l1.clone()), _Net(l2.clone()))
    loss, terms = CromssJointObjective(**plans, consistency=0.5, end_ratio=0.5)(pair, batch)
    ce = masked_cross_entropy(l1, batch["weak"]) + masked_cross_entropy(l2, batch["weak"])
    p1, p2 = torch.softmax(l1, 1), torch.softmax(l2, 1)
    # ratio 1 = start of the ramp: consistency weights are all 1 (plain mean KL), every labelled pixel selected
    kl12 = (p2 * (p2.log() - p1.log())).sum(1).mean()
    kl21 = (p1 * (p1.log() - p2.log())).sum(1).mean()
    assert torch.allclose(loss, ce + 0.5 * (kl12 + kl21), atol=1e-5)
    assert math.isclose(float(terms["cons_s1"]), float(kl12), rel_tol=1e-5)
    loss.backward()
    assert pair.primary.logits.grad.abs().sum() > 0 and pair.partner.logits.grad.abs().sum() > 0
    # end of the ramp: half the pixels per class selected in each network; weights = entangled confidence
    pair.zero_grad()
    loss_end, terms_end = CromssJointObjective(**plans, consistency=0.5, end_ratio=0.5)(pair, _joint_batch(0.5))
    assert float(terms_end["ce_s1"]) != pytest.approx(float(masked_cross_entropy(l1, batch["weak"])))
    q1, q2 = cromss.entangle(cromss.prediction_confidence(p1), cromss.prediction_confidence(p2))
    want = (q2 * (p2 * (p2.log() - p1.log())).sum(1)).sum() / q2.sum()
    assert math.isclose(float(terms_end["cons_s1"]), float(want), rel_tol=1e-5)
    # the plain call is the S1 network's
    assert torch.equal(pair(batch["s1"]), pair.primary.logits)
    with pytest.raises(ValueError, match="ratio"):
        CromssJointObjective(**plans)(pair, {k: v for k, v in batch.items() if k != "ratio"})


def test_train_cromss_joint_trains_both_networks_resumes_and_packages_s1(tmp_path):
    from floodnb.distill.cromss_joint import PARTNER_FILE, train_cromss_joint
    from floodnb.distill.engine import TrainConfig
    from floodnb.experiment.training import WithRatio
    from floodnb.models import load_checkpoint
    from tests._distill_data import ToyChips

    torch.set_num_threads(1)
    train = WithRatio(ToyChips(n=4, seed=1), epochs=2, end=0.5)
    cfg = TrainConfig(epochs=2, batch_size=2, lr=1e-2, seed=0, checkpoint_every=1, progress=False)
    kw = dict(train=train, valid=ToyChips(n=2, seed=2), model="unet_tiny", config=cfg, consistency=1.0,
              evaluate_on={"test": ToyChips(n=2, seed=5)}, reference="truth_water")
    run = train_cromss_joint(out_dir=tmp_path / "full", **kw)
    s1, spec = load_checkpoint(tmp_path / "full" / "best.safetensors")
    assert spec.inputs == ("s1",) and spec.in_channels == 2 and spec.config["cromss"]["joint"] is True
    assert spec.config["cromss"]["partner"]["inputs"] == ["s2"]
    s2, pspec = load_checkpoint(tmp_path / "full" / PARTNER_FILE)
    assert pspec.inputs == ("s2",) and pspec.in_channels == 13
    state = torch.load(tmp_path / "full" / "last.pt", weights_only=True)["model"]
    assert any(k.startswith("primary.") for k in state) and any(k.startswith("partner.") for k in state)
    log = [json.loads(x) for x in (tmp_path / "full" / "train_log.jsonl").read_text().splitlines()]
    assert len(log) == 4 and all(r["ce_s2"] > 0 and "cons_s1" in r for r in log)
    assert 0.0 <= run.metrics["splits"]["test"]["water_iou"] <= 1.0

    class Stop(Exception):
        pass

    def stop(*, global_step, **_):
        if global_step == 3:
            raise Stop

    with pytest.raises(Stop):
        train_cromss_joint(out_dir=tmp_path / "cut", step_callback=stop, **kw)
    train_cromss_joint(out_dir=tmp_path / "cut", **kw)
    for name in ("model.safetensors", PARTNER_FILE):
        a, _ = load_checkpoint(tmp_path / "full" / name)
        b, _ = load_checkpoint(tmp_path / "cut" / name)
        for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
            assert torch.equal(va, vb), (name, k)
