"""DAKTer generator (floodnb.generate): schedule and balancing, denoiser, training with resume,
seeded DDIM sampling, checkpoints, evaluation, generated pairs in the student loss, CLI.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _distill_data import ToyChips
from torch.utils.data import ConcatDataset

from floodnb.bands import IGNORE_INDEX
from floodnb.distill.engine import TrainConfig
from floodnb.distill.inputs import SelectKeys, collate
from floodnb.generate.augment import GeneratedPairs
from floodnb.generate.data import JointChips
from floodnb.generate.denoiser import MODEL_NAME, DenoiserUNet
from floodnb.generate.evaluate import label_consistency, realism_stats, realism_table
from floodnb.generate.sample import Generated, chip_noise, ddim_timesteps, denormalize, load_generator
from floodnb.generate.schedule import balancing_factor, cosine_alpha_bar, q_sample, signal_power, snr
from floodnb.generate.settings import GenerateSettings, resolve_device
from floodnb.generate.train import DiffusionObjective, GeneratorConfig, train_generator
from floodnb.models.registry import model_names

S1_PRESET = {"name": "sen1floods11_s1", "role": "s1", "bands": ["VV", "VH"], "kind": "clip_scale_standardize",
             "mean": [0.6851, 0.5235], "std": [0.0820, 0.1102], "source": "test", "clip": [-50.0, 1.0],
             "offset": -50.0, "scale": 51.0}
TINY = GeneratorConfig(width=4, depth=1, timesteps=50, balance_chips=4)


def _toy(n=4, size=16):
    """ToyChips (S1 only) recording a valid S1 normaliser (the generator's spec stores it)."""
    data = ToyChips(n=n, size=size, s2=False)
    data.normalizers = {"s1": S1_PRESET}
    return data


def _config(epochs=2, **kw):
    return TrainConfig(epochs=epochs, batch_size=2, lr=1e-2, seed=3, progress=False, checkpoint_every=1, **kw)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("gen") / "run"
    res = train_generator(_toy(), out_dir=out, config=_config(), gen=TINY)
    return res


def test_cosine_schedule_and_balancing_equalise_snr():
    ab = cosine_alpha_bar(100)
    assert ab.shape == (100,) and (ab[1:] < ab[:-1]).all() and 0 < ab.min() and ab.max() < 1
    g = torch.Generator().manual_seed(0)
    images = 2.0 * torch.randn(6, 2, 16, 16, generator=g)
    labels = torch.where(torch.rand(6, 16, 16, generator=g) < 0.3, 1.0, -1.0)
    b = balancing_factor(images, labels)
    # b makes the label's power (and so its SNR at every step) equal to the image's
    assert signal_power(b * labels) == pytest.approx(signal_power(images), rel=1e-6)
    assert torch.allclose(snr(ab, signal_power(b * labels)), snr(ab, signal_power(images)))
    assert b > 2.0  # images carry 4x the power of a +-1 label with 30 % water: b = sqrt(4 / 0.84)
    assert balancing_factor(images, torch.ones(6, 16, 16)) == 1.0  # one class only: nothing to balance
    x0, noise = torch.ones(2, 3, 4, 4), torch.zeros(2, 3, 4, 4)
    xt = q_sample(x0, torch.tensor([0, 99]), noise, ab)
    assert xt[0].mean() > 0.99 and xt[1].mean() < 0.05


def test_denoiser_any_size_and_registered():
    assert MODEL_NAME in model_names()
    m = DenoiserUNet(width=4, depth=2)
    y = m(torch.randn(2, 3, 13, 22), torch.tensor([0, 999]))
    assert y.shape == (2, 3, 13, 22)
    assert DenoiserUNet(**m.config()).config() == m.config()
    with pytest.raises(ValueError, match="metadata"):
        DenoiserUNet(meta_dim=5)


def test_joint_chips_channels_and_masks():
    data = ToyChips(n=2, size=16, s2=False)
    s, j = data[0], JointChips(data)[0]
    assert j["x"].shape == (3, 16, 16) and j["mask"].dtype == torch.bool
    assert torch.equal(j["x"][:2], s["s1"])
    known = s["valid"] & (s["label"] != IGNORE_INDEX)
    assert torch.equal(j["mask"][2], known) and (j["x"][2][~known] == 0).all()
    assert torch.equal(j["x"][2][known], 2.0 * s["label"][known].float() - 1.0)
    with pytest.raises(ValueError, match="empty"):
        JointChips(ToyChips(n=0, size=8))


def test_objective_masks_the_label_term_and_is_seeded():
    batch = collate([JointChips(ToyChips(n=2, size=16, s2=False))[i] for i in range(2)])
    model = DenoiserUNet(width=4, depth=1)
    obj = DiffusionObjective(balance=1.5, timesteps=50)
    torch.manual_seed(0)
    a = obj(model, batch)[0]
    torch.manual_seed(0)
    assert obj(model, batch)[0] == a
    batch["mask"][:, 2] = False
    _, terms = obj(model, batch)
    assert terms["mse_label"] == 0 and terms["mse_image"] > 0


def killed_then_resumed(out_dir, gen: GeneratorConfig):
    """Train ``gen`` on the toy chips into ``out_dir``, killed after global step 3, then resumed: the result."""
    class Kill(Exception):
        pass

    def kill(**kw):
        if kw["global_step"] == 3:
            raise Kill

    with pytest.raises(Kill):
        train_generator(_toy(), out_dir=out_dir, config=_config(), gen=gen, step_callback=kill)
    return train_generator(_toy(), out_dir=out_dir, config=_config(), gen=gen)


def test_training_resumes_to_identical_weights(tmp_path, trained):
    res = killed_then_resumed(tmp_path / "r", TINY)
    assert res.fit.resumed_from is not None
    a, b = load_generator(trained.out_dir / "model.safetensors"), load_generator(tmp_path / "r" / "model.safetensors")
    for (k, v), w in zip(a.model.state_dict().items(), b.model.state_dict().values(), strict=True):
        assert torch.equal(v, w), k
    # a different balance is a different run: refused on resume
    with pytest.raises(ValueError, match="balance"):
        train_generator(_toy(), out_dir=tmp_path / "r", config=_config(),
                        gen=GeneratorConfig(width=4, depth=1, timesteps=50, balance=3.0))


def test_checkpoint_spec_and_seeded_sampler(trained, tmp_path):
    gen = load_generator(trained.out_dir)
    assert gen.spec.config["method"] == "dakter_generator" and gen.balance == pytest.approx(trained.balance)
    assert gen.timesteps == 50 and tuple(gen.spec.inputs) == ("s1",)
    a = gen.sample(3, size=12, steps=5, seed=7)
    b = gen.sample(3, size=12, steps=5, seed=7)
    c = gen.sample(3, size=12, steps=5, seed=8)
    assert np.array_equal(a.s1, b.s1) and np.array_equal(a.soft, b.soft)
    assert not np.allclose(a.s1, c.s1)
    assert a.s1.shape == (3, 2, 12, 12) and a.soft.shape == (3, 2, 12, 12)
    assert np.allclose(a.soft.sum(axis=1), 1.0) and a.soft.min() >= 0 and a.soft.max() <= 1
    # chip k's noise does not depend on how many chips are drawn with it
    assert torch.equal(chip_noise(1, 8, seed=7, start=2)[0], chip_noise(3, 8, seed=7)[2])
    path = a.save(tmp_path / "g.npz")
    back = Generated.load(path)
    assert np.array_equal(back.s1, a.s1) and back.settings == a.settings
    with pytest.raises(ValueError, match="steps"):
        gen.sample(1, size=12, steps=51)
    assert ddim_timesteps(3, 50) == [49, 24, 0]


def test_segmenter_checkpoint_is_not_a_generator(tmp_path):
    from floodnb.models import ModelSpec, build_model, save_checkpoint

    m = build_model("unet_tiny", in_channels=2)
    spec = ModelSpec(model_name="unet_tiny", model_config=m.config(), inputs=("s1",), bands={"s1": ("VV", "VH")},
                     normalizers={"s1": S1_PRESET}, config={"method": "s1_hand"})
    save_checkpoint(tmp_path / "seg.safetensors", m, spec=spec)
    with pytest.raises(ValueError, match="not a DAKTer generator"):
        load_generator(tmp_path / "seg.safetensors")


def test_denormalize_inverts_the_normaliser():
    from floodnb.data.normalize import Normalizer

    db = np.array([[[-20.0, -5.0]], [[-30.0, -12.0]]], np.float32)
    assert np.allclose(denormalize(Normalizer.from_dict(S1_PRESET)(db), S1_PRESET), db, atol=1e-4)


def _chips(n=4, size=48, seed=0):
    rng = np.random.default_rng(seed)
    label = np.zeros((n, size, size), np.int16)
    label[:, : size // 2] = 1
    vv = np.where(label == 1, -18.0, -9.0) + rng.normal(0, 1.5, label.shape)
    vh = np.where(label == 1, -26.0, -16.0) + rng.normal(0, 1.5, label.shape)
    return np.stack([vv, vh], axis=1).astype(np.float32), label


def test_realism_table_and_label_consistency():
    s1, label = _chips()
    stats = realism_stats(s1, label)
    table = realism_table(stats, stats)
    assert "generated" in table.columns and "simulated" not in table.columns
    finite = np.isfinite(table.difference)
    assert finite.sum() >= 15 and table.passed[finite].all()
    far = realism_table(stats, {**stats, "mean_vv_dry_db": stats["mean_vv_dry_db"] + 5.0})
    assert not far.set_index("statistic").loc["mean_vv_dry_db", "passed"]
    good = label_consistency(s1, label)
    assert good["otsu_water_iou"] > 0.95 and good["chips"] == 4
    assert label_consistency(s1, 1 - label)["otsu_water_iou"] < 0.05


def test_generated_pairs_in_todays_student_loss():
    from floodnb.distill.evaluate import InputPlan
    from floodnb.distill.runner import DistillObjective
    from floodnb.distill.student import STUDENT_KEYS

    s1, label = _chips(n=2, size=16)
    soft = np.stack([1.0 - label, label], axis=1).astype(np.float32)
    pairs = GeneratedPairs(Generated(s1=s1 / 10.0, soft=soft, normalizer=S1_PRESET, settings={}), soft_weight=0.5)
    s = pairs[1]
    assert set(s) >= {"s1", "valid", "label", "soft", "soft_weight"}
    assert (s["label"] == IGNORE_INDEX).all() and s["valid"].all() and float(s["soft_weight"]) == 0.5
    assert pairs.normalizers["s1"].name == "sen1floods11_s1"
    hand = ToyChips(n=2, size=16, s2=False)
    plan = InputPlan(inputs=("s1",))
    from floodnb.models import build_model

    seg = build_model("unet_tiny", in_channels=2)
    obj = DistillObjective(plan=plan, mode="soft")

    def batch(weight):
        weighted = GeneratedPairs(pairs.generated, soft_weight=weight)
        data = ConcatDataset([SelectKeys(hand, STUDENT_KEYS), SelectKeys(weighted, STUDENT_KEYS)])
        return collate([data[i] for i in range(4)])

    # the generated pairs' soft_weight reaches the per-pixel loss: 0 switches their KD term off
    _, on = obj(seg, batch(1.0))
    _, off = obj(seg, batch(0.0))
    assert on["distill"] > 0 and off["distill"] == 0 and on["ce"] == off["ce"]
    only = collate([pairs[i] for i in range(2)])
    _, terms = obj(seg, only)
    assert terms["distill"] > 0 and terms["ce"] == 0
    with pytest.raises(ValueError, match="soft_weight"):
        GeneratedPairs(pairs.generated, soft_weight=-1.0)


def test_device_argument_parsing():
    from floodnb.cli import build_parser
    from floodnb.commands.generate import settings_from_args

    assert resolve_device("cpu") == "cpu" and resolve_device("cuda") == "cuda" and resolve_device("cuda:1") == "cuda:1"
    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="device 'gpu'"):
        resolve_device("gpu")
    args = build_parser().parse_args(["generate", "train", "--device", "cuda", "--balance", "none"])
    s = settings_from_args(args)
    assert s.device == "cuda" and s.balance == "none" and s.train_config().device == "cuda"
    with pytest.raises(ValueError, match="device"):
        settings_from_args(build_parser().parse_args(["generate", "train", "--device", "tpu"]))
    with pytest.raises(SystemExit):
        build_parser().parse_args(["generate", "train", "--balance", "-1"])
    with pytest.raises(ValueError, match="crop"):
        GenerateSettings(crop=8)


def test_cli_train_sample_report(sim_root, tmp_path, capsys):
    from floodnb.cli import main

    common = ["--crop", "32", "--width", "4", "--depth", "1", "--no-progress"]
    assert main(["generate", "train", "--data-root", str(sim_root), "--out-dir", str(tmp_path / "g"),
                 "--epochs", "1", "--steps-per-epoch", "2", "--batch-size", "2", *common]) == 0
    assert (tmp_path / "g" / "best.safetensors").is_file()
    assert main(["generate", "sample", "--checkpoint", str(tmp_path / "g"), "--out", str(tmp_path / "p.npz"),
                 "-n", "3", "--steps", "2", *common]) == 0
    assert len(Generated.load(tmp_path / "p.npz")) == 3
    assert main(["generate", "report", "--checkpoint", str(tmp_path / "g"), "--data-root", str(sim_root),
                 "--out-dir", str(tmp_path / "rep"), "-n", "4", "--steps", "2", *common]) == 0
    out = capsys.readouterr().out
    assert "within tolerance" in out and "otsu_water_iou" in out
    for name in ("realism_table.csv", "consistency.csv", "gallery.png", "generator_report.md", "generated.npz"):
        assert (tmp_path / "rep" / name).is_file(), name
    assert main(["generate", "train", "--data-root", str(sim_root), *common]) != 0
    assert "needs --out-dir" in capsys.readouterr().err
