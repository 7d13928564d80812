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
from floodnb.experiment.rows import ROWS, TRAINED, resolve_rows
from floodnb.experiment.run import run_experiment
from floodnb.experiment.training import CromssDistillObjective, CromssSupervisedObjective, FixedLength, WithRatio

SIM = SimSpec(n_hand=16, n_weak=8, size=32, seed=0)
BUDGET = Budget(epochs=1, steps_per_epoch=1, batch_size=2, crop=32, model="unet_tiny", width=4)
METRICS = ("test_water_iou", "test_miou", "bolivia_water_iou", "bolivia_miou", "valid_water_iou")


SEEDS = 2


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("exp")
    table = run_experiment(out, sim=SIM, budget=BUDGET, seed=0, seeds=SEEDS, real_root=REAL, progress=False,
                           n_boot=200)
    return out, table


def test_every_row_runs_for_every_seed_with_finite_metrics(full_run):
    out, table = full_run
    assert list(dict.fromkeys(table["row"])) == list(ROWS)
    assert (table["status"] == "done").all(), table[["row", "seed", "error"]]
    for row, g in table.groupby("row"):  # trained rows once per seed, thresholds once
        assert sorted(g["seed"]) == ([0, 1] if row in TRAINED else [0]), row
    for col in METRICS:
        vals = table[col].astype(float)
        assert np.isfinite(vals).all(), (col, table[["row", col]])
        assert ((vals >= 0) & (vals <= 1)).all()
    trained = table[~table["row"].str.startswith("otsu")]
    assert trained["budget"].nunique() == 1 and "1 steps" in trained["budget"].iloc[0]
    for ck in trained["checkpoint"]:
        assert Path(ck).is_file()
    # one folder per row and seed; different seeds train different weights
    s0, s1 = (table[(table["row"] == "s1_hand") & (table["seed"] == s)]["checkpoint"].iloc[0] for s in (0, 1))
    assert Path(s0).parent.name.startswith("s1_hand-s0-") and Path(s1).parent.name.startswith("s1_hand-s1-")
    assert Path(s0).read_bytes() != Path(s1).read_bytes()
    # every student of every seed names the same teacher, the one with the better mean validation IoU
    t = table.set_index(["row", "seed"])["teacher"]
    v = table.groupby("row")["valid_water_iou"].mean()
    chosen = "teacher_s2s1" if v["teacher_s2s1"] > v["teacher_s2"] else "teacher_s2"
    assert {t["student_soft", 0], t["student_soft", 1], t["student_hard", 1]} == {chosen}
    assert t["student_meta", 0] == "teacher_s2_meta"
    csv = pd.read_csv(out / "results.csv")
    assert len(csv) == len(table) and {"seed", "test_pixels", "cpu_s"} <= set(csv.columns)
    md = (out / "results.md").read_text()
    assert "student_soft_confweight_fixed_partner" in md and "s1_weak_cromss_joint" in md
    assert t["student_meta_shuffled", 0] == "teacher_s2_meta_shuffled"
    assert (out / "results.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    (thr_csv,) = (out / "rows").glob("otsu_event-*/event_thresholds.csv")
    thr = pd.read_csv(thr_csv)
    assert set(thr["split"]) == {"test", "bolivia", "valid"} and (thr["source"] == "metadata").all()
    import json

    for info in (out / "rows").glob("*/pool_probs.json"):
        row = info.parent.name.rsplit("-", 2)[0]
        assert json.loads(info.read_text())["cloud_mask"]["enabled"] is row.startswith("teacher"), row


def test_every_row_is_scored_on_one_pixel_set(full_run):
    """S2-only rows predict on pixels without S1 too; only the common mask counts, for every row alike."""
    out, table = full_run
    for split in ("valid", "test", "bolivia"):
        assert table[f"{split}_pixels"].nunique() == 1, table[["row", f"{split}_pixels"]]
    # the mask is S1 finite and a reference 0/1, counted independently here
    from floodnb.data.catalog import build_catalog
    from floodnb.data.io import read_arrays

    cat = build_catalog(out / "data")
    n = 0
    for _, r in cat[cat["split"] == "test"].iterrows():
        arr, _ = read_arrays(r, roles=("s1", "truth_water"))
        n += int((np.isfinite(arr["s1"]).all(0) & np.isin(arr["truth_water"], (0, 1))).sum())
    assert int(table["test_pixels"].iloc[0]) == n
    counts = pd.read_csv(next((out / "rows").glob("teacher_s2-s0-*/chip_counts.csv")))
    assert list(counts.columns) == ["split", "chip_id", "tn", "fp", "fn", "tp", "no_input_pixels"]
    md = (out / "results.md").read_text()
    assert "same pixels" in md and f"test {n:,} px" in md and "NOT one pixel set" not in md


def test_summary_comparisons_and_markdown(full_run):
    out, table = full_run
    summ = pd.read_csv(out / "summary.csv")
    r = summ.set_index("row").loc["student_soft"]
    vals = table[table["row"] == "student_soft"].sort_values("seed")["test_water_iou"].astype(float)
    assert int(r["n"]) == SEEDS and r["test_water_iou_seeds"] == " ".join(f"{v:.3f}" for v in vals)
    assert r["test_water_iou_mean"] == pytest.approx(vals.mean())
    assert r["test_water_iou_std"] == pytest.approx(vals.std(ddof=1))  # sample std
    assert int(summ.set_index("row").loc["otsu_chip", "n"]) == 1
    comp = pd.read_csv(out / "comparisons.csv")
    students = [x for x in ROWS if x.startswith("student")]
    assert len(comp) == len(students) * 2 * 2  # vs s1_weak and s1_hand, on test and the held-out event
    c = comp[(comp["row"] == "student_soft") & (comp["baseline"] == "s1_weak") & (comp["split"] == "test")].iloc[0]
    per_seed = [float(x) for x in c["per_seed_diff"].split()]
    base = table[table["row"] == "s1_weak"].sort_values("seed")["test_water_iou"].astype(float).to_numpy()
    assert per_seed == pytest.approx(list(vals.to_numpy() - base), abs=6e-4)
    assert c["boot_lo"] <= c["boot_diff"] + 1e-12 and c["boot_diff"] <= c["boot_hi"] + 1e-12
    assert c["n_boot"] == 200 and c["n"] == SEEDS
    md = (out / "results.md").read_text()
    for needle in ("n seeds", "mean ± std", "per-seed difference", "bootstrap 95 %", "B = 200", "Student chosen on "
                   "validation", "SimTruthWater", "held-out", "load average",
                   "student_soft_confweight_fixed_partner", "(n=2)"):
        assert needle in md, needle
    assert md.index("Student chosen on validation") < md.index("Then, on test")
    # sim-to-real: every seed of every S1 row, no S2 model, the mean over seeds per row
    real = pd.read_csv(out / "transfer.csv")
    s1_rows = {"s1_weak", "s1_hand"} | {x for x in ROWS if x.startswith("student")}
    assert {f"{x}@seed{s}" for x in s1_rows for s in range(SEEDS)} <= set(real["method"])
    assert not any(m.startswith("teacher") or m.startswith("s2_") for m in real["method"])
    seeds = pd.read_csv(out / "transfer_seeds.csv").set_index("method")
    assert int(seeds.loc["student_soft", "n"]) == SEEDS and int(seeds.loc["otsu_event", "n"]) == 1
    assert "Sim-to-real" in md and "chips with valid pixels counted (" in md


def test_rerun_reuses_finished_rows_and_says_so(full_run, capsys):
    out, first = full_run
    before = {p: p.stat().st_mtime_ns for p in (out / "rows").rglob("best.safetensors")}
    table = run_experiment(out, sim=SIM, budget=BUDGET, seed=0, seeds=SEEDS, rows=["student_soft", "otsu_chip"],
                           progress=False, n_boot=50)
    err = capsys.readouterr().err
    for needle in ("student_soft seed 0: reused", "student_soft seed 1: reused", "teacher_s2 seed 1: reused",
                   "otsu_chip seed 0: reused", "projected"):
        assert needle in err, needle
    assert "running" not in err
    assert {p: p.stat().st_mtime_ns for p in (out / "rows").rglob("best.safetensors")} == before
    got = table.set_index(["row", "seed"])
    assert got.loc[("student_soft", 1), "action"] == "reused"
    ref = first.set_index(["row", "seed"])
    assert math.isclose(float(got.loc[("student_soft", 1), "test_water_iou"]),
                        float(ref.loc[("student_soft", 1), "test_water_iou"]))


def test_failed_row_is_rerun_not_reused(full_run, capsys):
    out, _ = full_run
    csv = pd.read_csv(out / "results.csv")
    csv.loc[csv["row"] == "otsu_event", "status"] = "failed"
    csv.to_csv(out / "results.csv", index=False)
    table = run_experiment(out, sim=SIM, budget=BUDGET, seed=0, seeds=SEEDS, rows="otsu_event", progress=False,
                           n_boot=50)
    assert "otsu_event seed 0: running" in capsys.readouterr().err
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
                   "otsu_chip,s1_weak,student_hard", "--readme", str(readme), "--no-progress", "--seeds", "1",
                   "--bootstrap", "20"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "student_hard" in printed and "teacher_s2s1" in printed  # dependencies ran too
    text = readme.read_text()
    assert text.startswith(f"top\n{START_MARKER}\n## floodnb experiment") and text.endswith(f"{END_MARKER}\nbottom\n")
    assert "| student_hard |" in text
    assert set(pd.read_csv(out / "results.csv")["row"]) == {"otsu_chip", "s1_weak", "teacher_s2", "teacher_s2s1",
                                                            "student_hard"}
    assert "(n=1)" in text and "B = 20" in text and "| student_hard | s1_weak | test | 1 |" in text


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




# ---------------------------------------------------------------- seeds, pixel set, bootstrap, headline
def test_paired_bootstrap_contains_the_point_difference_and_is_reproducible():
    from floodnb.experiment.stats import paired_bootstrap

    rng = np.random.default_rng(4)
    a = rng.integers(10, 200, size=(3, 30, 3)).astype(float)  # (seeds, chips, tp/fp/fn)
    b = a.copy()
    b[..., 0] = np.maximum(a[..., 0] - rng.integers(0, 30, size=(3, 30)), 0)  # b finds less water
    r1 = paired_bootstrap(a, b, n_boot=500, seed=7)
    r2 = paired_bootstrap(a, b, n_boot=500, seed=7)
    assert r1 == r2  # reproducible for a bootstrap seed
    assert r1["lo"] <= r1["diff"] <= r1["hi"] and r1["diff"] > 0
    # the point difference is the global-confusion water IoU difference, averaged over seeds
    iou = lambda c: c[:, 0] / c.sum(axis=1)  # noqa: E731
    want = np.mean(iou(a.sum(axis=1)) - iou(b.sum(axis=1)))
    assert r1["diff"] == pytest.approx(want) and np.mean(r1["per_seed"]) == pytest.approx(want)
    assert paired_bootstrap(a, b, n_boot=500, seed=8)["lo"] != r1["lo"]  # the seed is what makes it reproducible
    same = paired_bootstrap(a, a, n_boot=100, seed=0)
    assert same["diff"] == 0 and same["lo"] == 0 and same["hi"] == 0
    with pytest.raises(ValueError, match="share shape"):
        paired_bootstrap(a, b[:, :5], n_boot=10)


def test_a_row_predicting_pixels_without_s1_is_scored_on_the_common_mask():
    """Hand-made chip: S1 missing on a stripe, reference missing on another; a prediction covering every pixel
    (as an S2-only row's does) and one cut to S1 pixels get the same pixel count and the same counts.
    """
    from floodnb.experiment.scoring import EvalChips, chip_counts, summary

    s1 = np.full((2, 8, 8), -15.0, dtype=np.float32)
    s1[:, :2] = np.nan  # rows 0-1 without S1
    s1[0, 7, 7] = np.nan  # one VV-only gap: also no S1 (both bands needed)
    ref = np.zeros((8, 8), dtype=np.int16)
    ref[4:, :] = 1
    ref[:, 0] = -1  # column 0 without reference
    mask = np.isfinite(s1).all(0) & np.isin(ref, (0, 1))
    chips = EvalChips(split="test", reference="truth_water", chip_ids=("c",), masks={"c": mask},
                      refs={"c": (ref == 1).astype(np.int8)}, s1={"c": s1})
    everywhere = np.ones((8, 8), dtype=np.int64)  # predicts water on every pixel, with or without S1
    cut = np.where(np.isfinite(s1).all(0), everywhere, -1)
    no_input = ~np.isfinite(s1).all(0)
    a = summary(pd.DataFrame([chip_counts(chips, "c", everywhere, no_input)]))
    b = summary(pd.DataFrame([chip_counts(chips, "c", cut)]))
    assert a["pixels"] == b["pixels"] == int(mask.sum()) == 6 * 7 - 1
    assert a["water_iou"] == b["water_iou"] == pytest.approx(27 / 41)  # water rows 4-7 x columns 1-7, less the VV gap
    assert a["no_input_pixels"] == 0  # the mask itself excludes pixels without S1


def _summary_row(row, valid, test, bolivia, n=3):
    return {"row": row, "group": "student" if row.startswith("student") else "baseline", "description": row, "n": n,
            "seeds": "0 1 2", "status": "done", "teacher": "teacher_s2s1" if row.startswith("student") else "",
            "seconds": 1.0, "valid_water_iou_mean": valid, "valid_water_iou_std": 0.01, "test_water_iou_mean": test,
            "test_water_iou_std": 0.02, "bolivia_water_iou_mean": bolivia, "bolivia_water_iou_std": 0.03}


def test_headline_picks_by_validation_even_when_test_disagrees():
    from floodnb.experiment.report import verdict

    summary = pd.DataFrame([_summary_row("s1_weak", 0.50, 0.50, 0.40), _summary_row("s1_hand", 0.58, 0.59, 0.55),
                            _summary_row("teacher_s2", 0.70, 0.75, 0.70),
                            _summary_row("teacher_s2s1", 0.72, 0.70, 0.71),
                            _summary_row("student_a", 0.55, 0.70, 0.45),  # best on test, not on validation
                            _summary_row("student_b", 0.60, 0.60, 0.50)])
    comp = pd.DataFrame([{"row": s, "baseline": b, "split": sp, "n": 3, "per_seed_diff": "+0.1 +0.1 +0.1",
                          "mean_diff": d, "boot_diff": d, "boot_lo": d - 0.05, "boot_hi": d + 0.05, "n_boot": 100,
                          "boot_seed": 0, "chips": 9}
                         for s, t in (("student_a", 0.70), ("student_b", 0.60)) for b, bt in (("s1_weak", 0.5),
                                                                                              ("s1_hand", 0.59))
                         for sp in ("test", "bolivia") for d in [t - bt]])
    text = verdict(summary, comp)
    assert "Teacher chosen on validation: teacher_s2s1" in text  # 0.72 > 0.70 on validation, although test says s2
    assert "Student chosen on validation: student_b (mean validation water IoU 0.600 ± 0.010 (n=3)" in text
    assert "student_a (" not in text.split("Reported")[0]  # the test-best student is not in the headline
    assert text.index("Student chosen") < text.index("Then, on test: student_b scores water IoU 0.600 ± 0.020 (n=3)")
    assert "+0.100 vs s1_weak 0.500 ± 0.020" in text and "+0.010 vs s1_hand 0.590 ± 0.020" in text
    assert "2 of 2 student rows have a higher mean water IoU than s1_weak (n=3 seeds)" in text


def test_seed_arguments_are_checked(tmp_path, capsys):
    with pytest.raises(ValueError, match="seeds must be >= 1"):
        run_experiment(tmp_path / "o", sim=SIM, budget=BUDGET, seeds=0, progress=False)
    assert cli_main(["experiment", "--seeds", "0", "--out-dir", str(tmp_path / "o2")]) == 2
    assert "seeds must be >= 1" in capsys.readouterr().err
    assert not (tmp_path / "o").exists() and not (tmp_path / "o2").exists()


def test_old_results_table_without_seeds_is_refused(tmp_path):
    out = tmp_path / "old"
    out.mkdir()
    (out / "results.csv").write_text("row,status,hash\notsu_chip,done,abc\n")
    with pytest.raises(ValueError, match="seed"):
        run_experiment(out, data_root=tmp_path / "nodata", sim=SIM, budget=BUDGET, rows="otsu_chip", progress=False)


def test_an_unscored_row_runs_once_per_seed_and_is_listed_without_metrics(full_run, tmp_path, monkeypatch):
    """The Row API other rows follow: a runner trains for ``ctx.seed`` into its own folder; ``scored=False``
    (e.g. a generator other rows use) is listed with no metrics and no comparison.
    """
    import floodnb.experiment.rows as rows_mod
    import floodnb.experiment.run as run_mod
    from floodnb.experiment.rows import Row

    seen = []

    def runner(ctx, out):
        out.mkdir(parents=True, exist_ok=True)
        (out / "artefact.txt").write_text(str(ctx.seed))
        seen.append((ctx.seed, out.name))
        return {"valid_water_iou": float("nan"), "checkpoint": "", "teacher": ""}

    monkeypatch.setitem(rows_mod.ROWS, "gen_fake", Row("gen_fake", "generator", "a per-seed artefact", scored=False))
    monkeypatch.setitem(rows_mod.RUNNERS, "gen_fake", runner)
    monkeypatch.setattr(run_mod, "TRAINED", rows_mod.TRAINED | {"gen_fake"})
    table = run_experiment(tmp_path / "o", data_root=full_run[0] / "data", budget=BUDGET, seeds=2,
                           rows="gen_fake,otsu_chip", progress=False, n_boot=10)
    assert [s for s, _ in seen] == [0, 1] and seen[0][1].startswith("gen_fake-s0-")
    g = table[table["row"] == "gen_fake"]
    assert list(g["status"]) == ["done", "done"] and g["test_water_iou"].isna().all()
    md = (tmp_path / "o" / "results.md").read_text()
    assert "| gen_fake | a per-seed artefact | 2 |" in md and "No student row finished" in md
