"""The evidence experiment: rows, resumption, outputs, README block, CLI, bad input (tiny simulated data)."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from _real_data import REAL_ROOT as REAL  # shared sample or in-repo fixture (see tests/data)

from floodnb.cli import main as cli_main
from floodnb.experiment import Budget, SimSpec
from floodnb.experiment.report import END_MARKER, START_MARKER, replace_readme_block
from floodnb.experiment.rows import ROWS, resolve_rows
from floodnb.experiment.run import run_experiment
from floodnb.experiment.training import CromssDistillObjective, CromssSupervisedObjective, FixedLength, WithRatio

SIM = SimSpec(n_hand=16, n_weak=8, size=32, seed=0)
BUDGET = Budget(epochs=1, steps_per_epoch=1, batch_size=2, crop=32, model="unet_tiny", width=4)
METRICS = ("test_water_iou", "test_miou", "bolivia_water_iou", "bolivia_miou", "valid_water_iou")


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("exp")
    table = run_experiment(out, sim=SIM, budget=BUDGET, seed=0, real_root=REAL, progress=False)
    return out, table


def test_every_row_runs_with_finite_metrics(full_run):
    out, table = full_run
    assert list(table["row"]) == list(ROWS)
    assert (table["status"] == "done").all(), table[["row", "error"]]
    for col in METRICS:
        vals = table[col].astype(float)
        assert np.isfinite(vals).all(), (col, table[["row", col]])
        assert ((vals >= 0) & (vals <= 1)).all()
    trained = table[~table["row"].str.startswith("otsu")]
    assert trained["budget"].nunique() == 1 and "1 steps" in trained["budget"].iloc[0]
    for ck in trained["checkpoint"]:
        assert Path(ck).is_file()
    # every student names the teacher it distilled from; the metadata student its own teacher
    t = table.set_index("row")["teacher"]
    assert t["student_soft"] in ("teacher_s2", "teacher_s2s1") and t["student_meta"] == "teacher_s2_meta"
    csv = pd.read_csv(out / "results.csv")
    assert list(csv["row"]) == list(ROWS)
    md = (out / "results.md").read_text()
    for needle in ("water IoU", "SimTruthWater", "held-out", "budget", "seed", "load average",
                   "student_soft_confweight_fixed_partner"):
        assert needle in md
    assert (out / "results.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # otsu_event thresholds every event with the metadata's VH_thresh (the simulator writes one per event)
    (thr_csv,) = (out / "rows").glob("otsu_event-*/event_thresholds.csv")
    thr = pd.read_csv(thr_csv)
    assert set(thr["split"]) == {"test", "bolivia", "valid"} and (thr["source"] == "metadata").all()
    assert np.isfinite(thr["vh_threshold_db"]).all()
    # distillation teachers' pool targets are cloud-masked, with the teacher's clear-vs-cloud quality beside them;
    # the CromSS partner's probabilities are not masked
    import json

    for info in (out / "rows").glob("*/pool_probs.json"):
        row = info.parent.name.rsplit("-", 1)[0]
        assert json.loads(info.read_text())["cloud_mask"]["enabled"] is row.startswith("teacher"), row
        if row.startswith("teacher"):
            q = pd.read_csv(info.with_name("pool_probs.quality.csv"))
            assert list(q["pixel_set"]) == ["clear", "cloud", "all"]
    assert len(list((out / "rows").glob("teacher_*/pool_probs.quality.csv"))) >= 1
    real = pd.read_csv(out / "transfer.csv")
    assert {"otsu_chip", "otsu_event", "vh<-24dB"} <= set(real["method"])
    s1_rows = {"s1_weak", "s1_hand"} | {r for r in ROWS if r.startswith("student")}
    assert s1_rows <= set(real["method"])  # every finished S1 row, no S2 teacher
    assert not set(real["method"]) & {"teacher_s2", "teacher_s2s1"}
    assert np.isfinite(real[real["method"] == "otsu_event"]["water_iou"].astype(float)).all()
    assert "Sim-to-real" in md and (out / "transfer.png").is_file()


def test_rerun_reuses_finished_rows_and_says_so(full_run, capsys):
    out, first = full_run
    before = {p: p.stat().st_mtime_ns for p in (out / "rows").rglob("best.safetensors")}
    table = run_experiment(out, sim=SIM, budget=BUDGET, seed=0, rows=["student_soft", "otsu_chip"], progress=False)
    err = capsys.readouterr().err
    assert "student_soft: reused" in err and "teacher_s2: reused" in err and "otsu_chip: reused" in err
    assert "running" not in err
    assert {p: p.stat().st_mtime_ns for p in (out / "rows").rglob("best.safetensors")} == before
    got = table.set_index("row")
    assert got.loc["student_soft", "action"] == "reused"
    ref = first.set_index("row")
    assert math.isclose(float(got.loc["student_soft", "test_water_iou"]),
                        float(ref.loc["student_soft", "test_water_iou"]))


def test_failed_row_is_rerun_not_reused(full_run, capsys):
    out, _ = full_run
    csv = pd.read_csv(out / "results.csv")
    csv.loc[csv["row"] == "otsu_event", "status"] = "failed"
    csv.to_csv(out / "results.csv", index=False)
    table = run_experiment(out, sim=SIM, budget=BUDGET, seed=0, rows="otsu_event", progress=False)
    assert "otsu_event: running" in capsys.readouterr().err
    assert table.set_index("row").loc["otsu_event", "status"] == "done"


def test_readme_block_replacement_is_exact(tmp_path):
    readme = tmp_path / "README.md"
    before, after = "# floodnb\n\nintro text\n\n", "\n\n## Next section\nkept as is\n"
    readme.write_text(before + START_MARKER + "\nold table\n" + END_MARKER + after)
    replace_readme_block(readme, "| a | b |\n|---|---|\n| 1 | 2 |\n")
    assert readme.read_text() == before + START_MARKER + "\n| a | b |\n|---|---|\n| 1 | 2 |\n" + END_MARKER + after
    replace_readme_block(readme, "second\n")  # idempotent on its own output
    assert readme.read_text() == before + START_MARKER + "\nsecond\n" + END_MARKER + after


@pytest.mark.parametrize("text", ["# no markers\n", f"{START_MARKER}\nonly start\n",
                                  f"{END_MARKER}\nx\n{START_MARKER}\n",
                                  f"{START_MARKER}\n{END_MARKER}\n{START_MARKER}\n{END_MARKER}\n"])
def test_readme_without_proper_markers_is_refused_untouched(tmp_path, text):
    readme = tmp_path / "README.md"
    readme.write_text(text)
    with pytest.raises(ValueError, match="README.md"):
        replace_readme_block(readme, "table")
    assert readme.read_text() == text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["README.md"]  # no temp files left


def test_cli_fast_end_to_end_with_readme(full_run, tmp_path, capsys):
    data = full_run[0] / "data"
    readme = tmp_path / "README.md"
    readme.write_text(f"top\n{START_MARKER}\n{END_MARKER}\nbottom\n")
    out = tmp_path / "cli"
    rc = cli_main(["experiment", "--fast", "--data-root", str(data), "--out-dir", str(out), "--rows",
                   "otsu_chip,student_hard", "--readme", str(readme), "--no-progress"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "student_hard" in printed and "teacher_s2s1" in printed  # dependencies ran too
    text = readme.read_text()
    assert text.startswith(f"top\n{START_MARKER}\n## floodnb experiment") and text.endswith(f"{END_MARKER}\nbottom\n")
    assert "| student_hard |" in text
    assert set(pd.read_csv(out / "results.csv")["row"]) == {"otsu_chip", "teacher_s2", "teacher_s2s1", "student_hard"}


def test_cli_list_rows(capsys):
    assert cli_main(["experiment", "--list-rows"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in ROWS)


def test_unknown_row_is_a_clear_error(tmp_path, capsys):
    with pytest.raises(ValueError, match=r"unknown experiment rows \['student_magic'\]"):
        resolve_rows(["student_soft", "student_magic"])
    assert cli_main(["experiment", "--rows", "otsu_chip,nope", "--out-dir", str(tmp_path / "o")]) == 2
    assert "nope" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()  # refused before anything was written


def test_empty_split_is_a_clear_error(full_run, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(full_run[0] / "data", data)
    (data / "v1.1" / "splits" / "flood_handlabeled" / "flood_bolivia_data.csv").write_text("")
    with pytest.raises(ValueError, match="bolivia"):
        run_experiment(tmp_path / "out", data_root=data, budget=BUDGET, rows="otsu_chip", progress=False)


def test_readme_missing_markers_refused_before_work(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("nothing here\n")
    with pytest.raises(ValueError, match="README.md"):
        run_experiment(tmp_path / "out", sim=SIM, budget=BUDGET, rows="otsu_chip", readme=readme, progress=False)
    assert not (tmp_path / "out").exists()


def test_budget_and_sim_validation():
    with pytest.raises(ValueError, match="hand_fraction"):
        Budget(hand_fraction=1.0)
    with pytest.raises(ValueError, match="steps_per_epoch"):
        Budget(steps_per_epoch=0)
    with pytest.raises(ValueError, match="n_hand"):
        SimSpec(n_hand=2)


# ---------------------------------------------------------------- building blocks
class _Ids(torch.utils.data.Dataset):
    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict:
        return {"index": torch.tensor(i)}


def test_fixed_length_draws_every_chip_equally_and_deterministically():
    fl = FixedLength(_Ids(5), 4, seed=3)
    seen = []
    for epoch in range(5):  # 20 draws over 5 chips
        fl.set_epoch(epoch)
        seen += [int(fl[i]["index"]) for i in range(len(fl))]
    assert np.bincount(seen, minlength=5).tolist() == [4] * 5
    again = FixedLength(_Ids(5), 4, seed=3)
    again.set_epoch(2)
    fl.set_epoch(2)
    assert [int(again[i]["index"]) for i in range(4)] == [int(fl[i]["index"]) for i in range(4)]
    with pytest.raises(ValueError, match="empty"):
        FixedLength(_Ids(0), 4, seed=0)


def test_with_ratio_ramps_by_epoch():
    w = WithRatio(_Ids(2), epochs=3, end=0.5)
    got = []
    for e in range(3):
        w.set_epoch(e)
        got.append(float(w[0]["ratio"]))
    assert got == [1.0, 0.75, 0.5]


def _batch(b=2, h=8, w=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    soft = torch.softmax(torch.randn(b, 2, h, w, generator=g) * 2, dim=1)
    weak = torch.randint(0, 2, (b, h, w), generator=g)
    return {"s1": torch.randn(b, 2, h, w, generator=g), "valid": torch.ones(b, h, w, dtype=torch.bool),
            "soft": soft.half(), "weak": weak, "ratio": torch.full((b,), 0.5)}


class _Const(torch.nn.Module):
    def __init__(self, logits):
        super().__init__()
        self.logits = torch.nn.Parameter(logits)

    def forward(self, x, meta=None):
        return self.logits


def test_cromss_objectives_select_half_the_pixels_per_class_and_add_consistency():
    from floodnb.distill.evaluate import InputPlan

    plan = InputPlan(inputs=("s1",))
    batch = _batch()
    model = _Const(torch.randn(2, 2, 8, 8))
    loss, terms = CromssSupervisedObjective(plan=plan, select=True)(model, batch)
    n = [(batch["weak"] == k).sum().item() for k in (0, 1)]
    assert math.isclose(float(terms["kept"]), (math.ceil(n[0] / 2) + math.ceil(n[1] / 2)) / 128, rel_tol=1e-6)
    loss_c, terms_c = CromssSupervisedObjective(plan=plan, select=True, consistency=1.0)(model, batch)
    assert float(terms_c["consistency"]) > 0
    assert math.isclose(float(loss_c.detach()), float(loss.detach()) + float(terms_c["consistency"]), rel_tol=1e-5)
    loss_c.backward()
    assert torch.isfinite(model.logits.grad).all()
    # the student options: hand chips (NaN soft) mixed with pool chips
    sb = dict(batch)
    sb["soft"] = batch["soft"].float().clone()
    sb["soft"][0] = float("nan")
    sb["label"] = torch.where(torch.arange(2)[:, None, None] == 0, batch["weak"], torch.full_like(batch["weak"], -100))
    for kw in ({"select": True}, {"consistency": True}):
        loss_s, terms_s = CromssDistillObjective(plan=plan, **kw)(model, sb)
        assert math.isfinite(float(loss_s.detach())) and float(terms_s["distill"]) > 0 and "ce" in terms_s
    with pytest.raises(ValueError, match="exactly one"):
        CromssDistillObjective(plan=plan)


def test_verdict_chooses_the_student_on_validation_not_test():
    from floodnb.experiment.report import verdict

    rows = pd.DataFrame([
        {"row": "s1_weak", "status": "done", "test_water_iou": 0.50, "bolivia_water_iou": 0.40, "valid_water_iou": 0.5},
        {"row": "student_a", "status": "done", "test_water_iou": 0.70, "bolivia_water_iou": 0.45,
         "valid_water_iou": 0.55},
        {"row": "student_b", "status": "done", "test_water_iou": 0.60, "bolivia_water_iou": 0.50,
         "valid_water_iou": 0.60},
    ])
    text = verdict(rows)
    assert "2 of 2 student rows beat" in text
    assert "student_b (valid 0.600)" in text and "test 0.600 (+0.100" in text and "0.500 (+0.100 vs 0.400)" in text
