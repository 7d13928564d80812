"""Label-noise scores: planted errors are found; bad input gets clear errors or defined results."""

from __future__ import annotations

import sys
import types

import numpy as np
import pandas as pd
import pytest
import rasterio

from floodnb.io_utils import is_temporary_name
from floodnb.labels import cleanlab_adapter as cla
from floodnb.labels import noise as nz
from floodnb.labels import stream, validate

H = W = 64


def _truth(n=4, seed=0):
    yy, xx = np.mgrid[:H, :W]
    t = np.zeros((n, H, W), np.int16)
    for i in range(n):
        cy, cx = 20 + 6 * i, 30 - 3 * i
        t[i] = ((yy - cy) ** 2 + (xx - cx) ** 2 < (12 + i) ** 2)
    return t


def _planted(truth, seed=0):
    """Weak labels with planted errors: 0 block flip, 1 speckle, 2 edge shift, 3 clean."""
    rng = np.random.default_rng(seed)
    weak = truth.copy()
    weak[0, 40:60, 5:25] = 1 - weak[0, 40:60, 5:25]  # 400 px block
    sp = rng.random((H, W)) < 0.03
    if len(weak) > 1:
        weak[1][sp] = 1 - weak[1][sp]
    if len(weak) > 2:
        weak[2] = np.roll(truth[2], 3, axis=1)  # shifted edge
    return weak


def _model_probs(truth, *, conf=0.85, noise=0.1, seed=1):
    rng = np.random.default_rng(seed)
    pw = np.where(truth == 1, conf, 1 - conf) + rng.normal(0, noise, truth.shape)
    pw = np.clip(pw, 0.01, 0.99).astype(np.float32)
    return np.stack([1 - pw, pw], axis=1)


def test_self_confidence_finds_planted_errors_and_ranks_corrupted_chip_first():
    truth = _truth()
    weak = _planted(truth)
    score = nz.label_noise_score(weak, _model_probs(truth))
    wrong = weak != truth
    assert validate.auroc(score, wrong) > 0.97
    assert validate.average_precision(score, wrong) > 0.8
    ranked = nz.rank_chips(nz.chip_noise_rate(score), chip_ids=["block", "speckle", "edge", "clean"])
    assert ranked["chip_id"].iloc[0] == "block"
    assert ranked["chip_id"].iloc[-1] == "clean"
    assert ranked["rank"].tolist() == [1, 2, 3, 4]


def test_disagreement_and_confusion_match_planted_block():
    truth = _truth()
    weak = _planted(truth)
    d = nz.disagreement_map(truth, weak)
    assert d.dtype == np.int8 and d[0, 40:60, 5:25].all() and int(d[3].sum()) == 0
    cms = nz.pair_confusion(truth, weak)
    assert cms.shape == (4, 2, 2) and int(cms[0].sum()) == H * W
    assert int(cms[0, 0, 1] + cms[0, 1, 0]) == 400
    tab = nz.agreement_table(truth, weak, chip_ids=list("abcd"), events=["e1", "e1", "e2", "e2"],
                             names=("hand", "weak"))
    assert tab.loc[0, "disagreement_rate"] == pytest.approx(400 / (H * W))
    assert tab.loc[3, "kappa"] == pytest.approx(1.0)
    ev = nz.event_confusion(cms, ["e1", "e1", "e2", "e2"], names=("hand", "weak"))
    assert ev["event"].tolist() == ["e1", "e2", "all"]
    assert ev.loc[ev.event == "all", "n01"].item() == cms[:, 0, 1].sum()
    assert ev.loc[ev.event == "e1", "chips"].item() == 2


def test_validation_report_matches_sklearn_definitions_on_small_example():
    # hand-computable: scores 0.1, 0.4, 0.35, 0.8 for labels 0, 0, 1, 1 -> AUROC 0.75, AP 0.8333
    s = np.array([0.1, 0.4, 0.35, 0.8])
    y = np.array([0, 0, 1, 1], bool)
    assert validate.auroc(s, y) == pytest.approx(0.75)
    assert validate.average_precision(s, y) == pytest.approx((1 / 2) * 1 + (1 / 2) * (2 / 3))
    assert validate.spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert np.isnan(validate.auroc(s, np.zeros(4, bool)))


def test_streaming_accumulator_equals_in_memory_report_for_binary_scores():
    truth = _truth()
    weak = _planted(truth)
    other = _planted(truth, seed=5)
    other[0] = truth[0]  # the second source is right on the block
    dis = (weak != other).astype(np.float32)
    full = validate.validation_report({"dis": dis}, weak, truth)
    acc = validate.ValidationAccumulator(("dis",))
    for i in range(len(truth)):
        acc.update({"dis": dis[i]}, weak[i], truth[i])
    part = acc.report()
    for col in ("auroc", "average_precision", "base_rate", "spearman_chip", "pixels", "wrong_pixels"):
        assert part.loc[0, col] == pytest.approx(full.loc[0, col])


