"""Sim-to-real transfer report: one pixel set for every method, named exclusions, model scores, CLI."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from _checkpoints import save_s1_checkpoint

from floodnb.cli import main as cli_main
from floodnb.data.catalog import build_catalog
from floodnb.data.io import EmptyChipWarning, load_chip
from floodnb.data.normalize import Normalizer, get_preset
from floodnb.experiment.real import FIXED_THRESHOLDS_DB, fixed_method, transfer_report
from floodnb.metrics import ConfusionAccumulator
from floodnb.models import ModelSpec, build_model, save_checkpoint
from floodnb.predict import predict_chip


@pytest.fixture(scope="module")
def s1_checkpoint(tmp_path_factory):
    return save_s1_checkpoint(tmp_path_factory.mktemp("ck") / "m.safetensors")


def _expected_chips(root):
    """Chips with S1Hand + LabelHand and at least one pixel with finite S1 and a 0/1 label; the rest."""
    cat = build_catalog(root)
    keep, other = [], []
    for _, row in cat.iterrows():
        if pd.isna(row["s1_path"]) or pd.isna(row["label_path"]):
            other.append(row["chip_id"])
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", EmptyChipWarning)
            c = load_chip(row, roles=("s1", "label"))
        valid = np.isfinite(c["s1"].values).all(0) & np.isin(c["label"].values, (0, 1))
        (keep if valid.any() else other).append(row["chip_id"])
    return cat, sorted(keep), sorted(other)


def test_report_counts_only_chips_with_valid_pixels_and_names_the_others(real_root, s1_checkpoint):
    cat, keep, other = _expected_chips(real_root)
    assert keep, "the real fixture must hold chips with valid pixels"
    rep = transfer_report(real_root, checkpoints={"m": s1_checkpoint})
    allr = rep.overall().set_index("method")
    assert set(allr.index) == {"otsu_chip", "otsu_event", "m", *(fixed_method(t) for t in FIXED_THRESHOLDS_DB)}
    assert (allr["chips"] == len(keep)).all()
    # one pixel set for every method
    assert allr["valid_pixels"].nunique() == 1 and int(allr["valid_pixels"].iloc[0]) > 0
    assert sorted(rep.excluded["chip_id"]) == other
    assert rep.excluded["reason"].str.len().gt(0).all()
    assert sorted(rep.per_chip["chip_id"].unique()) == keep
    assert set(rep.per_chip["method"]) == set(allr.index)
    assert allr.loc["m", "kind"] == "model" and allr.loc["otsu_event", "kind"] == "threshold"
    # the thresholds otsu_event used, per event of the counted chips, each with its source
    assert set(rep.thresholds["event"]) == set(rep.per_chip["event"])
    used = rep.per_chip[rep.per_chip["method"] == "otsu_event"].groupby("event")["vh_threshold_db"].first()
    assert rep.thresholds.set_index("event")["vh_threshold_db"].to_dict() == pytest.approx(used.to_dict())
    assert rep.thresholds["source"].str.contains("VH_thresh").all()


def test_model_score_matches_an_independent_prediction(real_root, s1_checkpoint):
    """The report's model row equals predict_chip over the same chips, accumulated by hand."""
    from floodnb.models import load_checkpoint

    _, keep, _ = _expected_chips(real_root)
    rep = transfer_report(real_root, checkpoints={"m": s1_checkpoint}, fixed_thresholds=())
    model, spec = load_checkpoint(s1_checkpoint)
    cat = build_catalog(real_root).set_index("chip_id", drop=False)
    acc = ConfusionAccumulator()
    for cid in keep:
        c = load_chip(cat.loc[cid], roles=("s1", "label"))
        norms = {r: Normalizer.from_dict(d) for r, d in spec.normalizers.items()}
        out = predict_chip(model, c, inputs=spec.inputs, bands=spec.bands, normalizers=norms)
        pred = np.where(np.isfinite(c["s1"].values).all(0), out["pred"].values, -1)
        acc.update(pred, c["label"].values)
    got = rep.overall().set_index("method").loc["m"]
    want = acc.summary()
    assert int(got["valid_pixels"]) == want["valid_pixels"]
    assert got["water_iou"] == pytest.approx(want["water_iou"], abs=1e-9, nan_ok=True)


