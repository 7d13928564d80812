"""Data-parallel training (floodnb.distill.ddp + engine): 2 gloo processes on 127.0.0.1 vs 1 process.

Tolerances: per-step losses of 2 processes (per-rank batch 2) vs 1 process (batch 4) agree to
``LOSS_RTOL`` relative; final weights and BatchNorm running statistics (6 AdamW steps at lr
1e-2) to ``WEIGHT_ATOL`` absolute. The default U-Net uses BatchNorm; under 2 gloo processes its
statistics are synchronised (:class:`floodnb.models.syncbn.DistBatchNorm2d`), so only float
summation order differs (measured: 1.3e-7 relative on the losses, 2.9e-5 on weights and running
statistics; every chip with the same number of labelled pixels). Without synchronisation
(``sync_batchnorm=False``) the losses differ by far more than ``LOSS_RTOL`` (tested), so the
equivalence test can fail. Resume of a SIGKILLed 2-process run reproduces the uninterrupted
2-process run exactly (same arithmetic).
"""

from __future__ import annotations

import json
import os
import signal

import pytest
import torch
from torch.multiprocessing.spawn import ProcessException

import floodnb.distill.engine as engine
import floodnb.models.checkpoint as ckpt
from floodnb import io_utils
from floodnb.distill.ddp import launch, rank_world
from floodnb.distill.engine import TrainConfig, fit, seed_everything
from floodnb.distill.evaluate import InputPlan
from floodnb.distill.runner import SupervisedObjective
from floodnb.models import ModelSpec, build_model, load_checkpoint
from floodnb.models.syncbn import DistBatchNorm2d
from tests._distill_data import S1_NORM, ToyChips

torch.set_num_threads(1)
PLAN = InputPlan(inputs=("s1",))
#: 8 chips, global batch 4 -> 2 steps per epoch, 3 epochs = 6 steps
CFG = {"epochs": 3, "batch_size": 4, "lr": 1e-2, "seed": 3, "checkpoint_every": 0, "progress": False}
LOSS_RTOL = 1e-5
WEIGHT_ATOL = 1e-4
TIMEOUT_S = 120


def _spec(model) -> ModelSpec:
    return ModelSpec(model_name="unet_tiny", model_config=model.config(), inputs=("s1",), bands={"s1": ("VV", "VH")},
                     normalizers={"s1": S1_NORM})


def _train(out, report, kill_at=None, check_refusals=False, sync_batchnorm=True):
    """One rank's run (also the 1-process reference): writes ``report/rank<r>.pt`` with losses,
    weights and every file path this rank wrote atomically.
    """
    torch.set_num_threads(1)
    rank, world = rank_world()
    if check_refusals:  # a global batch the processes cannot share is refused by every rank, before any write
        model = build_model("unet_tiny", in_channels=2)
        with pytest.raises(ValueError, match=f"batch_size=3 is the global batch .* processes \\({world}\\)"):
            fit(model, SupervisedObjective(plan=PLAN), ToyChips(n=8), config=TrainConfig(**{**CFG, "batch_size": 3}),
                out_dir=out + "_odd", spec=_spec(model))
        assert not os.path.exists(out + "_odd")
    writes: list[str] = []
    real = io_utils.atomic_path
    # every write of the engine (last.pt, logs, csv, json, safetensors) goes through atomic_path
    users = (engine, ckpt, io_utils)

    def recording(path):
        writes.append(os.path.basename(str(path)))
        return real(path)

    for mod in users:
        mod.atomic_path = recording

    def kill(*, global_step, **_):
        if kill_at is not None and global_step == kill_at and rank == 1:
            os.kill(os.getpid(), signal.SIGKILL)  # a real crash of one process mid-epoch

    seed_everything(CFG["seed"])
    model = build_model("unet_tiny", in_channels=2)
    try:
        res = fit(model, SupervisedObjective(plan=PLAN), ToyChips(n=8),
                  config=TrainConfig(**CFG, sync_batchnorm=sync_batchnorm), out_dir=out,
                  spec=_spec(model), validate=lambda m: {"water_iou": 0.5}, step_callback=kill)
    finally:
        for mod in users:
            mod.atomic_path = real
    if check_refusals:  # the finished run: rank 0 sees last.pt and every rank refuses a fresh start
        with pytest.raises(FileExistsError, match="already holds a run"):
            fit(model, SupervisedObjective(plan=PLAN), ToyChips(n=8), config=TrainConfig(**CFG), out_dir=out,
                spec=_spec(model), resume=False)
    torch.save({"losses": res.losses, "weights": model.state_dict(), "writes": writes,
                "resumed_from": res.resumed_from,
                "dist_bn": sum(isinstance(m, DistBatchNorm2d) for m in model.modules()),
                "bn": sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())},
               os.path.join(report, f"rank{rank}.pt"))