def test_all_nodata_chip_gets_no_score_and_no_nan_rank():
    truth = _truth(3)
    weak = _planted(truth)
    weak[1] = -1
    score = nz.label_noise_score(weak, _model_probs(truth))
    rates = nz.chip_noise_rate(score)
    assert np.isnan(rates[1]) and np.isfinite(rates[[0, 2]]).all()
    ranked = nz.rank_chips(rates, chip_ids=["a", "b", "c"])
    assert ranked["chip_id"].tolist()[-1] == "b"
    assert ranked["rank"].dropna().tolist() == [1, 2]
    assert pd.isna(ranked["rank"].iloc[-1]) and ranked["status"].iloc[-1] == nz.STATUS_NO_VALID
    assert ranked["status"].iloc[0] == nz.STATUS_OK


@pytest.mark.parametrize("bad, msg", [
    (lambda p: p * 0.9, "do not sum to one"),
    (lambda p: p * 3 - 1, "outside \\[0, 1\\]"),
    (lambda p: np.concatenate([p[:, :1] * np.where(np.arange(W) == 0, np.nan, 1), p[:, 1:]], 1),
     "NaN/inf in some classes only"),
])
def test_bad_probabilities_raise_clear_errors(bad, msg):
    truth = _truth(2)
    with pytest.raises(ValueError, match=msg):
        nz.self_confidence(truth, bad(_model_probs(truth)))


def test_probabilities_within_tolerance_and_nodata_nan_are_accepted():
    truth = _truth(2)
    p = _model_probs(truth) * (1 + 5e-4)
    p[0, :, :5] = np.nan
    s = nz.self_confidence(truth, p)
    assert np.isnan(s[0, :5]).all() and np.isfinite(s[0, 5:]).all()


def test_bad_labels_and_shapes_raise():
    truth = _truth(2)
    bad = truth.copy()
    bad[0, 0, 0] = 2
    with pytest.raises(ValueError, match="outside .*-1 nodata, 0 dry, 1 water"):
        nz.pair_confusion(bad, truth)
    with pytest.raises(ValueError, match="shape"):
        nz.disagreement_map(truth, truth[:, :10])
    with pytest.raises(ValueError, match="does not match labels"):
        nz.self_confidence(truth, _model_probs(truth)[:, :, :10])
    with pytest.raises(ValueError, match="whole numbers"):
        nz.check_labels(truth.astype(np.float32) + 0.5)
    with pytest.raises(ValueError, match="chip_ids has 1"):
        nz.rank_chips([0.1, 0.2], chip_ids=["a"])


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
def test_stream_over_memmap_equals_in_memory_and_writes_maps(tmp_path):
    truth = _truth()
    weak = _planted(truth)
    probs = _model_probs(truth)
    mm = np.lib.format.open_memmap(tmp_path / "probs.npy", mode="w+", dtype=np.float16, shape=probs.shape)
    mm[:] = probs
    mm.flush()
    del mm
    probs16 = np.load(tmp_path / "probs.npy", mmap_mode="r")
    ids = ["block", "speckle", "edge", "clean"]
    res = stream.score_stream(
        stream.iter_arrays({"s1_otsu": weak, "hand": truth}, chip_ids=ids, events=["a", "a", "b", "b"],
                           probs=probs16, truth=truth),
        weak="s1_otsu", out_dir=tmp_path / "out", write_maps=True, progress=False)
    assert res.chips["chip_id"].iloc[0] == "block"
    assert res.chips["noise_score"].iloc[0] == "self_confidence"
    # float16 storage: probabilities still sum to one within the tolerance
    expect = nz.chip_noise_rate(nz.label_noise_score(weak, np.asarray(probs16, np.float32)))
    got = res.chips.set_index("chip_id").loc[ids, "noise_rate"].to_numpy()
    np.testing.assert_allclose(got, expect, rtol=1e-6)
    assert set(res.validation["score"]) == {"disagree_hand", "self_confidence"}
    assert (res.validation["auroc"] > 0.95).all()
    assert res.validation.loc[res.validation.score == "self_confidence", "spearman_chip"].item() > 0.7
    paths = stream.write_tables(res, tmp_path / "out")
    back = pd.read_csv(paths["chips"])
    assert back["chip_id"].tolist() == res.chips["chip_id"].tolist()
    with rasterio.open(tmp_path / "out" / "noise_maps" / "block_noise.tif") as src:
        m = src.read(1)
    np.testing.assert_allclose(m, nz.label_noise_score(weak[0], np.asarray(probs16[0], np.float32)), atol=1e-6)
    assert not [p for p in (tmp_path / "out").rglob("*") if is_temporary_name(p.name)]


