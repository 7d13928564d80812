"""Model-based noise scores (self-confidence, CromSS) on catalog chips, and the ``floodnb noise`` command."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from floodnb.bands import S1_BANDS, S2_BANDS
from floodnb.data.catalog import build_catalog
from floodnb.data.io import load_chip
from floodnb.data.normalize import get_preset
from floodnb.labels.model_probs import chip_probs, iter_catalog_with_models, load_predictor
from floodnb.models import ModelSpec, build_model, save_checkpoint
from floodnb.simulate import simulate_dataset


class _Threshold(torch.nn.Module):
    """A 'model' whose water logit is ``-(x_c - t)`` on one channel: an Otsu-like rule in a net's clothes."""

    model_name = "threshold"

    def __init__(self, in_channels: int, channel: int, t: float) -> None:
        super().__init__()
        self.in_channels, self.channel, self.t, self.meta_dim = in_channels, channel, t, 0

    def forward(self, x, meta=None):
        z = -(x[:, self.channel] - self.t) * 4.0
        return torch.stack([-z / 2, z / 2], dim=1)


def _spec(model, role: str) -> ModelSpec:
    bands = S1_BANDS if role == "s1" else S2_BANDS
    norm = get_preset("sen1floods11_s1" if role == "s1" else "s2_l1c").to_dict()
    return ModelSpec(model_name=model.model_name, model_config=model.config(), inputs=(role,),
                     bands={role: tuple(bands)}, normalizers={role: norm})


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    root = tmp_path_factory.mktemp("noise_sim") / "data"
    simulate_dataset(root, n_hand=6, n_weak=6, size=48, seed=3, workers=1, progress=False)
    return root


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    out = tmp_path_factory.mktemp("noise_ckpt")
    torch.manual_seed(0)
    s2 = build_model("unet_tiny", in_channels=len(S2_BANDS))
    s1 = build_model("unet_tiny", in_channels=len(S1_BANDS))
    return (save_checkpoint(out / "s2.safetensors", s2, spec=_spec(s2, "s2")),
            save_checkpoint(out / "s1.safetensors", s1, spec=_spec(s1, "s1")))


def test_chip_probs_are_a_distribution_with_nan_where_input_is_missing(sim, checkpoints):
    cat = build_catalog(sim)
    row = cat[cat["group"] == "hand"].iloc[0]
    chip = load_chip(row, roles=["s1"])
    chip["s1"].values[:, :5, :7] = np.nan
    p = chip_probs(load_predictor(checkpoints[1]), chip)
    assert p.shape == (2,) + chip["s1"].shape[1:] and p.dtype == np.float32
    assert np.isnan(p[:, :5, :7]).all()
    ok = np.isfinite(p[0])
    assert ok.sum() == p[0].size - 35
    np.testing.assert_allclose(p[0][ok] + p[1][ok], 1.0, atol=1e-6)


def test_self_confidence_of_a_sensible_model_finds_wrong_weak_pixels(sim):
    """A NIR-threshold 'S2 model' (water is dark in B8) scores the S1-Otsu weak label of hand chips;
    its self-confidence must flag wrong Otsu pixels better than chance (AUROC > 0.5) on simulated truth.
    """
    from floodnb.labels.stream import score_stream

    cat = build_catalog(sim)
    cat = cat[cat["group"] == "hand"]
    m = _Threshold(len(S2_BANDS), S2_BANDS.index("B8"), t=-0.8)  # normalised NIR below -0.8 sigma -> water
    pred = load_predictor((m, ModelSpec(model_name="threshold", model_config={}, inputs=("s2",),
                                        bands={"s2": S2_BANDS},
                                        normalizers={"s2": get_preset("s2_l1c").to_dict()})))
    res = score_stream(iter_catalog_with_models(cat, sources=["hand", "s1_otsu"], with_truth=True, model=pred),
                       weak="s1_otsu", progress=False)
    v = res.validation.set_index("score")
    assert "self_confidence" in v.index and "disagree_hand" in v.index
    assert 0.5 < v.loc["self_confidence", "auroc"] <= 1.0
    assert res.chips["noise_score"].eq("self_confidence").all()
    assert np.isfinite(res.chips["noise_rate"]).all()


def test_noise_cli_with_teacher_and_other_sensor_writes_cromss_validation(sim, checkpoints, tmp_path, capsys):
    from floodnb.cli import main

    out = tmp_path / "noise"
    assert main(["noise", str(sim), "--out-dir", str(out), "--split", "weak", "--maps", "--gallery", "2",
                 "--model", str(checkpoints[0]), "--other-model", str(checkpoints[1])]) == 0
    chips = pd.read_csv(out / "noise_chips.csv")
    assert len(chips) == 6 and set(chips["noise_score"]) == {"cromss"}
    assert chips["rank"].tolist() == sorted(chips["rank"].tolist())
    val = pd.read_csv(out / "validation.csv").set_index("score")
    assert {"self_confidence", "cromss"} <= set(val.index)
    assert val["auroc"].between(0, 1).all() and (val["pixels"] > 0).all()
    assert len(list((out / "noise_maps").glob("*_noise.tif"))) == 6
    assert (out / "worst_chips.png").stat().st_size > 1000
    assert "cromss" in capsys.readouterr().out


def test_noise_cli_other_model_alone_is_refused(sim, checkpoints, tmp_path, capsys):
    from floodnb.cli import main

    assert main(["noise", str(sim), "--out-dir", str(tmp_path / "o"), "--other-model", str(checkpoints[1])]) != 0
    assert "give --model too" in capsys.readouterr().err
    assert not (tmp_path / "o" / "noise_chips.csv").exists()
