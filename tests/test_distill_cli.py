"""``floodnb train teacher|student|baseline`` and ``floodnb evaluate`` on a tiny simulated dataset."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch

from floodnb.cli import main

torch.set_num_threads(1)
FAST = ["--epochs", "1", "--batch-size", "3", "--model", "unet_tiny", "--no-progress", "--checkpoint-every", "0"]


def test_train_chain_and_evaluate(sim_root, tmp_path, capsys):
    root = str(sim_root)
    assert main(["train", "teacher", "--data-root", root, "--out-dir", str(tmp_path / "t"), "--inputs", "s2,s1",
                 "--bands", "B3,B8,B11,B12", "--metadata", *FAST]) == 0
    m = json.loads((tmp_path / "t" / "metrics.json").read_text())
    assert set(m["splits"]) == {"valid", "test", "bolivia"}
    assert main(["train", "baseline", "--kind", "s1_weak", "--data-root", root, "--out-dir", str(tmp_path / "b"),
                 "--reference", "truth", *FAST]) == 0
    assert main(["train", "student", "--data-root", root, "--out-dir", str(tmp_path / "s"), "--teacher",
                 str(tmp_path / "t" / "best.safetensors"), "--mode", "hard", "--threshold", "0.6",
                 "--edge-width", "1", "--hand-fraction", "0.3", "--hand-weight", "2", *FAST]) == 0
    assert (tmp_path / "s" / "pool_probs.npy").is_file()
    # pool targets cloud-masked by default, recorded in the student's run config; teacher quality clear vs cloud
    from floodnb.distill.teacher import pool_info
    from floodnb.models import read_spec

    assert pool_info(tmp_path / "s" / "pool_probs.npy")["cloud_mask"]["enabled"] is True
    rec = read_spec(tmp_path / "s" / "best.safetensors").config["pool_targets"]
    assert rec["cloud_mask"]["enabled"] is True and rec["file"].endswith("pool_probs.npy")
    q = pd.read_csv(tmp_path / "s" / "pool_probs.quality.csv")
    assert list(q["pixel_set"]) == ["clear", "cloud", "all"] and q["pixels"].iloc[2] == 6 * 32 * 32
    capsys.readouterr()
    assert main(["train", "student", "--data-root", root, "--out-dir", str(tmp_path / "s"), "--teacher",
                 str(tmp_path / "t" / "best.safetensors"), "--no-cloud-mask", *FAST]) == 2
    assert "holds pool targets with cloud mask on; --no-cloud-mask asks for off" in capsys.readouterr().err
    log = [json.loads(x) for x in (tmp_path / "s" / "train_log.jsonl").read_text().splitlines()]
    # 6 hand + 6 pool chips, batch 3 = 1 hand chip (--hand-fraction 0.3) + 2 pool chips: 4 steps, hand term in each
    assert len(log) == 4 and all("distill" in r and r["hand_share"] > 0 for r in log)
    cfg = read_spec(tmp_path / "s" / "best.safetensors").config
    assert cfg["hand_per_batch"] == 1 and cfg["hand_weight"] == 2.0 and cfg["distill_weight"] == 1.0
    capsys.readouterr()
    assert main(["evaluate", str(tmp_path / "s"), "--data-root", root, "--split", "test,bolivia", "--reference",
                 "truth", "--out-dir", str(tmp_path / "e"), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "water IoU (global)" in out and "bolivia" in out
    table = pd.read_csv(tmp_path / "e" / "eval_per_chip.csv")
    assert sorted(set(table["split"])) == ["bolivia", "test"] and len(table) == 3
    # the library call on a catalog gives the same numbers as the command
    from floodnb.data.catalog import build_catalog
    from floodnb.distill.evaluate import evaluate

    metrics, _ = evaluate(tmp_path / "s", build_catalog(sim_root), reference="truth_water", progress=False)
    saved = json.loads((tmp_path / "e" / "eval_metrics.json").read_text())["splits"]
    assert metrics["test"]["water_iou"] == pytest.approx(saved["test"]["water_iou"])


def test_cli_errors(sim_root, tmp_path, capsys):
    root = str(sim_root)
    assert main(["evaluate", str(tmp_path / "none.safetensors"), "--data-root", root]) == 2
    assert "not found" in capsys.readouterr().err
    assert main(["train", "baseline", "--data-root", root, "--out-dir", str(tmp_path / "b"), *FAST]) == 0
    assert main(["evaluate", str(tmp_path / "b"), "--data-root", root, "--split", "nosuch", "--no-progress"]) == 2
    assert "split 'nosuch' has no chips" in capsys.readouterr().err
    # data normalised differently from what the checkpoint was trained with
    from floodnb.data.normalize import get_preset, save_normalizers

    norm = get_preset("sen1floods11_s1").to_dict()
    norm["mean"] = [0.1, 0.2]
    from floodnb.data.normalize import Normalizer

    save_normalizers(tmp_path / "n.json", {"s1": Normalizer.from_dict(norm)})
    assert main(["evaluate", str(tmp_path / "b"), "--data-root", root, "--normalizers", str(tmp_path / "n.json"),
                 "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "checkpoint normaliser" in err and "but data normaliser" in err and "0.1, 0.2" in err
