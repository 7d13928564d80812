"""Teacher, pool labelling, student, baselines and evaluation end to end on tiny data,
plus the bad inputs of issue 4 item 10.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr
from _real_data import REAL_ROOT as REAL  # shared sample or in-repo fixture

from floodnb.bands import IGNORE_INDEX
from floodnb.distill.baselines import EventThresholdWarning, otsu_baseline, train_baseline
from floodnb.distill.engine import TrainConfig
from floodnb.distill.evaluate import evaluate
from floodnb.distill.inputs import collate
from floodnb.distill.runner import EdgeOption
from floodnb.distill.student import train_student
from floodnb.distill.teacher import label_pool, pool_chip_ids, train_teacher
from tests._distill_data import ToyChips

torch.set_num_threads(1)
CFG = TrainConfig(epochs=1, batch_size=2, lr=1e-2, seed=0, checkpoint_every=0, progress=False)


def test_teacher_pool_student_chain(tmp_path):
    hand, valid = ToyChips(n=4, seed=1), ToyChips(n=2, seed=2)
    pool = ToyChips(n=4, seed=3, prefix="Pool", with_label=False)
    t = train_teacher(train=hand, valid=valid, out_dir=tmp_path / "teacher", inputs=("s2", "s1"),
                      s2_bands=("B3", "B8", "B11"), model="unet_tiny", metadata=True, label_conditioning=True,
                      config=CFG, evaluate_on={"valid": valid})
    assert t.spec.in_channels == 3 + 2 + 1 and t.spec.meta_dim == 5
    assert t.spec.bands == {"s2": ("B3", "B8", "B11"), "s1": ("VV", "VH")}
    metrics = json.loads((tmp_path / "teacher" / "metrics.json").read_text())
    assert 0.0 <= metrics["splits"]["valid"]["water_iou"] <= 1.0
    table = pd.read_csv(tmp_path / "teacher" / "per_chip.csv")
    assert list(table["chip_id"]) == ["Toy_0", "Toy_1"] and "water_iou" in table
    probs = label_pool(tmp_path / "teacher" / "best.safetensors", pool, out_path=tmp_path / "pool.npy", progress=False)
    assert probs.shape == (4, 2, 32, 32) and probs.dtype == np.float16
    assert np.allclose(np.asarray(probs, dtype=np.float32).sum(1), 1.0, atol=2e-3)
    assert pool_chip_ids(tmp_path / "pool.npy") == [f"Pool_{i}" for i in range(4)]
    for mode in ("soft", "hard"):
        s = train_student(hand=hand, pool=pool, soft=tmp_path / "pool.npy", valid=valid, out_dir=tmp_path / mode,
                          mode=mode, temperature=2.0, threshold=0.8, edge=EdgeOption(width=1), model="unet_tiny",
                          config=CFG, evaluate_on={"test": valid}, reference="truth_water",
                          pool_weights=np.ones((4, 32, 32), np.float32))
        assert s.spec.inputs == ("s1",) and s.spec.meta_dim == 0
        assert s.fit.history[0]["steps"] == 4  # 4 hand + 4 pool chips, batch 2
        assert s.metrics["splits"]["test"]["reference"] == "truth_water"
        log = [json.loads(x) for x in (tmp_path / mode / "train_log.jsonl").read_text().splitlines()]
        assert all("distill" in r and np.isfinite(r["loss"]) for r in log)


def test_baselines_and_evaluate_checkpoint(tmp_path):
    train, test = ToyChips(n=4, seed=4), ToyChips(n=3, seed=5)
    for kind in ("s1_weak", "s1_hand"):
        r = train_baseline(kind=kind, train=train, valid=test, out_dir=tmp_path / kind, model="unet_tiny", config=CFG)
        assert r.spec.config["kind"] == kind
    metrics, per_chip = evaluate(tmp_path / "s1_weak" / "best.safetensors", {"test": test, "valid": train},
                                 reference="label", progress=False)
    assert set(metrics) == {"test", "valid"} and metrics["test"]["chips"] == 3
    assert list(per_chip["split"]) == ["test"] * 3 + ["valid"] * 4


def _xr_chip(cid, event, vh_water, vh_dry, *, nan=False, vh_thresh=None):
    rng = np.random.default_rng(len(cid))
    water = np.zeros((16, 16), bool)
    water[4:12, 4:12] = True
    vh = np.where(water, vh_water, vh_dry) + rng.normal(0, 0.5, (16, 16))
    s1 = np.stack([vh + 6, vh]).astype(np.float32)
    if nan:
        s1[:] = np.nan
    attrs = {"chip_id": cid, "event": event, **({"vh_thresh": vh_thresh} if vh_thresh is not None else {})}
    return xr.Dataset({"s1": (("s1_band", "y", "x"), s1), "label": (("y", "x"), water.astype(np.int16))}, attrs=attrs)


def test_otsu_baseline_modes():
    chips = [_xr_chip("A_1", "A", -25, -12), _xr_chip("A_2", "A", -24, -11),
             _xr_chip("B_1", "B", -22, -8, vh_thresh=-15.0), _xr_chip("B_2", "B", -22, -8, nan=True)]
    m, t = otsu_baseline(chips, mode="chip")
    assert m["water_iou"] > 0.95 and m["method"] == "otsu_chip"
    assert np.isnan(t.set_index("chip_id").loc["B_2", "water_iou"])  # no S1: nothing scored
    with pytest.warns(EventThresholdWarning, match=r"without a metadata VH threshold.*: A \(") as rec:
        m, t = otsu_baseline(chips, mode="event")
    assert " B (" not in str(rec[0].message)  # only event A lacks one
    th = t.set_index("chip_id")["vh_threshold_db"]
    assert th["B_1"] == -15.0 and th["A_1"] == th["A_2"] and -25 < th["A_1"] < -11
    assert dict(zip(t["chip_id"], t["threshold_source"], strict=True)) == {
        "A_1": "otsu_pooled", "A_2": "otsu_pooled", "B_1": "metadata", "B_2": "metadata"}
    assert m["event_thresholds"]["B"] == {"vh_threshold_db": -15.0, "source": "metadata"}
    m, t = otsu_baseline(chips, mode="event", event_thresholds={"A": -18.0})  # given: no fallback, no warning
    assert set(t["threshold_source"]) == {"given", "metadata"} and m["event_thresholds"]["A"]["vh_threshold_db"] == -18
    m, _ = otsu_baseline(chips, mode="fixed", threshold=-30.0)
    assert m["water_iou"] == 0.0 or np.isnan(m["water_iou"])
    with pytest.raises(ValueError, match="no chips"):
        otsu_baseline([], mode="chip")


def test_otsu_baseline_on_real_chips(shared_sample):
    from floodnb.data.catalog import build_catalog

    cat = build_catalog(REAL)
    cat = cat[cat["s1_path"].notna() & cat["label_path"].notna()]
    from floodnb.data.io import EmptyChipWarning

    with pytest.warns(EmptyChipWarning) as rec:  # the reader says which real chips are empty
        m, t = otsu_baseline(cat, mode="chip")
    said = " ".join(str(w.message) for w in rec)
    assert "Paraguay_34417" in said and "Ghana_83483" in said
    from _real_data import chip_roles

    assert m["chips"] == len(cat) == sum({"s1", "label"} <= r for r in chip_roles(REAL).values()) >= 7
    assert 0.0 < m["water_iou"] < 1.0 and m["water_recall"] > 0.5  # VH Otsu finds most hand-labelled water
    with pytest.warns(EmptyChipWarning):
        me, te = otsu_baseline(cat, mode="event")
    assert te.set_index("chip_id").loc["Paraguay_34417", "valid_pixels"] == 0 and np.isfinite(me["water_iou"])
    # the event threshold is the metadata's VH_thresh (Sen1Floods11_Metadata.geojson), not Otsu over the chips:
    # global water IoU over the chips with valid pixels 0.5765 (Otsu pooled over the split's chips gave 0.221)
    assert (te["threshold_source"] == "metadata").all()
    assert dict(zip(te["chip_id"], te["vh_threshold_db"], strict=True)) == pytest.approx(
        {c: cat.set_index("chip_id").at[c, "vh_thresh"] for c in te["chip_id"]})
    assert me["event_thresholds"]["Spain"] == {"vh_threshold_db": -25.13, "source": "metadata"}
    from floodnb.data.io import load_chip
    from floodnb.metrics import ConfusionAccumulator

    acc = ConfusionAccumulator()  # the same score computed directly: water where VH < the event's VH_thresh
    for _, row in cat.iterrows():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", EmptyChipWarning)
            c = load_chip(row, roles=("s1", "label"))
        s1 = c["s1"].values
        acc.update(np.where(np.isfinite(s1).all(0), (s1[1] < row["vh_thresh"]).astype(np.int16), -1), c["label"].values)
    assert me["water_iou"] == pytest.approx(acc.summary()["water_iou"], abs=1e-9)
    if shared_sample:
        assert me["water_iou"] == pytest.approx(0.5765, abs=1e-3)
    row = t.set_index("chip_id").loc["Paraguay_34417"]  # S1 entirely NaN
    assert row["valid_pixels"] == 0


def test_otsu_event_reports_missing_metadata_threshold(tmp_path):
    from conftest import make_tiny_dataset

    from floodnb.data.catalog import build_catalog
    from floodnb.data.layout import metadata_path

    root = make_tiny_dataset(tmp_path / "tiny", n_hand=4, n_weak=0, unassigned=0, missing_in_csv=0)
    meta = metadata_path(root, layout="official")
    doc = json.loads(meta.read_text())
    for f in doc["features"]:
        if f["properties"]["location"] == "Cambodia":
            del f["properties"]["VH_thresh"]
    meta.write_text(json.dumps(doc))
    cat = build_catalog(root)
    with pytest.warns(EventThresholdWarning, match=r"Mekong \(-?\d+\.\d\d dB\); using Otsu over each event's pooled"):
        m, t = otsu_baseline(cat, mode="event")
    src = t.set_index("chip_id")["threshold_source"]
    assert set(src[[c for c in src.index if c.startswith("Mekong")]]) == {"otsu_pooled"}
    assert set(src[[c for c in src.index if c.startswith("Spain")]]) == {"metadata"}
    assert m["event_thresholds"]["Spain"] == {"vh_threshold_db": -25.13, "source": "metadata"}
    assert m["event_thresholds"]["Mekong"]["source"] == "otsu_pooled"
    assert np.isfinite(m["event_thresholds"]["Mekong"]["vh_threshold_db"])


# ----------------------------------------------------------------------------- bad input
def test_nan_s1_chip_gives_finite_loss(tmp_path):
    data = ToyChips(n=4, seed=6, nan_s1=(0, 1))  # batch 1 of epoch: both chips without S1 possible
    r = train_baseline(kind="s1_hand", train=data, out_dir=tmp_path / "b", model="unet_tiny",
                       config=TrainConfig(**{**CFG.__dict__, "epochs": 2}))
    assert all(np.isfinite(h["train_loss"]) for h in r.fit.history)
    all_nan = ToyChips(n=2, seed=6, nan_s1=(0, 1))
    r = train_baseline(kind="s1_hand", train=all_nan, out_dir=tmp_path / "c", model="unet_tiny", config=CFG)
    assert r.fit.losses == [0.0]  # no valid pixel anywhere: zero loss, never NaN
    m, table = evaluate(r.model, all_nan, spec=r.spec, progress=False)
    assert m["valid_pixels"] == 0 and (table["no_input_pixels"] == 32 * 32).all()


def test_teacher_without_s2_names_chips(tmp_path):
    no_s2 = ToyChips(n=3, seed=7, s2=False, prefix="Weak")
    with pytest.raises(ValueError, match=r"3 chips have none: Weak_0, Weak_1, Weak_2"):
        train_teacher(train=no_s2, out_dir=tmp_path / "t", model="unet_tiny", config=CFG)
    t = train_teacher(train=ToyChips(n=2, seed=8), out_dir=tmp_path / "t2", model="unet_tiny", config=CFG)
    with pytest.raises(ValueError, match="teacher pool.*Weak_0"):
        label_pool(t, no_s2, out_path=tmp_path / "p.npy", progress=False)
    assert not (tmp_path / "p.npy").exists()
    # without a catalog to consult, the batch itself names the chips
    mixed = [ToyChips(n=1, seed=9)[0], ToyChips(n=1, seed=9, s2=False, prefix="NoS2")[0]]
    with pytest.raises(ValueError, match=r"chips \['NoS2_0'\] have no 's2'"):
        collate(mixed)


def test_empty_split_errors(tmp_path):
    with pytest.raises(ValueError, match="training data is empty"):
        train_baseline(kind="s1_hand", train=ToyChips(n=0), out_dir=tmp_path / "e", model="unet_tiny", config=CFG)
    with pytest.raises(ValueError, match="evaluation split 'test' is empty"):
        train_baseline(kind="s1_hand", train=ToyChips(n=2), out_dir=tmp_path / "f", model="unet_tiny", config=CFG,
                       evaluate_on={"test": ToyChips(n=0)})
    assert not (tmp_path / "f").exists()  # refused before anything was written


def test_checkpoint_data_mismatch_names_both(tmp_path):
    train_baseline(kind="s1_hand", train=ToyChips(n=2), out_dir=tmp_path / "m", model="unet_tiny", config=CFG)
    other = ToyChips(n=2)
    other.normalizers = {"s1": {**other.normalizers["s1"], "name": "sen1floods11_s1", "mean": [0.6851, 0.5235]}}
    with pytest.raises(ValueError, match=r"checkpoint normaliser \{.*'test_s1'.*but data normaliser \{.*0\.6851"):
        evaluate(tmp_path / "m" / "best.safetensors", other, progress=False)
    other.normalizers = ToyChips(n=1).normalizers
    other.bands = {"s1": ("VH", "VV")}
    with pytest.raises(ValueError, match=r"checkpoint bands \['VV', 'VH'\] but data bands \['VH', 'VV'\]"):
        evaluate(tmp_path / "m" / "best.safetensors", other, progress=False)


def test_collate_fills_supervision_only():
    a = ToyChips(n=1, seed=1)[0]
    b = ToyChips(n=1, seed=2, with_label=False, prefix="P")[0]
    b["soft"] = torch.full((2, 32, 32), 0.5)
    batch = collate([a, b])
    assert (batch["label"][1] == IGNORE_INDEX).all() and torch.isnan(batch["soft"][0]).all()
    assert batch["chip_id"] == ["Toy_0", "P_0"]


# ---------------------------------------------------------------- hand + pool batches (issue 14)
def test_hand_mix_sampler_fixed_hand_count_deterministic_resumable_and_sharded():
    from floodnb.distill.mixing import HandMixSampler, hand_count

    assert hand_count(0.5, 8) == 4 and hand_count(0.01, 8) == 1 and hand_count(0.99, 8) == 7
    kw = dict(hand_per_batch=3, batch_size=8, steps=5, seed=7)
    s = HandMixSampler(4, 40, **kw)
    seen_hand, seen_pool = [], []
    for epoch in range(4):
        s.set_epoch(epoch)
        batches = s.global_batches()
        assert batches.shape == (5, 8)
        assert ((batches < 4).sum(axis=1) == 3).all()  # exactly 3 hand samples in every batch
        seen_hand += batches[batches < 4].tolist()
        seen_pool += batches[batches >= 4].tolist()
        again = HandMixSampler(4, 40, **kw)
        again.set_epoch(epoch)
        assert again.indices() == s.indices()  # a function of (seed, epoch) only
    # over the epochs every chip of a source is drawn equally often (60 hand draws of 4 chips, 100 of 40)
    assert np.bincount(seen_hand).tolist() == [15] * 4
    assert set(np.bincount(np.array(seen_pool) - 4).tolist()) <= {2, 3}
    s.set_epoch(2)
    full = s.indices()
    s.set_start(2 * 8)  # two steps done
    assert list(s) == full[16:] and len(s) == len(full) - 16
    s.set_start(0)
    # two ranks: the union of their step-k batches is the one-process batch k
    r0, r1 = (HandMixSampler(4, 40, rank=r, world_size=2, **kw) for r in (0, 1))
    for r in (r0, r1):
        r.set_epoch(2)
    a, b = np.array(r0.indices()).reshape(5, 4), np.array(r1.indices()).reshape(5, 4)
    one = np.array(full).reshape(5, 8)
    for k in range(5):
        assert sorted(a[k].tolist() + b[k].tolist()) == sorted(one[k].tolist())
    with pytest.raises(ValueError, match="hand_per_batch"):
        HandMixSampler(4, 40, hand_per_batch=8, batch_size=8, steps=1, seed=0)


def test_student_batches_always_hold_hand_chips_and_resume_reproduces_them(tmp_path):
    from floodnb.distill.mixing import HandPoolData

    hand, valid = ToyChips(n=2, seed=1), ToyChips(n=2, seed=2)
    pool = ToyChips(n=6, seed=3, prefix="Pool", with_label=False)
    soft = np.stack([np.stack([1 - p, p]) for p in
                     (np.asarray(pool[i]["truth"], np.float32) * 0.8 + 0.1 for i in range(6))]).astype(np.float16)
    np.save(tmp_path / "pool.npy", soft)
    cfg = TrainConfig(epochs=2, batch_size=4, lr=1e-2, seed=0, checkpoint_every=1, progress=False)
    s = train_student(hand=hand, pool=pool, soft=tmp_path / "pool.npy", out_dir=tmp_path / "full", valid=valid,
                      model="unet_tiny", config=cfg, hand_fraction=0.25, hand_weight=2.0, distill_weight=0.5,
                      steps_per_epoch=3, edge=EdgeOption(width=1))
    assert s.spec.config["hand_per_batch"] == 1 and s.spec.config["hand_weight"] == 2.0
    assert [h["steps"] for h in s.fit.history] == [3, 3]
    log = [json.loads(x) for x in (tmp_path / "full" / "train_log.jsonl").read_text().splitlines()]
    assert len(log) == 6 and all(r["hand_share"] > 0 and r["ce"] > 0 for r in log)  # hand term in every step

    class Stop(Exception):
        pass

    def stop_after_4(*, global_step, **_):
        if global_step == 4:
            raise Stop

    kw = dict(hand=hand, pool=pool, soft=tmp_path / "pool.npy", out_dir=tmp_path / "cut", valid=valid,
              model="unet_tiny", config=cfg, hand_fraction=0.25, hand_weight=2.0, distill_weight=0.5,
              steps_per_epoch=3, edge=EdgeOption(width=1))
    with pytest.raises(Stop):
        train_student(**kw, step_callback=stop_after_4)
    r = train_student(**kw)
    assert r.fit.resumed_from == (1, 1)
    cut = [json.loads(x) for x in (tmp_path / "cut" / "train_log.jsonl").read_text().splitlines()]
    assert [x["loss"] for x in cut] == pytest.approx([x["loss"] for x in log], rel=1e-6)
    # the data the sampler mixed: one hand chip (index < 2) in each batch of 4
    data = HandPoolData(hand, pool, hand_per_batch=1, steps_per_epoch=3)
    smp = data.epoch_sampler(seed=0, batch_size=4)
    assert ((smp.global_batches() < 2).sum(axis=1) == 1).all()