def _read(report, rank=0) -> dict:
    return torch.load(os.path.join(report, f"rank{rank}.pt"), weights_only=True)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """1-process reference and an uninterrupted 2-process run (shared by the tests below)."""
    base = tmp_path_factory.mktemp("ddp")
    for name in ("one", "two"):
        (base / f"{name}_report").mkdir()
    _train(str(base / "one"), str(base / "one_report"))
    launch(_train, (str(base / "two"), str(base / "two_report")), nproc=2, timeout_s=TIMEOUT_S)
    return base


def test_two_processes_match_one(runs):
    one, r0, r1 = _read(runs / "one_report"), _read(runs / "two_report", 0), _read(runs / "two_report", 1)
    assert len(one["losses"]) == 6
    assert r0["losses"] == r1["losses"]  # every rank logs the all-reduced global mean
    assert r0["losses"] == pytest.approx(one["losses"], rel=LOSS_RTOL)
    assert one["losses"][-1] < one["losses"][0]  # it trains
    # the default model's BatchNorm layers were synchronised across the 2 ranks (none in 1 process)
    assert one["bn"] == r0["bn"] == r0["dist_bn"] == r1["dist_bn"] > 0 and one["dist_bn"] == 0
    assert any("running_mean" in k for k in one["weights"])  # compared below with the weights
    for k, v in one["weights"].items():
        assert torch.equal(r0["weights"][k], r1["weights"][k]), k  # DDP keeps replicas identical
        assert torch.allclose(r0["weights"][k], v, atol=WEIGHT_ATOL, rtol=0), k
    log = [json.loads(x) for x in (runs / "two" / "train_log.jsonl").read_text().splitlines()]
    assert [r["loss"] for r in log] == r0["losses"]
    # the files of the 2-process run are the single-process layout, written by rank 0 only
    assert r1["writes"] == []
    assert {"last.pt", "best.safetensors", "model.safetensors", "epochs.csv", "config.json"} <= set(r0["writes"])
    assert r0["writes"].count("model.safetensors") == 1 and r0["writes"].count("last.pt") == 3  # once per epoch
    assert not [p for p in os.listdir(runs / "two") if ".tmp" in p]
    m, _ = load_checkpoint(runs / "two" / "model.safetensors")
    assert all(torch.equal(a, b) for a, b in zip(m.state_dict().values(), r0["weights"].values(), strict=True))


def test_unsynchronised_batchnorm_would_fail_the_equivalence(runs, tmp_path, capfd):
    """Per-process BatchNorm statistics (sync off) change the losses far beyond LOSS_RTOL: the test has teeth."""
    report = tmp_path / "report"
    report.mkdir()
    launch(_train, (str(tmp_path / "nosync"), str(report), None, False, False), nproc=2, timeout_s=TIMEOUT_S)
    assert "sync_batchnorm=False: BatchNorm statistics are per process" in capfd.readouterr().err  # rank 0 warns
    one, r0 = _read(runs / "one_report"), _read(report, 0)
    assert r0["dist_bn"] == 0
    worst = max(abs(a - b) / abs(b) for a, b in zip(r0["losses"], one["losses"], strict=True))
    assert worst > 100 * LOSS_RTOL


