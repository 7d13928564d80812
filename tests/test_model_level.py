"""Level-awareness of the default U-Net (BatchNorm) and compatibility of old GroupNorm checkpoints.

A radar model must see the chip's absolute backscatter level (per-event VH thresholds differ by
several dB; open water is uniformly dark). A small U-Net is trained on synthetic chips in which
water is dark in VH/VV, many chips all-dry or all-water (as in Sen1Floods11), inputs through the
Sen1Floods11 S1 normaliser. In eval mode (running statistics) the default model must call a
uniform -28 dB VH chip water, a uniform -5 dB chip dry, and predict more water when a chip is
shifted by -10 dB.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from floodnb.data.normalize import get_preset
from floodnb.models import ModelSpec, build_model, load_checkpoint, save_checkpoint
from floodnb.models.unet import DEFAULT_NORM, NORMS

NORM = get_preset("sen1floods11_s1")
SIZE = 32


def _chip(rng: np.random.Generator, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """(VV, VH) dB (2, SIZE, SIZE) and water mask; kind: 'dry', 'water' or 'mixed'."""
    if kind == "mixed":
        yy, xx = np.mgrid[:SIZE, :SIZE]
        cy, cx, r = rng.uniform(6, SIZE - 6, 2).tolist() + [rng.uniform(5, 12)]
        water = (yy - cy) ** 2 + (xx - cx) ** 2 < r * r
    else:
        water = np.full((SIZE, SIZE), kind == "water")
    vh = np.where(water, rng.normal(-27, 2, water.shape), rng.normal(-16, 2, water.shape))
    vv = np.where(water, rng.normal(-18, 2, water.shape), rng.normal(-10, 2, water.shape))
    return np.stack([vv, vh]).astype(np.float32), water


def _x(db: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(NORM(db))


def _water_fraction(model, db: np.ndarray) -> float:
    with torch.no_grad():
        return float((model(_x(db)[None]).argmax(1) == 1).float().mean())


@pytest.fixture(scope="module")
def trained():
    """unet_tiny (default norm) after 120 Adam steps of batch 8 on synthetic level-coded chips."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small convolutions: one thread is fastest on a shared machine
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    model = build_model("unet_tiny", in_channels=2)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(120):
        chips = [_chip(rng, str(k)) for k in rng.choice(["dry", "water", "mixed", "mixed"], size=8)]
        x = torch.stack([_x(c) for c, _ in chips])
        y = torch.from_numpy(np.stack([w for _, w in chips]).astype(np.int64))
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    torch.set_num_threads(threads)
    return model.eval()


def test_default_norm_is_batch():
    m = build_model("unet_small", in_channels=2)
    assert DEFAULT_NORM == "batch" and m.norm == "batch" and m.config()["norm"] == "batch"
    assert any(isinstance(x, torch.nn.BatchNorm2d) for x in m.modules())
    assert not any(isinstance(x, torch.nn.GroupNorm) for x in m.modules())
    from floodnb.experiment.config import BUDGET_NORMS, DEFAULT_BUDGET, FAST_BUDGET

    assert set(BUDGET_NORMS) == set(NORMS) and DEFAULT_BUDGET.norm == FAST_BUDGET.norm == "batch"
    with pytest.raises(ValueError, match="Budget.norm must be one of"):
        type(DEFAULT_BUDGET)(norm="instance")


def test_uniform_dark_chip_is_water_bright_chip_is_dry(trained):
    dark = np.stack([np.full((SIZE, SIZE), -20.0), np.full((SIZE, SIZE), -28.0)]).astype(np.float32)
    bright = np.stack([np.full((SIZE, SIZE), -8.0), np.full((SIZE, SIZE), -5.0)]).astype(np.float32)
    assert _water_fraction(trained, dark) > 0.95
    assert _water_fraction(trained, bright) < 0.05


def test_global_db_shift_moves_predictions(trained):
    rng = np.random.default_rng(5)
    db, water = _chip(rng, "mixed")
    base = _water_fraction(trained, db)
    assert abs(base - water.mean()) < 0.15  # it segments the chip it sees
    assert _water_fraction(trained, db - 10.0) > base + 0.3  # everything 10 dB darker: more water
    assert _water_fraction(trained, db + 10.0) < base - 0.1  # brighter: less water


def test_eval_uses_running_statistics(trained):
    """In eval mode a chip's prediction does not depend on the other chips of its batch."""
    rng = np.random.default_rng(9)
    chips = torch.stack([_x(_chip(rng, k)[0]) for k in ("mixed", "water", "dry")])
    with torch.no_grad():
        alone = trained(chips[:1])
        together = trained(chips)[:1]
    assert torch.allclose(alone, together, atol=1e-5)
    bn = next(m for m in trained.modules() if isinstance(m, torch.nn.BatchNorm2d))
    assert int(bn.num_batches_tracked) == 120 and not torch.allclose(bn.running_mean, torch.zeros_like(bn.running_mean))


def _spec(model, config=None) -> ModelSpec:
    return ModelSpec(model_name="unet_tiny", model_config=model.config() if config is None else config,
                     inputs=("s1",), bands={"s1": ("VV", "VH")}, normalizers={"s1": NORM.to_dict()})


def test_old_group_norm_checkpoint_loads_and_predicts_as_before(tmp_path):
    torch.manual_seed(1)
    old = build_model("unet_tiny", in_channels=2, norm="group").eval()
    x = torch.randn(2, 2, SIZE, SIZE)
    with torch.no_grad():
        before = old(x)
    save_checkpoint(tmp_path / "old.safetensors", old, spec=_spec(old))
    m, spec = load_checkpoint(tmp_path / "old.safetensors")
    assert spec.model_config["norm"] == "group" and m.norm == "group"
    assert any(isinstance(x, torch.nn.GroupNorm) for x in m.modules())
    with torch.no_grad():
        assert torch.equal(m(x), before)
    # a spec written without "norm" (hand-made) rebuilds with the norm its weights show
    for norm in NORMS:
        net = build_model("unet_tiny", in_channels=2, norm=norm).eval()
        cfg = {k: v for k, v in net.config().items() if k != "norm"}
        save_checkpoint(tmp_path / f"{norm}.safetensors", net, spec=_spec(net, cfg))
        m, _ = load_checkpoint(tmp_path / f"{norm}.safetensors")
        assert m.norm == norm
        with torch.no_grad():
            assert torch.equal(m(x), net(x))