def test_fixed_thresholds_are_what_they_say(real_root):
    """vh<-TdB predicts water exactly where VH < T: checked against a direct count on the chips."""
    _, keep, _ = _expected_chips(real_root)
    rep = transfer_report(real_root, fixed_thresholds=(-22.0,))
    cat = build_catalog(real_root).set_index("chip_id", drop=False)
    acc = ConfusionAccumulator()
    for cid in keep:
        c = load_chip(cat.loc[cid], roles=("s1", "label"))
        s1 = c["s1"].values
        pred = np.where(np.isfinite(s1).all(0), (s1[1] < -22.0).astype(np.int16), -1)
        acc.update(pred, c["label"].values)
    got = rep.overall().set_index("method").loc["vh<-22dB"]
    assert got["water_iou"] == pytest.approx(acc.summary()["water_iou"], abs=1e-9, nan_ok=True)
    assert rep.best_fixed()["method"] == "vh<-22dB"


def test_report_refuses_other_models_and_name_clashes(real_root, tmp_path):
    torch.manual_seed(0)
    model = build_model("unet_tiny", in_channels=13)
    norm = get_preset("s2_l1c")
    spec = ModelSpec(model_name="unet_tiny", model_config=model.config(), inputs=("s2",),
                     bands={"s2": tuple(norm.bands)}, normalizers={"s2": norm.to_dict()})
    s2 = save_checkpoint(tmp_path / "s2.safetensors", model, spec=spec)
    with pytest.raises(ValueError, match=r"t=.*s2\.safetensors.*Sentinel-1"):
        transfer_report(real_root, checkpoints={"t": s2})
    with pytest.raises(ValueError, match="clash"):
        transfer_report(real_root, checkpoints={"otsu_chip": s2})
    with pytest.raises(FileNotFoundError, match="not a folder"):
        transfer_report(tmp_path / "nope")


def test_cli_writes_tables_figure_and_markdown(real_root, s1_checkpoint, tmp_path, capsys):
    out = tmp_path / "tr"
    assert cli_main(["transfer", str(real_root), "--checkpoint", f"student={s1_checkpoint}",
                     "--thresholds=-22,-24", "--out-dir", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "student: water IoU" in printed and "oracle fixed threshold" in printed
    summary = pd.read_csv(out / "transfer.csv")
    assert set(summary["method"]) == {"otsu_chip", "otsu_event", "vh<-22dB", "vh<-24dB", "student"}
    assert (out / "transfer.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = (out / "transfer.md").read_text()
    assert "water IoU = TP/(TP+FP+FN)" in md and "Per chip" in md
    assert list(pd.read_csv(out / "transfer_excluded.csv").columns) == ["chip_id", "reason"]
    # bad input: a message naming the argument, exit 2, nothing written
    with pytest.raises(SystemExit) as e:
        cli_main(["transfer", str(real_root), "--checkpoint", "noequals"])
    assert e.value.code == 2
    assert "NAME=PATH" in capsys.readouterr().err
    assert cli_main(["transfer", str(real_root), "--checkpoint", f"a={tmp_path / 'missing.safetensors'}"]) == 2
    assert "missing.safetensors" in capsys.readouterr().err


def test_seed_table_counts_and_names_only_chips_with_valid_pixels(real_root, s1_checkpoint):
    """Models named row@seedN: one line per row with n, per-seed values, mean and sample std; the counted chips
    are named, the others named as not counted, per-chip rows for every counted chip.
    """
    from floodnb.experiment.real import seed_markdown, seed_method, seed_table, split_seed_method

    _, keep, other = _expected_chips(real_root)
    rep = transfer_report(real_root, checkpoints={seed_method("m", 0): s1_checkpoint,
                                                  seed_method("m", 3): s1_checkpoint}, fixed_thresholds=(-22.0,))
    assert split_seed_method("student_soft@seed12") == ("student_soft", 12)
    assert split_seed_method("vh<-22dB") == ("vh<-22dB", None)
    tab = seed_table(rep).set_index("method")
    assert set(tab.index) == {"m", "otsu_chip", "otsu_event", "vh<-22dB"}
    assert int(tab.loc["m", "n"]) == 2 and tab.loc["m", "seeds"] == "0 3" and tab.loc["m", "water_iou_std"] == 0
    single = rep.overall().set_index("method").loc["m@seed0", "water_iou"]
    assert tab.loc["m", "water_iou_mean"] == pytest.approx(single)
    assert int(tab.loc["otsu_event", "n"]) == 1 and (tab["chips"] == len(keep)).all()
    assert rep.counted() == keep
    md = seed_markdown(rep)
    assert f"{len(keep)} chips with valid pixels counted ({', '.join(keep)})" in md
    assert all(c in md.split("Not counted")[1] for c in other)
    per_chip = md.split("Per chip")[1]
    assert all(f"| {c} |" in per_chip for c in keep) and not any(f"| {c} |" in per_chip for c in other)