def test_killed_two_process_run_resumes_same_trajectory(runs, tmp_path):
    report = tmp_path / "report"
    report.mkdir()
    out = str(tmp_path / "cut")
    # rank 1 is SIGKILLed at global step 3 (epoch 2, step 1); the launcher stops rank 0 too
    with pytest.raises(ProcessException):  # exit by signal (rank 1) or lost peer (rank 0)
        launch(_train, (out, str(report), 3), nproc=2, timeout_s=TIMEOUT_S)
    st = torch.load(tmp_path / "cut" / "last.pt", weights_only=True)
    assert (int(st["epoch"]), int(st["step"]), int(st["world_size"])) == (1, 0, 2)
    launch(_train, (out, str(report), None, True), nproc=2, timeout_s=TIMEOUT_S)
    full, r0, r1 = _read(runs / "two_report"), _read(report, 0), _read(report, 1)
    assert tuple(r0["resumed_from"]) == tuple(r1["resumed_from"]) == (1, 0)
    assert r0["losses"] == r1["losses"] == full["losses"][2:]
    for k, v in full["weights"].items():
        assert torch.equal(r0["weights"][k], v), k
    log = [json.loads(x) for x in (tmp_path / "cut" / "train_log.jsonl").read_text().splitlines()]
    assert [r["global_step"] for r in log] == list(range(1, 7))
    assert [r["loss"] for r in log] == full["losses"]


def test_cli_nproc_two(tmp_path, capfd):
    from floodnb.cli import main
    from floodnb.simulate import simulate_dataset

    root = str(simulate_dataset(tmp_path / "data", n_hand=8, n_weak=0, size=32, seed=0, workers=1, progress=False))
    args = ["train", "baseline", "--kind", "s1_hand", "--data-root", root, "--model", "unet_tiny", "--epochs", "1",
            "--no-progress", "--checkpoint-every", "0", "--device", "cpu", "--nproc", "2"]
    assert main([*args, "--out-dir", str(tmp_path / "b"), "--batch-size", "3"]) == 2
    assert "divisible by --nproc 2" in capfd.readouterr().err
    assert main([*args, "--out-dir", str(tmp_path / "b"), "--batch-size", "2"]) == 0
    out = capfd.readouterr().out
    assert "best epoch" in out
    m = json.loads((tmp_path / "b" / "metrics.json").read_text())
    assert m["splits"] and all(0.0 <= s["water_iou"] <= 1.0 for s in m["splits"].values())
    log = [json.loads(x) for x in (tmp_path / "b" / "train_log.jsonl").read_text().splitlines()]
    assert json.loads((tmp_path / "b" / "config.json").read_text())["batch_size"] == 2
    assert [r["global_step"] for r in log] == list(range(1, len(log) + 1)) and log[-1]["epoch"] == 1


def test_single_process_helpers(monkeypatch):
    from floodnb.distill import ddp

    for k in ddp.ENV_KEYS:
        monkeypatch.delenv(k, raising=False)
    assert ddp.rank_world() == (0, 1) and ddp.ensure_initialized("cpu") == (0, 1)
    assert ddp.backend_for("cpu") == "gloo" and ddp.backend_for("cuda:1") == "nccl"
    assert ddp.broadcast_object({"a": 1}) == {"a": 1} and ddp.gather_object(3) == [3]
    loss, terms, bad = ddp.step_summary(torch.tensor(0.5), {"ce": torch.tensor(0.25)})
    assert (loss, terms, bad) == (0.5, {"ce": 0.25}, [])
    assert ddp.step_summary(torch.tensor(float("nan")), {})[2] == [0]
    with pytest.raises(ValueError, match=r"\['RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT'\] are not set"):
        ddp.init_distributed(device="cpu")
    with pytest.raises(ValueError, match="nproc must be >= 1"):
        launch(_train, (), nproc=0)
