"""DAKTer generator realism settings: EMA of the denoiser weights (resume-exact), stochastic DDIM
(``eta``), nearest-label fill of unknown label pixels, their settings and CLI flags.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _distill_data import ToyChips
from test_generate import _config, _toy, killed_then_resumed

from floodnb.bands import IGNORE_INDEX
from floodnb.generate.data import JointChips, fill_nearest
from floodnb.generate.ema import EMA_MODEL_NAME, EMADenoiser
from floodnb.generate.sample import load_generator
from floodnb.generate.settings import GenerateSettings
from floodnb.generate.train import GeneratorConfig, train_generator
from floodnb.models.registry import build_model

S1_PRESET = {"name": "sen1floods11_s1", "role": "s1", "bands": ["VV", "VH"], "kind": "clip_scale_standardize",
             "mean": [0.6851, 0.5235], "std": [0.0820, 0.1102], "source": "test", "clip": [-50.0, 1.0],
             "offset": -50.0, "scale": 51.0}
TINY_EMA = GeneratorConfig(width=4, depth=1, timesteps=50, balance_chips=4, ema_decay=0.9, fill_unknown=True)


@pytest.fixture(scope="module")
def trained_ema(tmp_path_factory):
    return train_generator(_toy(), out_dir=tmp_path_factory.mktemp("gen_ema") / "run", config=_config(), gen=TINY_EMA)


def test_ema_update_ramp_and_modes():
    torch.manual_seed(0)
    m = EMADenoiser(width=4, depth=1, ema_decay=0.99)
    with torch.no_grad():
        for p in m.net.parameters():
            p.add_(1.0)
    before = [e.clone() for e in m.ema.parameters()]
    m.update_ema()  # first update: decay min(0.99, 1/10) = 0.1
    for e, b, p in zip(m.ema.parameters(), before, m.net.parameters(), strict=True):
        assert torch.allclose(e, 0.1 * b + 0.9 * p)
    assert int(m.ema_updates) == 1 and not any(p.requires_grad for p in m.ema.parameters())
    x, t = torch.randn(2, 3, 8, 8), torch.tensor([3, 40])
    m.train()
    assert torch.equal(m(x, t), m.net(x, t))
    m.eval()
    assert torch.equal(m(x, t), m.ema(x, t)) and not torch.allclose(m(x, t), m.net(x, t))
    rebuilt = build_model(EMA_MODEL_NAME, **{k: v for k, v in m.config().items() if k != "num_classes"})
    assert rebuilt.config() == m.config()
    with pytest.raises(ValueError, match="ema_decay"):
        EMADenoiser(ema_decay=1.0)


def test_ema_training_resumes_to_identical_weights(tmp_path, trained_ema):
    res = killed_then_resumed(tmp_path / "r", TINY_EMA)
    assert res.fit.resumed_from is not None
    a = load_generator(trained_ema.out_dir / "model.safetensors")
    b = load_generator(tmp_path / "r" / "model.safetensors")
    assert a.spec.model_name == EMA_MODEL_NAME and a.spec.config["generator"]["ema_decay"] == 0.9
    sa, sb = a.model.state_dict(), b.model.state_dict()
    assert set(sa) == set(sb) and any(k.startswith("ema.") for k in sa)
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k
    assert int(sa["ema_updates"]) == 4  # one update before each of the 2 epochs x 2 steps' forwards
    # the sampler runs the averaged weights
    assert not all(torch.equal(sa[f"ema.{k}"], v) for k, v in a.model.net.state_dict().items())


def test_stochastic_sampler_is_seeded_per_chip(trained_ema):
    gen = load_generator(trained_ema.out_dir)
    a = gen.sample(3, size=12, steps=5, seed=7, eta=1.0)
    b = gen.sample(3, size=12, steps=5, seed=7, eta=1.0, batch_size=2)
    det = gen.sample(3, size=12, steps=5, seed=7, eta=0.0)
    assert np.allclose(a.s1, b.s1, atol=1e-4) and np.allclose(a.soft, b.soft, atol=1e-4)
    assert np.array_equal(a.s1, gen.sample(3, size=12, steps=5, seed=7, eta=1.0).s1)
    assert not np.allclose(a.s1, det.s1, atol=1e-3)
    assert a.settings["eta"] == 1.0
    with pytest.raises(ValueError, match="eta"):
        gen.sample(1, size=12, steps=5, eta=1.5)


def test_unknown_labels_take_the_nearest_label():
    v = torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, -1.0]])
    k = torch.tensor([[True, False, False, False], [False, False, False, True]])
    assert torch.equal(fill_nearest(v, k), torch.tensor([[1.0, 1.0, -1.0, -1.0], [1.0, 1.0, -1.0, -1.0]]))
    assert torch.equal(fill_nearest(v, torch.zeros_like(k)), v)
    data = ToyChips(n=2, size=16, s2=False)
    s = data[0]
    known = s["valid"] & (s["label"] != IGNORE_INDEX)
    assert (~known).any() and known.any()
    plain, filled = JointChips(data)[0], JointChips(data, fill_unknown=True)[0]
    assert torch.equal(plain["mask"], filled["mask"]) and torch.equal(plain["x"][:2], filled["x"][:2])
    assert torch.equal(plain["x"][2][known], filled["x"][2][known])
    assert (plain["x"][2][~known] == 0).all() and set(filled["x"][2][~known].tolist()) <= {-1.0, 1.0}


def test_settings_and_cli_flags():
    from floodnb.cli import build_parser
    from floodnb.commands.generate import settings_from_args

    s = settings_from_args(build_parser().parse_args(["generate", "report", "--eta", "0.5", "--ema-decay", "0.99"]))
    assert s.eta == 0.5 and s.generator_config().ema_decay == 0.99
    for bad in ({"eta": 1.5}, {"eta": -0.1}, {"ema_decay": 1.0}, {"ema_decay": -0.5}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            GenerateSettings(**bad)
    with pytest.raises(ValueError, match="ema_decay"):
        GeneratorConfig(ema_decay=1.0)
