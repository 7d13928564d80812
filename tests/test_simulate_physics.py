"""floodnb.simulate physics: calibrated class statistics, confusion switches, held-out event, labels."""

from dataclasses import replace

import numpy as np
import pytest
from _real_data import REAL_ROOT as REAL  # shared sample or in-repo fixture (see tests/data)

from floodnb.labels.weak import otsu_label
from floodnb.simulate import SimConfig
from floodnb.simulate.events import EVENTS, heldout_event, training_events
from floodnb.simulate.landcover import FLOODED_VEG
from floodnb.simulate.report import S1_CLASS_RANGES, _Acc, _real_pass
from floodnb.simulate.scene import chip_seed, simulate_chip, simulate_s1_scene

RATES = ("wind_rate", "shadow_rate", "smooth_rate", "flooded_vegetation_rate", "urban_flood_rate")


def _chips(cfg, events, n, seed=1):
    return [simulate_chip(chip_id="x", event=ev, seq=chip_seed(seed, ev, i), config=cfg, vh_threshold=-20.0)
            for ev in events for i in range(n)]


@pytest.fixture(scope="module")
def default_chips():
    return _chips(SimConfig(size=128), training_events(), 2)


def _check_ranges(acc: _Acc, who: str) -> None:
    tab = acc.s1_table(who).set_index(["band", "cls"])
    for key, ((mlo, mhi), (slo, shi)) in S1_CLASS_RANGES.items():
        mean, std = tab.loc[key, "mean_db"], tab.loc[key, "std_db"]
        assert mlo <= mean <= mhi, f"{who} {key} mean {mean:.2f} outside [{mlo}, {mhi}]"
        assert slo <= std <= shi, f"{who} {key} std {std:.2f} outside [{slo}, {shi}]"


def test_stated_ranges_hold_on_the_real_chips():
    acc, info = _real_pass(REAL)
    assert info["n_chips_s1"] >= 6
    _check_ranges(acc, "real")


def test_simulated_class_statistics_fall_in_the_real_ranges(default_chips):
    acc = _Acc()
    for c in default_chips:
        acc.add_s1(c.s1, c.label)
    _check_ranges(acc, "simulated")


def _iou(pred, truth):
    m = pred >= 0
    p, t = pred[m] == 1, truth[m] == 1
    return (p & t).sum() / max(1, (p | t).sum())


def test_weak_labels_are_wrong_in_realistic_proportions_and_s2_beats_s1(default_chips):
    conf = {"otsu": np.zeros(3), "s2": np.zeros(3), "hand": np.zeros(3)}
    for c in default_chips:
        for k, pred in (("otsu", otsu_label(c.s1)), ("s2", c.s2_index), ("hand", c.label)):
            m = pred >= 0
            p, t = pred[m] == 1, c.truth_water[m] == 1
            conf[k] += ((p & t).sum(), (p & ~t).sum(), (~p & t).sum())
    iou = {k: v[0] / v.sum() for k, v in conf.items()}
    assert 0.1 <= iou["otsu"] <= 0.6, iou  # per-chip Otsu on VH: real chips 0.21 (event threshold 0.58)
    assert iou["s2"] >= iou["otsu"] + 0.15, iou
    assert 0.8 <= iou["hand"] < 1.0, iou  # hand labels: uncertain edges, not the truth itself


def test_hand_labels_mark_clouds_and_differ_from_truth_only_near_edges(default_chips):
    from scipy import ndimage

    clouds = [c for c in default_chips if c.cloud_fraction > 0.02]
    assert clouds, "no cloudy chip among the default chips"
    for c in clouds:
        assert (c.label == -1).mean() == pytest.approx(c.cloud_fraction)
    for c in default_chips:
        valid = c.label >= 0
        wrong = valid & (c.label != c.truth_water)
        edge = (ndimage.binary_dilation(c.truth_water == 1, iterations=3)
                & ~ndimage.binary_erosion(c.truth_water == 1, iterations=3))
        assert not (wrong & ~edge).any()


@pytest.mark.parametrize("rate,kind", [("wind_rate", "omission"), ("flooded_vegetation_rate", "omission"),
                                       ("urban_flood_rate", "omission"), ("shadow_rate", "commission"),
                                       ("smooth_rate", "commission")])
def test_each_confusion_switch_moves_the_s1_weak_label_error(rate, kind):
    base = SimConfig(size=64, cloud_scale=0.0, low_water_chip_rate=0.0, fragmentation=0.0,
                     **{r: 0.0 for r in RATES})
    def errors(cfg):
        fp = fn = 0
        for c in _chips(cfg, EVENTS[1:], 2):
            p, t, v = c.s1_otsu == 1, c.truth_water == 1, c.s1_otsu >= 0
            fp += int((p & ~t & v).sum())
            fn += int((~p & t & v).sum())
        return fp, fn
    fp0, fn0 = errors(base)
    fp1, fn1 = errors(replace(base, **{rate: 0.5}))
    if kind == "omission":
        assert fn1 > 1.2 * fn0, (rate, fn0, fn1)
    else:
        assert fp1 > 1.15 * fp0, (rate, fp0, fp1)


def test_heldout_event_really_differs():
    cfg = SimConfig(size=64)
    def stats(ev):
        water = fveg = dry_vh = 0.0
        for i in range(8):
            _, lc, s1, _, _ = simulate_s1_scene(chip_seed(5, ev, i), ev, cfg, 64)
            water += lc.truth_water.mean()
            fveg += (lc.surface == FLOODED_VEG).sum() / max(1, lc.truth_water.sum())
            dry_vh += np.nanmean(s1[1][~lc.truth_water])
        return water / 8, fveg / 8, dry_vh / 8
    held = heldout_event()
    h = stats(held)
    others = np.array([stats(e) for e in training_events()])
    assert h[1] > others[:, 1].max(), "held-out event should have the most flooded vegetation"
    assert h[0] > np.median(others[:, 0]), "held-out event floods more than the median event"
    assert held.s1_date not in {e.s1_date for e in training_events()}


def test_config_changes_only_what_it_governs():
    ev = EVENTS[2]
    a = simulate_chip(chip_id="x", event=ev, seq=chip_seed(0, ev, 0), config=SimConfig(size=64), vh_threshold=-20.0)
    b = simulate_chip(chip_id="x", event=ev, seq=chip_seed(0, ev, 0), config=SimConfig(size=64, cloud_scale=0.0),
                      vh_threshold=-20.0)
    np.testing.assert_array_equal(a.s1, b.s1)
    np.testing.assert_array_equal(a.truth_water, b.truth_water)
    assert b.cloud_fraction == 0.0 and (b.label >= 0).all()
