"""floodnb.simulate realism: the statistics on planted arrays, and each simulator switch moving its statistic."""

from dataclasses import replace

import numpy as np
import pytest

from floodnb.simulate import SimConfig
from floodnb.simulate.events import training_events
from floodnb.simulate.landcover import parcels
from floodnb.simulate.scene import chip_seed, simulate_chip
from floodnb.simulate.stats import TOLERANCES, RealismStats, local_enl, realism_table, water_shape

# ---------------------------------------------------------------- statistics on planted arrays

def test_water_shape_counts_components_largest_share_and_edges():
    w = np.zeros((20, 20), bool)
    w[1:5, 1:5] = True  # 16 px, 12 edge px
    w[10:12, 10:13] = True  # 6 px, all edge
    w[18, 18] = True  # 1 px
    w[0:20, 19] = False
    n, largest, edge = water_shape(w)
    assert n == 3
    assert largest == pytest.approx(16 / 23)
    assert edge == pytest.approx((12 + 6 + 1) / 23)
    # the chip border is not an edge: a full mask has no edge pixels
    assert water_shape(np.ones((8, 8), bool)) == (1, 1.0, 0.0)
    assert water_shape(np.zeros((8, 8), bool))[0] == 0


def _chip(vv, vh, label):
    return np.stack([vv, vh]).astype(np.float32), label.astype(np.int16)


def test_correlation_is_within_chip_and_ratio_and_levels_are_pooled():
    rng = np.random.default_rng(0)
    st = RealismStats()
    for offset in (-5.0, 5.0):  # chip-level offsets must not create correlation
        vv = rng.normal(-10.0 + offset, 2.0, (64, 64))
        vh = -(vv - vv.mean()) - 17.0 - offset  # perfectly anti-correlated within the chip
        st.add(*_chip(vv, vh, np.zeros((64, 64))))
    r = st.result()
    assert r["corr_vv_vh_dry"] == pytest.approx(-1.0, abs=1e-6)
    assert np.isnan(r["corr_vv_vh_water"])  # no water anywhere
    assert r["mean_vv_dry_db"] == pytest.approx(-10.0, abs=0.1)
    assert r["mean_vh_dry_db"] == pytest.approx(-17.0, abs=0.1)
    assert r["vv_minus_vh_mean_dry"] == pytest.approx(7.0, abs=0.35)  # every 3rd pixel is sampled
    assert r["low_water_chip_share"] == 1.0 and r["n_chips"] == 2


