"""Per-chip simulated metadata: dates and positions vary within an event and move the flood; the catalog reads
per-chip dates (falling back to event dates); the shuffled-metadata ablation permutes, is seeded, and leaves the
unshuffled path unchanged.
"""

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

from floodnb.data import layout
from floodnb.data.catalog import build_catalog
from floodnb.data.metadata import meta_vector, read_chip_dates
from floodnb.data.torch import ChipDataset
from floodnb.simulate import SimConfig
from floodnb.simulate.acquisition import draw_acquisition
from floodnb.simulate.events import event_by_name, training_events
from floodnb.simulate.scene import chip_seed, simulate_s1_scene

CFG = SimConfig(size=64)


# ---------------------------------------------------------------- acquisitions


def test_acquisitions_spread_over_the_event_window_and_area_and_are_seeded():
    ev = event_by_name("Ghana")
    acq = [draw_acquisition(0, ev, i, CFG) for i in range(300)]
    days = np.array([a.days_from_peak for a in acq])
    assert days.min() == -CFG.days_before_peak and days.max() == CFG.days_after_peak
    assert len({a.s2_date for a in acq}) == CFG.days_before_peak + CFG.days_after_peak + 1
    # S1/S2 dates keep the event's S1-S2 gap (one day for Ghana) and are the peak date shifted by days_from_peak
    a0 = next(a for a in acq if a.days_from_peak == 0)
    assert (a0.s1_date, a0.s2_date) == (ev.s1_date, ev.s2_date)
    east = np.array([a.east_km for a in acq])
    north = np.array([a.north_km for a in acq])
    assert east.max() - east.min() > 0.9 * CFG.event_extent_km and north.max() - north.min() > 0.9 * CFG.event_extent_km
    assert np.ptp([a.lat for a in acq]) > 0.3  # ~40 km of latitude
    assert draw_acquisition(0, ev, 7, CFG) == acq[7]
    assert draw_acquisition(1, ev, 7, CFG) != acq[7]
    # the multiplier is normalised to mean 1 over the window and area: the event's mean flood is kept
    big = np.array([draw_acquisition(0, ev, i, CFG).level_multiplier for i in range(4000)])
    assert big.mean() == pytest.approx(1.0, abs=0.05) and big.min() < 0.2 and big.max() > 2.5


def test_switches_off_give_one_date_one_place_and_no_effect():
    off = replace(CFG, days_before_peak=0, days_after_peak=0, event_extent_km=0.0, recession_days=None,
                  floodplain_width_km=None)
    ev = event_by_name("India")
    for i in range(20):
        a = draw_acquisition(3, ev, i, off)
        assert (a.s1_date, a.s2_date, a.lat, a.lon) == (ev.s1_date, ev.s2_date, ev.lat, ev.lon)
        assert a.level_multiplier == 1.0
    # each effect alone: recession depends on the date only, position on the place only
    rec = replace(CFG, floodplain_width_km=None)
    pos = replace(CFG, recession_days=None)
    for i in range(20):
        a, b = draw_acquisition(0, ev, i, rec), draw_acquisition(0, ev, i, pos)
        assert (a.days_from_peak, a.east_km) == (b.days_from_peak, b.east_km)  # the same draws
    ma = {draw_acquisition(0, ev, i, rec).days_from_peak: draw_acquisition(0, ev, i, rec).level_multiplier
          for i in range(200)}
    assert ma[0] > ma[10] > ma[CFG.days_after_peak]
    with pytest.raises(ValueError, match="recession_days"):
        SimConfig(recession_days=0.0)
    with pytest.raises(ValueError, match="days_after_peak"):
        SimConfig(days_after_peak=-1)


def _flood_px(config: SimConfig, keep) -> tuple[int, int]:
    """Flood pixels of the chips whose acquisition passes ``keep``: (with config's effects, with none)."""
    none = replace(config, recession_days=None, floodplain_width_km=None)
    on = off = 0
    for ev in training_events()[:5]:
        for i in range(40):
            acq = draw_acquisition(0, ev, i, config)
            if not keep(acq):
                continue
            for cfg, mult in ((config, acq.level_multiplier), (none, 1.0)):
                terrain = simulate_s1_scene(chip_seed(0, ev, i), ev, cfg, 64, level_multiplier=mult)[0]
                n = int(terrain.flood.sum())
                on, off = (on + n, off) if cfg is config else (on, off + n)
    return on, off


