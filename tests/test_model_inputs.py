"""The one spec -> input adapter (floodnb.models.inputs) and the checkpoint dataset / pool builders.

The adapter must give the tensors both old paths gave on the same real chip: the batch path of
training and evaluation (``ChipDataset`` + ``InputPlan``) and the raw-imagery path of prediction
(``Predictor.prepare``); datasets and pool targets built for a checkpoint must use its normalisers.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from floodnb.bands import DRY, IGNORE_INDEX, WATER
from floodnb.data.catalog import build_catalog
from floodnb.data.io import load_chip
from floodnb.data.normalize import Normalizer, get_preset
from floodnb.distill.datasets import checkpoint_inputs, model_dataset, pool_source
from floodnb.distill.inputs import collate
from floodnb.distill.pool_targets import teacher_pool_targets, teacher_spec
from floodnb.distill.teacher import label_pool, pool_info
from floodnb.models import ModelSpec, build_model, save_checkpoint
from floodnb.models.inputs import InputPlan, plan_from_spec
from floodnb.predict import resolve_predictor
from floodnb.predict.chip import chip_input
from floodnb.references import REFERENCES, reference_key


def _shifted_s1() -> Normalizer:
    """An S1 normaliser unlike the preset (as a fitted one would be): other mean and std."""
    d = get_preset("sen1floods11_s1").to_dict()
    d.update(name="fitted_test", mean=[0.6, 0.45], std=[0.05, 0.07], source="fit")
    return Normalizer.from_dict(d)


def _s1_checkpoint(path, norm: Normalizer):
    torch.manual_seed(0)
    model = build_model("unet_tiny", in_channels=2, norm="group")
    spec = ModelSpec(model_name="unet_tiny", model_config=model.config(), inputs=("s1",),
                     bands={"s1": tuple(norm.bands)}, normalizers={"s1": norm.to_dict()})
    return save_checkpoint(path, model, spec=spec), model, spec


def _first_s1_chip(root):
    cat = build_catalog(root)
    return cat[cat["s1_path"].notna()].head(1).reset_index(drop=True)


def test_batch_path_and_prediction_path_give_the_same_tensor_on_a_real_chip(real_root, tmp_path):
    norm = _shifted_s1()
    ckpt, _, spec = _s1_checkpoint(tmp_path / "m.safetensors", norm)
    row = _first_s1_chip(real_root)
    plan = plan_from_spec(spec)

    batch = collate([model_dataset(row, spec, target=None)[0]])  # training / evaluation / pool path
    x_batch, meta = plan(batch)
    predictor = resolve_predictor(ckpt)  # prediction path
    raw = chip_input(load_chip(row.iloc[0], roles=("s1",)), predictor)
    x_pred, valid = predictor.prepare(raw)

    # the formula both old paths applied: the checkpoint's normaliser, NaN (nodata) -> 0
    want = np.nan_to_num(norm(raw.copy()), nan=0.0)
    want[:, ~np.isfinite(raw).all(axis=0)] = 0.0
    assert meta is None and x_batch.shape == (1, 2, *raw.shape[1:])
    np.testing.assert_allclose(x_pred, want, rtol=0, atol=1e-6)
    ok = batch["valid"][0].numpy()
    np.testing.assert_allclose(x_batch[0].numpy()[:, ok], want[:, ok], rtol=0, atol=1e-6)
    np.testing.assert_array_equal(valid, np.isfinite(raw).all(axis=0))
    assert predictor.plan.inputs == plan.inputs and predictor.band_list == ("VV", "VH")
    # the preset would have given other numbers: the checkpoint's normaliser is the one used
    assert not np.allclose(get_preset("sen1floods11_s1")(raw.copy())[:, valid], want[:, valid])


def test_plan_from_spec_records_band_subset_label_conditioning_and_metadata():
    s2 = get_preset("s2_l1c")
    spec = ModelSpec(model_name="unet_tiny", model_config={}, inputs=("s2", "s1"),
                     bands={"s2": ("B4", "B8"), "s1": ("VV", "VH")},
                     normalizers={"s2": s2.to_dict(), "s1": get_preset("sen1floods11_s1").to_dict()},
                     label_conditioning=True, meta_dim=5, config={"band_index": {"s2": [3, 7]}})
    plan = plan_from_spec(spec)
    assert plan.band_list == ("B4", "B8", "VV", "VH") and plan.in_channels == 4
    assert set(plan.normalizer_map()) == {"s2", "s1"} and plan.normalizer_map()["s2"].to_dict() == s2.to_dict()
    b, h, w = 2, 4, 4
    batch = {"s2": torch.arange(b * 13 * h * w, dtype=torch.float32).reshape(b, 13, h, w),
             "s1": torch.ones(b, 2, h, w), "meta": torch.zeros(b, 5, dtype=torch.float64),
             "weak": torch.tensor([WATER, DRY, IGNORE_INDEX, WATER]).repeat(b, h, 1)}
    x, meta = plan(batch)
    assert x.shape == (b, 5, h, w) and meta.dtype == torch.float32 and meta.shape == (b, 5)
    torch.testing.assert_close(x[:, :2], batch["s2"][:, [3, 7]])
    assert x[0, 4, 0].tolist() == [1.0, -1.0, 0.0, 1.0]
    with pytest.raises(ValueError, match="no 'meta'"):
        plan({k: v for k, v in batch.items() if k != "meta"})


def test_plan_without_normalisers_names_the_roles():
    plan = InputPlan(inputs=("s1",), bands={"s1": ("VV", "VH")})
    with pytest.raises(ValueError, match=r"no normaliser for inputs \['s1'\]"):
        plan.prepare(np.zeros((2, 3, 3), np.float32))
    with pytest.raises(ValueError, match="does not record the bands"):
        _ = InputPlan(inputs=("s1",)).band_list
    ok = replace(plan, normalizers={"s1": lambda a: a * 2})
    x, valid = ok.prepare(np.array([[[1.0, np.nan]], [[2.0, 3.0]]], np.float32))
    np.testing.assert_array_equal(x, [[[2.0, 0.0]], [[4.0, 0.0]]])
    assert valid.tolist() == [[True, False]]


def test_checkpoint_inputs_use_the_checkpoint_normalisers_not_the_presets(real_root, tmp_path):
    norm = _shifted_s1()
    _, _, spec = _s1_checkpoint(tmp_path / "m.safetensors", norm)
    feed = checkpoint_inputs(spec)
    assert feed["inputs"] == ("s1",) and feed["weak"] is None and feed["with_meta"] is False
    assert feed["normalizers"]["s1"].to_dict() == norm.to_dict()
    row = _first_s1_chip(real_root)
    mine, preset = model_dataset(row, spec, target=None), model_dataset(row, spec, target=None, normalizers=None)
    assert mine.normalizers["s1"].to_dict() == norm.to_dict()
    assert preset.normalizers["s1"].name == "sen1floods11_s1"
    assert not torch.equal(mine[0]["s1"], preset[0]["s1"])
    conditioned = replace(spec, label_conditioning=True, meta_dim=5)
    assert checkpoint_inputs(conditioned, weak_role="s1_otsu")["weak"] == "s1_otsu"
    assert checkpoint_inputs(conditioned)["with_meta"] is True


def test_teacher_pool_targets_read_the_pool_with_the_teacher_normalisers(tiny_dataset, tmp_path):
    norm = _shifted_s1()
    ckpt, model, spec = _s1_checkpoint(tmp_path / "t.safetensors", norm)
    pool_cat = pool_source(build_catalog(tiny_dataset), split="weak")
    assert teacher_spec(ckpt).normalizers == spec.normalizers == teacher_spec((model, spec)).normalizers
    probs = np.asarray(teacher_pool_targets(ckpt, pool_cat, out_path=tmp_path / "pool.npy", progress=False,
                                            mask_clouds=False), dtype=np.float32)
    assert probs.shape[0] == len(pool_cat) and pool_info(tmp_path / "pool.npy")["chip_ids"] == list(pool_cat["chip_id"])
    # same numbers as label_pool on a pool dataset given the checkpoint's normaliser by hand
    from floodnb.data.torch import ChipDataset

    by_hand = ChipDataset(pool_cat, inputs=("s1",), target=None, weak=None, normalizers={"s1": norm})
    ref = np.asarray(label_pool(ckpt, by_hand, out_path=tmp_path / "ref.npy", progress=False, mask_clouds=False),
                     dtype=np.float32)
    np.testing.assert_array_equal(np.isnan(probs), np.isnan(ref))
    np.testing.assert_array_equal(np.nan_to_num(probs), np.nan_to_num(ref))
    # the preset (what `floodnb train student` and the experiment used before) gives other targets
    preset = ChipDataset(pool_cat, inputs=("s1",), target=None, weak=None)
    old = np.asarray(label_pool(ckpt, preset, out_path=tmp_path / "old.npy", progress=False, mask_clouds=False),
                     dtype=np.float32)
    assert not np.allclose(np.nan_to_num(probs), np.nan_to_num(old))


def test_one_reference_map_names_sample_keys_and_chip_variables():
    assert REFERENCES == {"label": "label", "truth_water": "truth", "truth": "truth", "weak": "weak"}
    assert [reference_key(r, "chip") for r in ("label", "truth_water", "truth")] == ["label", "truth_water",
                                                                                      "truth_water"]
    with pytest.raises(ValueError, match=r"expected one of \('label', 'truth_water', 'truth'\)"):
        reference_key("weak", "chip")
    with pytest.raises(ValueError, match="reference='hand'"):
        reference_key("hand")


def test_prepare_in_place_only_when_asked_and_never_touches_the_callers_array_otherwise():
    """InputPlan.prepare: a band with data beside a band without makes the pixel nodata (all bands 0);
    inplace=True normalises in the raw array's own memory with the same values; otherwise the raw array
    is left as it was, also with a normaliser that returns its input unchanged.
    """
    norm = get_preset("sen1floods11_s1")
    rng = np.random.default_rng(0)
    raw = rng.normal(-15, 5, (2, 6, 7)).astype(np.float32)
    raw[1, 2, 3] = np.nan
    raw[0, 4, 5] = np.inf
    keep = raw.copy()
    plan = InputPlan(inputs=("s1",), bands={"s1": ("VV", "VH")}, normalizers={"s1": norm})
    x, valid = plan.prepare(raw)
    np.testing.assert_array_equal(raw, keep)
    assert not valid[2, 3] and not valid[4, 5] and valid.sum() == 40
    assert (x[:, 2, 3] == 0).all() and (x[:, 4, 5] == 0).all() and np.isfinite(x).all()
    np.testing.assert_allclose(x[:, valid], norm(keep)[:, valid], rtol=1e-6)
    mine = keep.copy()
    x2, valid2 = plan.prepare(mine, inplace=True)
    assert np.shares_memory(x2, mine)
    np.testing.assert_array_equal(valid2, valid)
    np.testing.assert_allclose(x2, x, rtol=1e-6, atol=1e-6)
    same = InputPlan(inputs=("s1",), bands={"s1": ("VV", "VH")}, normalizers={"s1": lambda a: a})
    raw2 = keep.copy()
    x3, _ = same.prepare(raw2)
    np.testing.assert_array_equal(raw2, keep)  # the identity's output is raw2 itself: copied before zeroing
    assert x3[0, 2, 3] == 0 and x3[0, 4, 5] == 0 and x3[1, 0, 0] == keep[1, 0, 0]