def test_enl_lag3_noise_floor_and_low_water_share_on_planted_chips():
    rng = np.random.default_rng(1)
    n = 128
    label = np.zeros((n, n), np.int16)
    label[:, : n // 2] = 1  # left half water
    looks = {1: 2.0, 0: 8.0}
    power = np.where(label == 1, rng.gamma(looks[1], 1 / looks[1], (n, n)) * 1e-3,
                     rng.gamma(looks[0], 1 / looks[0], (n, n)) * 1e-2)
    vh = 10 * np.log10(power)
    vv = vh + 7.0
    st = RealismStats()
    st.add(*_chip(vv, vh, label))
    vh2 = 10 * np.log10(rng.gamma(looks[0], 1 / looks[0], (n, n)) * 1e-2)
    st.add(*_chip(vh2 + 7.0, vh2, np.zeros((n, n))))  # a dry chip
    w = np.zeros((n, n), np.int16)
    w[:40] = 1
    vh3 = 10 * np.log10(rng.gamma(2.0, 0.5, (n, n)) * 1e-3)  # water-like power everywhere
    st.add(*_chip(vh3 + 7.0, vh3, w))  # 31 % water
    r = st.result()
    assert r["low_water_chip_share"] == pytest.approx(1 / 3)
    # independent gamma pixels: the 7x7 ENL estimate is within ~25 % of the true looks
    assert r["enl_vh_water"] == pytest.approx(2.0, rel=0.25)
    assert r["enl_vh_dry"] == pytest.approx(8.0, rel=0.25)
    assert abs(r["water_lag3_autocorr"]) < 0.05  # white speckle: no texture at 3 px
    vh_w = np.concatenate([vh[label == 1], vh3[w == 1]])
    assert r["vh_water_p05_db"] == pytest.approx(np.percentile(vh_w, 5), abs=1e-4)
    # a smooth planted texture is autocorrelated at 3 px
    yy, xx = np.mgrid[0:n, 0:n]
    smooth = RealismStats()
    tex = 3 * np.sin(xx / 6.0) + 3 * np.cos(yy / 7.0)
    smooth.add(*_chip(tex - 10, tex - 20, np.ones((n, n))))
    assert smooth.result()["water_lag3_autocorr"] > 0.7


def test_local_enl_uses_only_windows_inside_the_mask():
    p = np.ones((32, 32))
    m = np.zeros((32, 32), bool)
    m[5:20, 5:20] = True
    p[~m] = 1e6  # would ruin the estimate if a window leaked outside the mask
    e = local_enl(p + 1e-9 * np.arange(32 * 32).reshape(32, 32), m)
    assert e.size == (15 - 6) ** 2 and np.all(e > 1e6)


def test_realism_table_passes_and_fails_by_tolerance():
    real = {k: 1.0 for k in TOLERANCES}
    sim = dict(real)
    k_bad, k_ok = "corr_vv_vh_dry", "enl_vh_dry"
    sim[k_bad] = 1.0 + 2 * TOLERANCES[k_bad][0]
    sim[k_ok] = 1.0 + 0.5 * TOLERANCES[k_ok][0]
    sim["edge_to_water"] = float("nan")
    t = realism_table(real, sim).set_index("statistic")
    assert not t.loc[k_bad, "passed"] and t.loc[k_ok, "passed"]
    assert not t.loc["edge_to_water", "passed"]
    assert t.passed.sum() == len(TOLERANCES) - 2
    assert t.loc["water_lag3_autocorr", "fitted"] == False  # noqa: E712 (numpy bool)


# ---------------------------------------------------------------- simulator switches

EVENTS = training_events()[:5]


def _stats(cfg: SimConfig, n: int = 2) -> dict[str, float]:
    st = RealismStats()
    for ev in EVENTS:
        for i in range(n):
            c = simulate_chip(chip_id="x", event=ev, seq=chip_seed(4, ev, i), config=cfg, vh_threshold=-20.0)
            st.add(c.s1, c.label)
    return st.result()


BASE = SimConfig(size=128, cloud_scale=0.0, low_water_chip_rate=0.0)


@pytest.fixture(scope="module")
def base_stats():
    return _stats(BASE)


@pytest.mark.parametrize("change,stat,direction", [
    (dict(texture_coupling=1.0, ratio_spread=0.0), "corr_vv_vh_dry", +1),  # shared texture: VV and VH coupled
    (dict(texture_coupling=1.0, ratio_spread=0.0), "corr_vv_vh_dry_5x5", +1),
    (dict(ratio_spread=2.0), "vv_minus_vh_std_dry", +1),
    (dict(noise_floor_db=None), "vh_water_p05_db", +1),  # no noise-removal residual: no deep floor
    (dict(fragmentation=0.0), "water_components_per_1e5px", -1),
    (dict(fragmentation=0.0), "largest_component_share", +1),
    (dict(fragmentation=0.0), "edge_to_water", -1),
    (dict(low_water_chip_rate=0.9), "low_water_chip_share", +1),
])
def test_each_switch_moves_its_statistic(base_stats, change, stat, direction):
    other = _stats(replace(BASE, **change))
    tol = TOLERANCES[stat][0]
    assert direction * (other[stat] - base_stats[stat]) > 0.5 * tol, (change, stat, base_stats[stat], other[stat])


def test_water_looks_set_the_water_enl():
    # without the noise-removal residual (which dominates dark water), wind and fragmented edges
    # the looks show directly
    quiet = replace(BASE, noise_floor_db=None, fragmentation=0.0, wind_rate=0.0)
    few, many = _stats(replace(quiet, water_enl=2.0)), _stats(replace(quiet, water_enl=12.0))
    assert many["enl_vh_water"] > few["enl_vh_water"] + 0.5, (few["enl_vh_water"], many["enl_vh_water"])
    assert many["enl_vh_dry"] == pytest.approx(few["enl_vh_dry"], rel=0.05)  # land looks unchanged


def test_calibration_spread_varies_the_chip_level():
    def chip_levels(cfg):
        ev = EVENTS[0]
        out = []
        for i in range(8):
            c = simulate_chip(chip_id="x", event=ev, seq=chip_seed(2, ev, i), config=cfg, vh_threshold=-20.0)
            out.append(float(np.nanmean(c.s1[1][c.truth_water == 0]) - np.nanmean(c.s1[0][c.truth_water == 0])))
        return np.std(out)

    off = chip_levels(replace(BASE, calibration_std_db=0.0))
    on = chip_levels(replace(BASE, calibration_std_db=2.0))
    assert on > off + 0.8, (off, on)  # per-band offsets move each chip's VV - VH level


def test_organic_parcels_have_no_square_grid():
    def boundary_columns(organic: bool) -> float:
        a, _ = parcels(np.random.default_rng(5), 256, organic=organic)
        change = a[:, 1:] != a[:, :-1]
        return float(change.any(axis=0).mean())  # share of columns holding any vertical edge

    # a square grid changes only at its cell columns; organic cells (resolved at 2 px) have
    # vertical edges in nearly every other column
    assert boundary_columns(False) < 0.1
    assert boundary_columns(True) > 0.4


def test_all_switches_off_bring_back_the_old_statistics():
    """Turning every realism switch off brings back the old, wrong statistics (the issue's table)."""
    old = replace(BASE, texture_coupling=1.0, ratio_spread=0.0, water_enl=BASE.enl, noise_floor_db=None,
                  calibration_std_db=0.0, fragmentation=0.0, organic_parcels=False)
    s_old, s_new = _stats(old), _stats(BASE)
    assert s_old["corr_vv_vh_dry_5x5"] > s_new["corr_vv_vh_dry_5x5"] + 0.15
    assert s_old["water_components_per_1e5px"] < 0.5 * s_new["water_components_per_1e5px"]
    assert s_old["vh_water_p05_db"] > s_new["vh_water_p05_db"]
