"""Cloud-masked pool targets (teacher outputs NaN under the S2 cloud mask, ignored by the student) and the
teacher's quality report in clear vs cloud pixels.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from floodnb.distill.engine import TrainConfig
from floodnb.distill.evaluate import InputPlan
from floodnb.distill.pool_quality import PIXEL_SETS, PoolQuality, cloud_mask_of_batch
from floodnb.distill.runner import DistillObjective
from floodnb.distill.student import train_student
from floodnb.distill.teacher import label_pool, pool_info, quality_path, train_teacher
from floodnb.labels.weak import s2_cloud_mask
from floodnb.models import ModelSpec, build_model
from tests._distill_data import S1_NORM, S2_NORM, ToyChips

torch.set_num_threads(1)
CFG = TrainConfig(epochs=1, batch_size=2, lr=1e-2, seed=0, checkpoint_every=0, progress=False)
ROWS = 10  # cloud over the top 10 rows of every pool chip


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    out = tmp_path_factory.mktemp("teacher")
    return train_teacher(train=ToyChips(n=4, seed=1), out_dir=out / "t", model="unet_tiny", config=CFG)


def _raw_s2(sample) -> np.ndarray:
    """TOA reflectance of a toy sample (inverse of its normaliser)."""
    mean, std = np.asarray(S2_NORM["mean"])[:, None, None], np.asarray(S2_NORM["std"])[:, None, None]
    return sample["s2"].numpy() * std + mean


def test_cloud_mask_of_batch_is_the_s2_cloud_mask_of_the_raw_reflectance():
    pool = ToyChips(n=2, seed=3, cloud_rows=ROWS)
    batch = {"s2": torch.stack([pool[i]["s2"] for i in range(2)]), "valid": torch.ones(2, 32, 32, dtype=torch.bool)}
    batch["valid"][1, :3] = False  # no input data: never "cloud"
    got = cloud_mask_of_batch(batch, S2_NORM)
    want = np.stack([s2_cloud_mask(_raw_s2(pool[i])) for i in range(2)])
    assert want[:, :ROWS].all() and not want[:, ROWS:].any()  # the planted cloud, nothing else
    want[1, :3] = False
    assert got.dtype == torch.bool and np.array_equal(got.numpy(), want)
    with pytest.raises(ValueError, match="needs Sentinel-2 in the pool samples"):
        cloud_mask_of_batch({"s1": batch["s2"][:, :2]}, S2_NORM)
    with pytest.raises(ValueError, match="covers bands"):
        cloud_mask_of_batch(batch, {**S2_NORM, "bands": S2_NORM["bands"][:3], "mean": [0.0] * 3, "std": [1.0] * 3})


def test_label_pool_targets_are_nan_exactly_under_the_cloud_mask(teacher, tmp_path):
    pool = ToyChips(n=3, seed=3, prefix="Pool", with_label=False, cloud_rows=ROWS)
    masked = np.asarray(label_pool(teacher, pool, out_path=tmp_path / "m.npy", progress=False), dtype=np.float32)
    plain = np.asarray(label_pool(teacher, pool, out_path=tmp_path / "p.npy", progress=False, mask_clouds=False),
                       dtype=np.float32)
    cloud = np.stack([s2_cloud_mask(_raw_s2(pool[i])) for i in range(3)])
    assert cloud.sum() == 3 * ROWS * 32
    assert np.array_equal(np.isnan(masked).any(axis=1), cloud)  # NaN exactly where the mask is set
    assert np.isfinite(plain).all()
    assert np.array_equal(masked[:, :, ~cloud[0]], plain[:, :, ~cloud[0]])  # untouched elsewhere
    info = pool_info(tmp_path / "m.npy")
    assert info["cloud_mask"]["enabled"] is True and info["cloud_mask"]["masked_pixels"] == int(cloud.sum())
    assert pool_info(tmp_path / "p.npy")["cloud_mask"]["enabled"] is False
    # the teacher's quality vs truth, clear and cloud pixels separately (written beside the targets)
    q = pd.read_csv(quality_path(tmp_path / "m.npy"))
    assert list(q["pixel_set"]) == list(PIXEL_SETS)
    n = q.set_index("pixel_set")["pixels"]
    assert n["cloud"] == cloud.sum() and n["clear"] + n["cloud"] == n["all"] == 3 * 32 * 32
    pd.testing.assert_frame_equal(pd.DataFrame(info["quality"]["rows"]), q)
    # an S1 model labelling a pool without S2: no cloud mask possible, so it must be turned off explicitly
    s1_model = build_model("unet_tiny", in_channels=2)
    s1_spec = ModelSpec(model_name="unet_tiny", model_config=s1_model.config(), inputs=("s1",),
                        bands={"s1": ("VV", "VH")}, normalizers={"s1": S1_NORM})
    no_s2 = ToyChips(n=2, s2=False)
    with pytest.raises(ValueError, match=r"mask_clouds=True\) needs the pool's Sentinel-2"):
        label_pool((s1_model, s1_spec), no_s2, out_path=tmp_path / "x.npy", progress=False)
    assert not (tmp_path / "x.npy").exists()
    label_pool((s1_model, s1_spec), no_s2, out_path=tmp_path / "x.npy", progress=False, mask_clouds=False)
    assert pool_info(tmp_path / "x.npy")["cloud_mask"]["masked_pixels"] == 0


class _Logits(nn.Module):
    """A 'model' whose output is a free logit tensor (B, 2, H, W): gradients show which pixels a loss uses."""

    def __init__(self, b: int, h: int, w: int) -> None:
        super().__init__()
        self.z = nn.Parameter(torch.zeros(b, 2, h, w))

    def forward(self, x, meta=None):
        return self.z


@pytest.mark.parametrize("mode", ["soft", "hard"])
def test_student_pool_loss_ignores_exactly_the_masked_pixels(mode):
    b, h, w = 2, 8, 8
    soft = torch.zeros(b, 2, h, w)
    soft[:, 1], soft[:, 0] = 0.95, 0.05  # confident water (passes the hard threshold)
    cloud = torch.zeros(b, h, w, dtype=torch.bool)
    cloud[:, :3] = True
    soft = torch.where(cloud[:, None], torch.full_like(soft, float("nan")), soft)  # what label_pool writes
    batch = {"s1": torch.zeros(b, 2, h, w), "valid": torch.ones(b, h, w, dtype=torch.bool), "soft": soft}
    model = _Logits(b, h, w)
    loss, terms = DistillObjective(plan=InputPlan(inputs=("s1",)), mode=mode, threshold=0.9)(model, batch)
    assert torch.isfinite(loss) and "distill" in terms
    loss.backward()
    used = model.z.grad.abs().sum(dim=1) > 0
    assert torch.equal(used, ~cloud)


def test_quality_report_separates_clear_and_cloud_pixels():
    ref = torch.zeros(1, 4, 4, dtype=torch.long)
    ref[:, :, :2] = 1  # water in the left half
    cloud = torch.zeros(1, 4, 4, dtype=torch.bool)
    cloud[:, :1] = True  # top row cloudy
    pred = ref.clone()
    pred[cloud] = 1 - pred[cloud]  # wrong everywhere under cloud, right in the clear
    q = PoolQuality()
    q.update(pred, ref, cloud)
    t = q.table().set_index("pixel_set")
    assert t.loc["clear", "water_iou"] == 1.0 and t.loc["cloud", "water_iou"] == 0.0
    assert 0.0 < t.loc["all", "water_iou"] < 1.0
    assert (t.loc["clear", "pixels"], t.loc["cloud", "pixels"], t.loc["all", "pixels"]) == (12, 4, 16)
    assert t.loc["cloud", "share_of_pixels"] == 0.25 and t.loc["clear", "reference_water_fraction"] == 0.5


def test_student_run_config_records_the_pool_cloud_mask(teacher, tmp_path):
    pool = ToyChips(n=2, seed=3, prefix="Pool", with_label=False, cloud_rows=ROWS)
    label_pool(teacher, pool, out_path=tmp_path / "pool.npy", progress=False)
    s = train_student(hand=ToyChips(n=2, seed=1), pool=pool, soft=tmp_path / "pool.npy", out_dir=tmp_path / "s",
                      model="unet_tiny", config=CFG)
    rec = s.spec.config["pool_targets"]
    assert rec["file"] == str(tmp_path / "pool.npy") and rec["cloud_mask"]["enabled"] is True
    assert rec["cloud_mask"]["masked_pixels"] == 2 * ROWS * 32
    assert np.isfinite(s.fit.losses).all()
