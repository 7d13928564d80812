"""floodnb.distill.engine: determinism, resume after a kill, out_dir contents, non-finite loss."""

from __future__ import annotations

import json

import pytest
import torch

from floodnb.distill.engine import EpochSampler, NonFiniteLossError, TrainConfig, fit, seed_everything
from floodnb.distill.evaluate import InputPlan
from floodnb.distill.runner import SupervisedObjective
from floodnb.models import ModelSpec, build_model, load_checkpoint
from tests._distill_data import S1_NORM, ToyChips

torch.set_num_threads(1)  # tiny convolutions: threads only add contention on the shared 2 cores
PLAN = InputPlan(inputs=("s1",))
CFG = TrainConfig(epochs=2, batch_size=2, lr=1e-2, seed=3, checkpoint_every=3, progress=False)


def _run(out, *, data=None, config=CFG, callback=None, resume=True):
    seed_everything(config.seed)
    model = build_model("unet_tiny", in_channels=2)
    spec = ModelSpec(model_name="unet_tiny", model_config=model.config(), inputs=("s1",), bands={"s1": ("VV", "VH")},
                     normalizers={"s1": S1_NORM})
    res = fit(model, SupervisedObjective(plan=PLAN), data if data is not None else ToyChips(n=7), config=config,
              out_dir=out, spec=spec, resume=resume, step_callback=callback)
    return model, res


def test_deterministic_loss_trajectory(tmp_path):
    _, a = _run(tmp_path / "a")
    _, b = _run(tmp_path / "b")
    assert len(a.losses) == 8 and a.losses == b.losses
    _, c = _run(tmp_path / "c", config=TrainConfig(**{**CFG.__dict__, "seed": 4}))
    assert c.losses != a.losses


def test_resume_after_kill_matches_uninterrupted(tmp_path):
    full_model, full = _run(tmp_path / "full")

    class Killed(RuntimeError):
        pass

    def kill(*, global_step, **_):
        if global_step == 5:  # epoch 2, step 1 (4 steps per epoch); last checkpoint: end of epoch 1
            raise Killed

    with pytest.raises(Killed):
        _run(tmp_path / "cut", callback=kill)
    st = torch.load(tmp_path / "cut" / "last.pt", weights_only=True)
    assert (int(st["epoch"]), int(st["step"])) == (1, 0)  # epoch 1 finished and saved, nothing of it lost
    model, res = _run(tmp_path / "cut")
    assert res.resumed_from == (1, 0)
    assert res.losses == full.losses[4:]
    for (k, v), w in zip(full_model.state_dict().items(), model.state_dict().values(), strict=True):
        assert torch.equal(v, w), k
    log = [json.loads(x) for x in (tmp_path / "cut" / "train_log.jsonl").read_text().splitlines()]
    assert [r["global_step"] for r in log] == list(range(1, 9))
    assert [r["loss"] for r in log] == full.losses


def test_resume_mid_epoch_checkpoint(tmp_path):
    cfg = TrainConfig(**{**CFG.__dict__, "checkpoint_every": 2})
    full_model, full = _run(tmp_path / "full", config=cfg)

    def kill(*, global_step, **_):
        if global_step == 7:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path / "cut", config=cfg, callback=kill)
    model, res = _run(tmp_path / "cut", config=cfg)
    assert res.resumed_from == (1, 2)  # checkpoint of global step 6 = epoch 2, step 2
    assert res.losses == full.losses[6:]
    assert all(torch.equal(a, b)
               for a, b in zip(full_model.state_dict().values(), model.state_dict().values(), strict=True))


def test_out_dir_contents_and_refusals(tmp_path):
    _run(tmp_path / "r")
    names = {p.name for p in (tmp_path / "r").iterdir()}
    assert {"last.pt", "best.safetensors", "model.safetensors", "train_log.jsonl", "epochs.csv", "config.json"} <= names
    assert not [n for n in names if n.endswith(".tmp")]
    m, spec = load_checkpoint(tmp_path / "r")
    assert spec.config["train"]["seed"] == 3 and spec.inputs == ("s1",)
    with pytest.raises(FileExistsError, match="already holds a run"):
        _run(tmp_path / "r", resume=False)
    with pytest.raises(ValueError, match="configuration differs"):
        _run(tmp_path / "r", config=TrainConfig(**{**CFG.__dict__, "lr": 0.5}))
    with pytest.raises(ValueError, match="empty"):
        _run(tmp_path / "e", data=ToyChips(n=0))


def test_non_finite_loss_names_chips(tmp_path):
    class Poisoned(ToyChips):
        def __getitem__(self, i):
            s = super().__getitem__(i)
            if i == 5:
                s["s1"][0, 3, 3] = float("nan")
            return s

    with pytest.raises(NonFiniteLossError, match="Toy_5"):
        _run(tmp_path / "p", data=Poisoned(n=7), config=TrainConfig(**{**CFG.__dict__, "epochs": 1}))


def test_epoch_sampler_shards_like_distributed_sampler():
    from torch.utils.data import DistributedSampler

    data = list(range(11))
    for rank in (0, 1):
        ours = EpochSampler(11, seed=5, rank=rank, world_size=2)
        ref = DistributedSampler(data, num_replicas=2, rank=rank, shuffle=True, seed=5)
        for epoch in (0, 1):
            ours.set_epoch(epoch)
            ref.set_epoch(epoch)
            assert list(ours) == list(ref)
    ours.set_start(3)
    assert list(ours) == ours.indices()[3:] and len(ours) == 3