def test_stream_reports_all_nodata_chip_and_refuses_unsafe_ids(tmp_path):
    truth = _truth(3)
    weak = _planted(truth)
    weak[2] = -1
    res = stream.score_stream(stream.iter_arrays({"s1_otsu": weak, "hand": truth}, chip_ids=["a", "b", "c"]),
                              weak="s1_otsu", progress=False)
    last = res.chips.iloc[-1]
    assert last["chip_id"] == "c" and pd.isna(last["rank"]) and last["status"] == nz.STATUS_NO_VALID
    with pytest.raises(ValueError, match="not safe as a file name"):
        stream.write_noise_map(tmp_path, "../evil", np.zeros((4, 4)))
    with pytest.raises(ValueError, match="has no 'jrc' label"):
        stream.score_stream(stream.iter_arrays({"s1_otsu": weak}, chip_ids=list("abc")), weak="jrc", progress=False)


# ---------------------------------------------------------------- cleanlab adapter contract
def _fake_cleanlab(monkeypatch, calls):
    def find_label_issues(labels, pred_probs, *, filter_by, frac_noise, batch_size, verbose):
        calls.append(("filter", labels, pred_probs))
        assert labels.ndim == 3 and pred_probs.ndim == 4 and pred_probs.shape[2:] == labels.shape[1:]
        assert labels.min() >= 0 and labels.max() < pred_probs.shape[1], "cleanlab needs full labels"
        assert np.isfinite(pred_probs).all()
        # a faithful minimal stand-in: flag pixels whose label is not the argmax
        return labels != pred_probs.argmax(axis=1)

    def get_label_quality_scores(labels, pred_probs, *, method, batch_size, verbose):
        calls.append(("rank", labels, pred_probs))
        assert labels.min() >= 0 and np.isfinite(pred_probs).all()
        px = np.take_along_axis(pred_probs, labels[:, None], axis=1)[:, 0]
        return px.reshape(len(px), -1).min(axis=1), px

    pkg, seg = types.ModuleType("cleanlab"), types.ModuleType("cleanlab.segmentation")
    filt, rank = types.ModuleType("cleanlab.segmentation.filter"), types.ModuleType("cleanlab.segmentation.rank")
    filt.find_label_issues, rank.get_label_quality_scores = find_label_issues, get_label_quality_scores
    for name, mod in [("cleanlab", pkg), ("cleanlab.segmentation", seg),
                      ("cleanlab.segmentation.filter", filt), ("cleanlab.segmentation.rank", rank)]:
        monkeypatch.setitem(sys.modules, name, mod)


def test_cleanlab_adapter_fills_nodata_and_masks_it_out(monkeypatch):
    calls = []
    _fake_cleanlab(monkeypatch, calls)
    truth = _truth(2)
    weak = _planted(truth)
    weak[1, :8] = -1
    probs = _model_probs(truth)
    probs[1, :, :, 60:] = np.nan
    before = weak.copy()
    mask = cla.find_label_issues(weak, probs, out_of_sample=True)
    assert mask.shape == weak.shape and mask.dtype == bool
    assert not mask[1, :8].any() and not mask[1, :, 60:].any()
    assert mask[0, 40:60, 5:25].mean() > 0.95
    np.testing.assert_array_equal(weak, before)  # input untouched
    chip_scores, px = cla.label_quality_scores(weak, probs, out_of_sample=True)
    assert chip_scores.shape == (2,) and np.isnan(px[1, :8]).all()
    assert [c[0] for c in calls] == ["filter", "rank"]


def test_cleanlab_adapter_requires_out_of_sample_and_explains_missing_extra(monkeypatch):
    truth = _truth(1)
    with pytest.raises(ValueError, match="out_of_sample must be True"):
        cla.find_label_issues(truth, _model_probs(truth), out_of_sample=False)
    monkeypatch.setitem(sys.modules, "cleanlab", None)  # import of cleanlab fails
    monkeypatch.delitem(sys.modules, "cleanlab.segmentation", raising=False)
    monkeypatch.delitem(sys.modules, "cleanlab.segmentation.filter", raising=False)
    with pytest.raises(ImportError, match=r"pip install floodnb\[cleanlab\]"):
        cla.find_label_issues(truth, _model_probs(truth), out_of_sample=True)