def test_recession_floods_chips_near_the_peak_more_and_late_chips_less():
    rec = replace(CFG, floodplain_width_km=None)
    early_on, early_off = _flood_px(rec, lambda a: abs(a.days_from_peak) <= 2)
    late_on, late_off = _flood_px(rec, lambda a: a.days_from_peak >= 18)
    assert early_on > early_off > 0
    assert late_on < late_off


def test_chips_near_the_floodplain_axis_flood_more_than_far_ones():
    pos = replace(CFG, recession_days=None)
    near_on, near_off = _flood_px(pos, lambda a: abs(a.cross_km) <= 4.0)
    far_on, far_off = _flood_px(pos, lambda a: abs(a.cross_km) >= 14.0)
    assert near_on > near_off > 0
    assert far_on < far_off


# ---------------------------------------------------------------- what the dataset and the catalog carry


def test_simulated_catalog_has_per_chip_dates_and_positions(sim_root):
    cat = build_catalog(sim_root)
    table = pd.read_csv(sim_root / "floodnb_simulation_chips.csv").set_index("chip_id")
    dates = read_chip_dates(layout.chip_dates_path(sim_root))
    assert set(dates.index) == set(cat["chip_id"])
    for _, row in cat.iterrows():
        assert row["s2_date"] == table.at[row["chip_id"], "s2_date"].replace("/", "-")
        assert row["lat"] == pytest.approx(table.at[row["chip_id"], "lat"], abs=1e-6)
    per_event = cat.groupby("event").agg(dates=("s2_date", "nunique"), lat=("lat", "nunique"), n=("chip_id", "size"))
    multi = per_event[per_event["n"] >= 2]
    assert len(multi) and (multi["dates"] > 1).any() and (multi["lat"] == multi["n"]).all()
    # the event metadata keeps the event (peak) date; its polygon is the bounding box of its chips
    import json

    for feat in json.loads(layout.metadata_path(sim_root).read_text())["features"]:
        ev = event_by_name(feat["properties"]["location"])
        assert feat["properties"]["s2_date"] == ev.s2_date
        mine = cat[cat["event"] == ev.name]
        if len(mine):
            ring = np.array(feat["geometry"]["coordinates"][0])
            assert ring[:, 0].min() < mine["lon"].min() <= mine["lon"].max() < ring[:, 0].max()
            assert ring[:, 1].min() < mine["lat"].min() <= mine["lat"].max() < ring[:, 1].max()


def test_chip_dates_override_event_dates_and_fall_back(tiny_dataset):
    before = build_catalog(tiny_dataset).set_index("chip_id")
    first, second = before.index[0], before.index[1]
    path = layout.chip_dates_path(tiny_dataset)
    path.write_text(f"chip_id,s1_date,s2_date\n{first},2020/01/02,2020-01-03\n{second},,\n")
    after = build_catalog(tiny_dataset).set_index("chip_id")
    assert (after.at[first, "s1_date"], after.at[first, "s2_date"]) == ("2020-01-02", "2020-01-03")
    for cid in before.index[1:]:  # empty cells and unlisted chips keep the event dates
        assert (after.at[cid, "s1_date"], after.at[cid, "s2_date"]) == (before.at[cid, "s1_date"],
                                                                          before.at[cid, "s2_date"])
    path.write_text(f"chip_id,s1_date\n{first},2020/01/02\n")
    with pytest.raises(ValueError, match=r"floodnb_chip_dates.csv: missing columns \['s2_date'\]"):
        build_catalog(tiny_dataset)
    path.write_text(f"chip_id,s1_date,s2_date\n{first},2020/13/45,\n")
    with pytest.raises(ValueError, match="floodnb_chip_dates.csv"):
        build_catalog(tiny_dataset)
    path.write_text(f"chip_id,s1_date,s2_date\n{first},,\n{first},,\n")
    with pytest.raises(ValueError, match="more than once"):
        build_catalog(tiny_dataset)


# ---------------------------------------------------------------- the shuffled-metadata ablation


def _metas(ds) -> np.ndarray:
    return np.stack([ds[i]["meta"].numpy() for i in range(len(ds))])


