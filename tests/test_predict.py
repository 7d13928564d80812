"""floodnb.predict: chip prediction, tile grid/blending, model resolution (real Sen1Floods11 chips)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import xarray as xr
from _real_data import REAL_ROOT, chip_size
from torch import nn

from floodnb.data.io import load_chip
from floodnb.models import build_model
from floodnb.predict import TileGrid, predict_array, predict_chip, resolve_predictor
from floodnb.predict.tiles import RowBlender, predict_tile_row, ramp_weights

S1 = REAL_ROOT / "HandLabeled" / "S1Hand"  # shared sample (512 px chips) or in-repo fixture (64 px windows)
SIZE = chip_size(REAL_ROOT)


def load_s1_chip(chip_id: str) -> xr.Dataset:
    """A real S1 chip via :func:`floodnb.data.io.load_chip` (``s1 (s1_band, y, x)`` float32 dB, CRS)."""
    return load_chip({"s1": str(S1 / f"{chip_id}_S1Hand.tif")})


def s1_norm(x: np.ndarray) -> np.ndarray:
    """The Sen1Floods11 baseline normalisation: clip dB to [-50, 1], (x+50)/51, then standardise."""
    mean = np.array([0.6851, 0.5235], np.float32)[:, None, None]
    std = np.array([0.0820, 0.1102], np.float32)[:, None, None]
    return ((np.clip(x, -50, 1) + 50) / 51 - mean) / std


NORM = {"s1": s1_norm}


def vh_threshold_model(threshold_db: float = -20.0, gain: float = 2.0) -> nn.Conv2d:
    """1x1 conv whose water logit minus dry logit is ``gain * (threshold - VH)`` in dB units
    (acting on identity-normalised input): P(water) = sigmoid(gain * (threshold - VH)).
    """
    m = nn.Conv2d(2, 2, 1)
    with torch.no_grad():
        m.weight.zero_()
        m.bias.zero_()
        m.weight[1, 1, 0, 0] = -gain
        m.bias[1] = gain * threshold_db
    return m


IDENTITY = {"s1": lambda x: x.astype(np.float32)}


def test_predict_chip_on_real_chip_matches_closed_form():
    chip = load_s1_chip("Ghana_97059")
    out = predict_chip(vh_threshold_model(), chip, normalizers=IDENTITY)
    vh = chip["s1"].sel(s1_band="VH").values
    valid = np.isfinite(chip["s1"].values).all(axis=0)
    expected = 1.0 / (1.0 + np.exp(-2.0 * (-20.0 - vh.astype(np.float64))))
    assert out["prob"].dtype == np.float32 and out["pred"].dtype == np.int16
    np.testing.assert_allclose(out["prob"].values[valid], expected[valid], atol=1e-5)
    np.testing.assert_array_equal(out["pred"].values[valid], (vh[valid] < -20.0).astype(np.int16))
    assert (out["pred"].values[~valid] == -1).all()
    assert not np.isnan(out["prob"].values).any()
    # same grid and CRS as the input chip
    np.testing.assert_array_equal(out.x.values, chip.x.values)
    np.testing.assert_array_equal(out.y.values, chip.y.values)
    assert out.rio.crs == chip.rio.crs
    assert out.rio.transform().almost_equals(chip.rio.transform())
    assert out.attrs["chip_id"] == "Ghana_97059" and out.attrs["checkpoint"] == "in-memory model"
    assert out.attrs["bands"] == ["VV", "VH"]


def test_all_nan_chip_gives_nodata_and_no_nan_probabilities():
    from floodnb.data.io import EmptyChipWarning

    with pytest.warns(EmptyChipWarning, match="entirely nodata"):
        chip = load_s1_chip("Paraguay_34417")  # entirely NaN in the real data
    assert np.isnan(chip["s1"].values).all()
    m = build_model("unet_tiny", in_channels=2)
    out = predict_chip(m, chip, normalizers=NORM)
    assert (out["pred"].values == -1).all()
    assert np.isfinite(out["prob"].values).all() and (out["prob"].values == 0).all()


def test_nan_patch_does_not_leak_into_valid_pixels():
    chip = load_s1_chip("Ghana_53713")
    patch = (slice(SIZE * 3 // 16, SIZE * 5 // 16), slice(SIZE * 3 // 8, SIZE // 2))
    chip["s1"][(slice(None), *patch)] = np.nan
    m = build_model("unet_tiny", in_channels=2)
    out = predict_chip(m, chip, normalizers=NORM)
    assert (out["pred"].values[patch] == -1).all()
    valid = np.isfinite(chip["s1"].values).all(axis=0)
    assert (out["pred"].values[valid] >= 0).all()
    assert np.isfinite(out["prob"].values).all()


def test_missing_band_or_role_is_a_clear_error():
    chip = load_s1_chip("Ghana_53713")
    hh = chip.assign_coords(s1_band=["VV", "HH"])
    with pytest.raises(ValueError, match=r"Ghana_53713.*missing \['VH'\]"):
        predict_chip(vh_threshold_model(), hh, normalizers=IDENTITY)
    m = nn.Conv2d(13, 2, 1)
    with pytest.raises(ValueError, match=r"no 's2' variable"):
        predict_chip(m, chip, inputs=("s2",), normalizers={"s2": lambda x: x})
    with pytest.raises(ValueError, match="normalizers"):
        predict_chip(m, chip)


def test_tiled_chip_equals_whole_for_translation_equivariant_model():
    chip = load_s1_chip("Spain_7370579")
    tile = min(96, SIZE // 2)  # several overlapping tiles on either root
    whole = predict_chip(vh_threshold_model(), chip, normalizers=IDENTITY)
    tiled = predict_chip(vh_threshold_model(), chip, normalizers=IDENTITY, tile=tile, overlap=tile // 4, batch=5)
    np.testing.assert_allclose(tiled["prob"].values, whole["prob"].values, atol=1e-6)
    np.testing.assert_array_equal(tiled["pred"].values, whole["pred"].values)


def test_blended_unet_tiles_close_to_whole_array_away_from_edges():
    chip = load_s1_chip("Ghana_53713")["s1"].values
    reps = -(-256 // SIZE)  # a 256 px real array: the chip itself, or the fixture's window repeated
    raw = np.tile(chip, (1, reps, reps))[:, :256, :256]
    torch.manual_seed(0)
    m = build_model("unet_tiny", in_channels=2, norm="batch").eval()
    with torch.no_grad():  # sharpen the random model so probabilities spread over [0, 1]
        m.head.weight.mul_(300)
        m.head.bias.zero_()
    p = resolve_predictor(m, normalizers=NORM)
    whole, _ = predict_array(p, raw, tile=256, overlap=0, batch=4)
    blended, _ = predict_array(p, raw, tile=64, overlap=16, batch=8)
    hard, _ = predict_array(p, raw, tile=64, overlap=0, batch=8)
    inner = (slice(8, -8), slice(8, -8))
    err_blend = np.abs(blended - whole)[inner].max()
    err_hard = np.abs(hard - whole)[inner].max()
    assert whole.std() > 0.01
    assert err_blend < 0.03
    assert err_hard > 5 * err_blend  # seams without overlap are visibly worse


def test_tile_grid_covers_raster_and_weights_partition_unity():
    g = TileGrid.plan(1000, 700, tile=256, overlap=64)
    assert g.row_starts[0] == 0 and g.row_starts[-1] == 1000 - 256
    assert all(b - a <= 192 for a, b in zip(g.row_starts, g.row_starts[1:], strict=False))
    assert g.col_starts[-1] == 700 - 256
    w = ramp_weights(256, overlap=64, ramp_start=True, ramp_end=True)
    assert (w > 0).all() and w[100] == 1.0
    # facing ramps of a regular stride sum to 1
    np.testing.assert_allclose(w[-64:] + w[:64], 1.0, atol=1e-6)
    small = TileGrid.plan(40, 30, tile=512, overlap=64)
    assert (small.tile_h, small.tile_w, small.n_tiles) == (40, 30, 1)
    with pytest.raises(ValueError, match="overlap"):
        TileGrid.plan(100, 100, tile=64, overlap=40)


def test_row_blender_keeps_one_strip_and_emits_rows_in_order():
    g = TileGrid.plan(300, 90, tile=64, overlap=16)
    p = resolve_predictor(vh_threshold_model(), normalizers=IDENTITY)
    rng = np.random.default_rng(0)
    raw = rng.normal(-18, 4, (2, 300, 90)).astype(np.float32)
    blender = RowBlender(g)
    assert blender._acc.shape == (64, 90)
    emitted = []
    for i, s in enumerate(g.row_starts):
        for row0, prob, _valid in blender.add(predict_tile_row(p, raw[:, s:s + 64], g, i, batch=3)):
            emitted.append((row0, prob.shape[0]))
    for row0, prob, _valid in blender.finish():
        emitted.append((row0, prob.shape[0]))
    starts = [r for r, _ in emitted]
    assert starts == sorted(starts) and starts[0] == 0 and sum(n for _, n in emitted) == 300
    with pytest.raises(ValueError, match="expected tile row 0"):
        RowBlender(g).add(predict_tile_row(p, raw[:, g.row_starts[1]:g.row_starts[1] + 64], g, 1, batch=3))


def test_metadata_model_requires_meta():
    m = build_model("unet_tiny", in_channels=2, meta_dim=5)
    chip = load_s1_chip("Ghana_53713")
    with pytest.raises(ValueError, match="meta_dim=5"):
        predict_chip(m, chip, normalizers=NORM)
    out = predict_chip(m, chip, normalizers=NORM, meta=np.zeros(5, np.float32))
    assert out["pred"].shape == (SIZE, SIZE)
