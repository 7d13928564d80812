"""floodnb.labels.weak: Otsu on VH and Sentinel-2 water-index weak labels."""

import numpy as np
import pytest

from floodnb.labels.weak import mndwi, ndvi, ndwi, otsu_label, otsu_threshold, s2_cloud_mask, s2_index_label


def test_otsu_threshold_splits_bimodal_values():
    rng = np.random.default_rng(0)
    v = np.concatenate([rng.normal(-25, 1.5, 4000), rng.normal(-15, 1.5, 6000), [np.nan, np.inf]])
    t = otsu_threshold(v)
    assert -22 < t < -18


def test_otsu_threshold_errors_and_constant():
    with pytest.raises(ValueError, match="no finite value"):
        otsu_threshold(np.array([np.nan, np.nan]))
    assert otsu_threshold(np.full(5, -12.0)) == -12.0


def test_otsu_label_values_nodata_and_threshold():
    s1 = np.full((2, 4, 4), -10.0, dtype=np.float32)
    s1[1, :2] = -25.0
    s1[1, 3, 3] = np.nan
    lab = otsu_label(s1)
    assert lab.dtype == np.int16
    assert (lab[:2] == 1).all() and lab[3, 3] == -1 and (lab[2] == 0).all()
    assert (otsu_label(s1, threshold=-30.0)[:2] == 0).all()
    assert (otsu_label(np.full((2, 3, 3), np.nan)) == -1).all()
    with pytest.raises(ValueError, match=r"\(2, H, W\)"):
        otsu_label(np.zeros((3, 4, 4)))


def _s2(water: bool) -> np.ndarray:
    spec = ([0.12, 0.095, 0.08, 0.06, 0.05, 0.035, 0.032, 0.028, 0.025, 0.008, 0.0008, 0.012, 0.008] if water else
            [0.13, 0.105, 0.10, 0.08, 0.13, 0.25, 0.30, 0.31, 0.33, 0.06, 0.0012, 0.20, 0.11])
    return np.broadcast_to(np.array(spec, np.float32)[:, None, None], (13, 2, 2)).copy()


def test_indices_have_expected_signs():
    assert (ndwi(_s2(True)) > 0.3).all() and (ndwi(_s2(False)) < 0).all()
    assert (mndwi(_s2(True)) > 0.5).all() and (mndwi(_s2(False)) < 0).all()
    assert (ndvi(_s2(False)) > 0.5).all()


def test_s2_index_label_water_dry_cloud_nodata():
    s2 = np.concatenate([_s2(True), _s2(False)], axis=2)  # (13, 2, 4)
    s2[:, 0, 0] = 0.45  # bright cloud
    s2[:, 1, 1] = np.nan
    lab = s2_index_label(s2)
    assert lab.dtype == np.int16
    assert lab[0, 0] == -1 and lab[1, 1] == -1
    assert lab[0, 1] == 1 and lab[1, 0] == 1
    assert (lab[:, 2:] == 0).all()
    assert s2_cloud_mask(s2)[0, 0] and not s2_cloud_mask(s2)[0, 1]
    assert (s2_index_label(s2, cloud_mask=False)[0, 0] != -1)
    assert (s2_index_label(s2, index="ndwi")[:, 2:] == 0).all()


def test_s2_index_label_rejects_digital_numbers_and_bad_shapes():
    with pytest.raises(ValueError, match="digital numbers"):
        s2_index_label(_s2(True) * 10000)
    with pytest.raises(ValueError, match=r"\(13, H, W\)"):
        s2_index_label(np.zeros((4, 2, 2)))
    with pytest.raises(ValueError, match="index must be one of"):
        s2_index_label(_s2(True), index="ndbi")