def test_shuffle_meta_permutes_within_the_dataset_and_is_seeded(sim_root):
    cat = build_catalog(sim_root)
    kw = dict(inputs=("s2",), with_meta=True, split="train")
    own = ChipDataset(cat, **kw)
    a, a2, b = (ChipDataset(cat, shuffle_meta=s, **kw) for s in (5, 5, 6))
    m_own, m_a, m_a2, m_b = _metas(own), _metas(a), _metas(a2), _metas(b)
    # unshuffled: each chip's own metadata, as before the option existed
    for i, r in enumerate(own.rows):
        row = cat.iloc[r]
        np.testing.assert_allclose(m_own[i], meta_vector(date=row["s2_date"], lat=row["lat"], lon=row["lon"]))
        assert own.meta_row(r) == r
    # shuffled: the same vectors (a permutation of the split's rows), another assignment, seeded
    assert sorted(a.meta_row(r) for r in a.rows) == sorted(own.rows.tolist())
    np.testing.assert_allclose(np.sort(m_a, axis=0), np.sort(m_own, axis=0))
    assert not np.allclose(m_a, m_own)
    np.testing.assert_array_equal(m_a, m_a2)
    assert not np.array_equal(m_a, m_b)
    # pixels and labels are untouched
    assert torch.equal(a[0]["s2"], own[0]["s2"]) and a[0]["chip_id"] == own[0]["chip_id"]
    with pytest.raises(ValueError, match="shuffle_meta"):
        ChipDataset(cat, inputs=("s2",), split="train", shuffle_meta=1)


def test_train_teacher_checks_and_records_the_metadata_shuffle(sim_root, tmp_path):
    from floodnb.distill.engine import TrainConfig
    from floodnb.distill.teacher import train_teacher
    from floodnb.experiment.training import FixedLength

    cat = build_catalog(sim_root)
    kw = dict(inputs=("s2",), with_meta=True, crop=32)
    train = FixedLength(ChipDataset(cat, split="train", shuffle_meta=3, augment=True, **kw), 2, seed=0)
    valid = ChipDataset(cat, split="valid", shuffle_meta=3, **kw)
    cfg = TrainConfig(epochs=1, batch_size=2, progress=False)
    with pytest.raises(ValueError, match="shuffle_meta"):  # the datasets were shuffled, the option says not
        train_teacher(train=train, valid=valid, out_dir=tmp_path / "x", metadata=True, model="unet_tiny",
                      config=cfg, model_kw={"width": 4})
    with pytest.raises(ValueError, match="needs metadata=True"):
        train_teacher(train=train, valid=valid, out_dir=tmp_path / "y", metadata=False, model="unet_tiny",
                      config=cfg, shuffle_metadata=3, model_kw={"width": 4})
    run = train_teacher(train=train, valid=valid, out_dir=tmp_path / "t", metadata=True, model="unet_tiny",
                        config=cfg, shuffle_metadata=3, model_kw={"width": 4})
    assert run.spec.config["shuffle_metadata"] == 3 and run.spec.config["metadata"] is True


def test_shuffled_rows_depend_on_their_own_teacher():
    from floodnb.experiment.rows import ROWS, resolve_rows

    assert resolve_rows("student_meta_shuffled") == ["teacher_s2_meta_shuffled", "student_meta_shuffled"]
    assert ROWS["teacher_s2_meta_shuffled"].group == "teacher"


def test_cached_simulations_of_an_older_simulator_are_not_reused(sim_root, tmp_path):
    import json

    from floodnb.runs.simulation import SimRequest, manifest_settings
    from floodnb.simulate.config import SIM_VERSION
    from floodnb.simulate.writer import MANIFEST

    assert manifest_settings(sim_root) == SimRequest(n_hand=12, n_weak=6, size=32, seed=0)
    assert manifest_settings(sim_root).sim_version == SIM_VERSION >= 2
    old = json.loads((sim_root / MANIFEST).read_text())
    del old["sim_version"]  # a manifest written before per-chip acquisitions existed
    (tmp_path / MANIFEST).write_text(json.dumps(old))
    assert manifest_settings(tmp_path).sim_version == 1
    assert manifest_settings(tmp_path) != SimRequest(n_hand=12, n_weak=6, size=32, seed=0)
