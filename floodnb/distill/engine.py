"""Training engine: plain torch, resumable, deterministic on CPU, DDP-ready.

:func:`fit` trains ``model`` on a dataset of sample dicts with an *objective*
``objective(model, batch) -> (loss, parts)`` (``parts``: dict of float loss terms for the log),
using AdamW and a per-step cosine learning-rate schedule.

Out folder (``out_dir``), every file written atomically (temp file + ``os.replace``):

* ``last.pt`` — training state (model, optimizer, scheduler, RNG states, epoch, step within the
  epoch, running loss sums, epoch history, the model spec as JSON); tensors and plain numbers
  only, loads with ``torch.load(weights_only=True)``. Written at every epoch end and every
  ``checkpoint_every`` steps.
* ``best.safetensors`` (best validation water IoU), ``model.safetensors`` (final weights) —
  :func:`floodnb.models.save_checkpoint` format.
* ``train_log.jsonl`` (one line per step: epoch, step, global_step, loss, loss terms, lr),
  ``epochs.csv`` (per epoch: mean train loss, validation metrics, seconds), ``config.json``.

Resume: ``fit(..., resume=True)`` on an out_dir holding ``last.pt`` restores everything and
continues at the next step of the interrupted epoch, so no finished step or epoch is lost and
the final weights equal those of an uninterrupted run (tested). The sample order is a function
of ``(seed, epoch)`` only (:class:`EpochSampler`, or the dataset's own ``epoch_sampler`` such as
:class:`floodnb.distill.mixing.HandMixSampler`: :func:`make_sampler`), so resuming just skips the
batches already done. A run whose configuration differs from the stored one is refused before any weight is
loaded: the optimisation settings (:class:`TrainConfig`), the model (method, architecture and its
config, input roles and bands, label conditioning, metadata) and the data settings the caller
passes as ``settings`` (``floodnb train``: crop, data root or store, training chips) are recorded
in ``last.pt`` and compared, and the message names every differing key with its stored and new
value.

A fresh run that fails before its first checkpoint (``last.pt``) leaves ``out_dir`` as it found
it: a folder ``fit`` created is removed, and in an existing folder the files ``fit`` writes
(``config.json``, ``train_log.jsonl``, ...) are restored to what they were (moved aside at the
start into a hidden ``.*.tmp`` folder, moved back on failure, dropped once ``last.pt`` exists).

Data-parallel (:mod:`floodnb.distill.ddp`): when ``torch.distributed`` is initialised, or the
process was started by ``torchrun`` (``WORLD_SIZE`` > 1; the group is then initialised here:
NCCL and ``cuda:LOCAL_RANK`` for ``device="cuda"``, gloo on CPU), the model is wrapped in
``DistributedDataParallel`` and :class:`EpochSampler` shards each epoch's permutation across
ranks exactly like ``torch.utils.data.DistributedSampler``. ``batch_size`` is the *global*
batch: each of the ``W`` processes takes ``batch_size / W`` samples per step (it must divide),
and the union of the ranks' samples of step ``k`` is the 1-process batch ``k`` whenever the
dataset size is a multiple of ``batch_size`` (otherwise the last step is padded by wrapping,
as ``DistributedSampler`` does). The logged loss is the mean over ranks (every rank logs the
same value). Rank 0 alone writes files (checkpoints, logs, metrics), runs ``validate`` and
shows progress; the others wait at a barrier after each write. On resume rank 0 reads
``last.pt`` and broadcasts it, so every rank starts from identical state even without a shared
file system. DDP averages the per-rank mean losses' gradients: this equals the gradient of the
global-batch mean when every rank's share has the same loss weight (same count of labelled
pixels), as with whole labelled chips; chips with different no-data areas give slightly
different (equally valid) averaging. BatchNorm (floodnb's default norm) is synchronised over the
ranks (``sync_batchnorm``): ``SyncBatchNorm`` on CUDA, :class:`floodnb.models.syncbn.DistBatchNorm2d`
on CPU/gloo; GroupNorm needs nothing.

Precision (``TrainConfig.precision``, :mod:`floodnb.runtime`): ``"bfloat16"`` (CPU, CUDA) or
``"float16"`` (CUDA) runs the objective (forward and loss) under :func:`torch.autocast`; weights,
gradients and AdamW state stay float32 (mixed precision, Micikevicius et al. 2018), float16 scales
the loss with a ``GradScaler`` (its state is saved in ``last.pt``), and reduced precision puts the
model in channels-last memory format (faster oneDNN convolutions; the saved weights are the same).

A non-finite loss raises :class:`NonFiniteLossError` naming the batch's chips.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import random
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler

from floodnb import runtime
from floodnb.distill import ddp
from floodnb.distill.inputs import chip_ids, collate, dataset_len, to_device
from floodnb.models.checkpoint import SPEC_KEY, ModelSpec, atomic_path, atomic_write_text, save_checkpoint

Objective = Callable[[nn.Module, Mapping], tuple[torch.Tensor, dict]]
STATE_FILE = "last.pt"
#: config fields that may change between an interrupted run and its resumption
RESUME_FREE: tuple[str, ...] = ("progress", "num_workers", "checkpoint_every", "device")
#: files fit writes into out_dir (restored when a fresh run fails before its first checkpoint)
RUN_FILES: tuple[str, ...] = ("config.json", "train_log.jsonl", "epochs.csv", "best.safetensors",
                              "model.safetensors", STATE_FILE)
#: spec fields that identify the model a checkpoint's weights belong to
_SPEC_IDENTITY: tuple[str, ...] = ("model_name", "model_config", "inputs", "bands", "label_conditioning", "meta_dim")


class NonFiniteLossError(ValueError):
    """The loss became NaN/inf; the message names the epoch, step and chips of the batch."""


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings of one run (stored in checkpoints and ``config.json``)."""

    epochs: int = 10
    batch_size: int = 8  # global batch: split evenly over the processes of data-parallel training
    lr: float = 1e-3
    weight_decay: float = 1e-4
    seed: int = 0
    scheduler: str = "cosine"  # "cosine" (per step, to 0) | "constant"
    grad_clip: float = 0.0  # max gradient norm, 0 = off
    checkpoint_every: int = 50  # steps between mid-epoch checkpoints, 0 = epoch ends only
    num_workers: int = 0
    progress: bool = True
    device: str = "cpu"  # "cuda" = cuda:LOCAL_RANK of each process under data-parallel training
    sync_batchnorm: bool = True  # data-parallel: BatchNorm statistics over all ranks (CUDA and CPU)
    precision: str = "float32"  # "float32" | "bfloat16" | "float16" (CUDA): autocast of forward + loss

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {self.epochs}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.scheduler not in ("cosine", "constant"):
            raise ValueError(f"scheduler={self.scheduler!r}: expected 'cosine' or 'constant'")
        if self.checkpoint_every < 0:
            raise ValueError(f"checkpoint_every must be >= 0, got {self.checkpoint_every}")
        if self.precision not in runtime.PRECISIONS:
            raise ValueError(f"precision={self.precision!r}: expected one of {', '.join(runtime.PRECISIONS)}")


@dataclass
class FitResult:
    """What :func:`fit` leaves: paths, per-epoch history, best validation metrics."""

    out_dir: Path
    history: list[dict] = field(default_factory=list)
    best_metrics: dict = field(default_factory=dict)
    best_epoch: int | None = None
    resumed_from: tuple[int, int] | None = None  # (epoch, step in epoch) of the checkpoint resumed
    losses: list[float] = field(default_factory=list)  # per-step losses of this call (mean over ranks)


def dist_info() -> tuple[int, int]:
    """``(rank, world_size)`` of ``torch.distributed`` or ``(0, 1)`` when not initialised."""
    return ddp.rank_world()


_barrier = ddp.barrier


class EpochSampler(Sampler[int]):
    """Seeded per-epoch permutation, sharded by rank, resumable mid-epoch.

    Same ordering rule as ``DistributedSampler(shuffle=True, drop_last=False)``: permutation of
    ``range(n)`` from a generator seeded with ``seed + epoch``, padded by wrapping to a multiple
    of ``world_size``, rank ``r`` takes ``perm[r::world_size]``. :meth:`set_start` skips the first
    ``k`` indices of this rank's shard (the samples of the batches already trained).
    """

    def __init__(self, n: int, *, seed: int, shuffle: bool = True, rank: int = 0, world_size: int = 1) -> None:
        if n < 1:
            raise ValueError("EpochSampler: the dataset is empty (0 chips)")
        self.n, self.seed, self.shuffle, self.rank, self.world_size = n, seed, shuffle, rank, world_size
        self.epoch, self.start = 0, 0
        self.num_samples = math.ceil(n / world_size)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def set_start(self, start: int) -> None:
        self.start = start

    def indices(self) -> list[int]:
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed + self.epoch)
            perm = torch.randperm(self.n, generator=g).tolist()
        else:
            perm = list(range(self.n))
        total = self.num_samples * self.world_size
        perm = (perm * math.ceil(total / self.n))[:total]
        return perm[self.rank:total:self.world_size]

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices()[self.start:])

    def __len__(self) -> int:
        return self.num_samples - self.start


def make_sampler(data: Dataset, config: TrainConfig, *, rank: int = 0, world: int = 1) -> EpochSampler:
    """The epoch sampler of ``data``: its own ``data.epoch_sampler(seed=, batch_size=, rank=, world_size=)``
    when it has one (e.g. :class:`floodnb.distill.mixing.HandPoolData`: fixed hand count per batch),
    else :class:`EpochSampler` over all of it.
    """
    if hasattr(data, "epoch_sampler"):
        return data.epoch_sampler(seed=config.seed, batch_size=config.batch_size, rank=rank, world_size=world)
    return EpochSampler(dataset_len(data), seed=config.seed, rank=rank, world_size=world)


def set_epoch(data: Dataset, epoch: int) -> None:
    """Call ``set_epoch(epoch)`` on ``data`` and on every dataset it wraps (ConcatDataset, views),
    so epoch-seeded augmentation (``floodnb.data.torch.ChipDataset``) follows the engine's epoch.
    """
    if hasattr(data, "set_epoch"):
        data.set_epoch(epoch)
    for inner in (data.datasets if hasattr(data, "datasets") else []):
        set_epoch(inner, epoch)
    if hasattr(data, "data") and isinstance(data.data, Dataset):
        set_epoch(data.data, epoch)


def _rng_state() -> dict:
    np_state = np.random.get_state()
    assert isinstance(np_state, tuple)  # the legacy tuple form (the default)
    return {
        "torch": torch.get_rng_state(),
        "numpy_key": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)),
        "numpy_pos": int(np_state[2]), "numpy_gauss": int(np_state[3]), "numpy_cached": float(np_state[4]),
        "python": json.dumps(random.getstate()),
    }


def _set_rng_state(s: Mapping) -> None:
    torch.set_rng_state(s["torch"])
    np.random.set_state(("MT19937", s["numpy_key"].numpy().astype(np.uint32), s["numpy_pos"], s["numpy_gauss"],
                         s["numpy_cached"]))
    py = json.loads(s["python"])
    random.setstate((py[0], tuple(py[1]), py[2]))


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch RNGs (call before building the model for reproducible init)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _make_scheduler(opt: torch.optim.Optimizer, config: TrainConfig, total_steps: int):
    if config.scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(total_steps, 1))
    return torch.optim.lr_scheduler.ConstantLR(opt, factor=1.0, total_iters=0)


def _config_dict(config: TrainConfig) -> dict:
    return {k: v for k, v in asdict(config).items() if k not in RESUME_FREE}


def _config_diff(stored: Mapping, config: TrainConfig) -> dict:
    """``{field: (stored, now)}`` of the resume-relevant fields that differ; a field the stored run
    predates counts as its default.
    """
    fields = TrainConfig.__dataclass_fields__
    now = _config_dict(config)
    old = {k: stored[k] if k in stored else fields[k].default for k in now}
    return {k: (old[k], now[k]) for k in now if old[k] != now[k]}


def _jsonable(obj):
    return json.loads(json.dumps(obj, default=str))


def run_identity(spec: ModelSpec | Mapping, settings: Mapping | None = None) -> dict:
    """Keys a resumed run must share with the stored one besides :class:`TrainConfig`: the spec's
    model fields (:data:`_SPEC_IDENTITY`), its ``config`` entries except ``train`` (method and
    method options) and ``settings`` (data settings), as JSON values.
    """
    d = spec if isinstance(spec, Mapping) else json.loads(spec.to_json())
    out = {k: d[k] for k in _SPEC_IDENTITY if k in d}
    out.update({k: v for k, v in dict(d.get("config") or {}).items() if k != "train"})
    out.update(dict(settings or {}))
    return _jsonable(out)


def _identity_diff(stored: Mapping, now: Mapping) -> dict:
    """``{key: (stored, now)}`` of keys both runs record with different values (a key the stored
    run predates is not compared: it cannot be known).
    """
    return {k: (stored[k], now[k]) for k in now if k in stored and stored[k] != now[k]}


class _FreshRunGuard:
    """Undo a fresh run's writes in ``out`` when it fails before its first checkpoint (see module doc)."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.created = not out.exists()
        self.backup: Path | None = None
        self.done = False
        out.mkdir(parents=True, exist_ok=True)
        old = [n for n in RUN_FILES if (out / n).exists()]
        if old:
            self.backup = Path(tempfile.mkdtemp(prefix=".floodnb-previous.", suffix=".tmp", dir=out))
            for n in old:
                os.replace(out / n, self.backup / n)

    def committed(self) -> None:
        """The first checkpoint exists: the previous files are superseded."""
        self.done = True
        if self.backup is not None:
            shutil.rmtree(self.backup, ignore_errors=True)
            self.backup = None

    def rollback(self) -> None:
        if self.created:
            shutil.rmtree(self.out, ignore_errors=True)
            return
        for n in RUN_FILES:
            (self.out / n).unlink(missing_ok=True)
        if self.backup is not None:
            for f in self.backup.iterdir():
                os.replace(f, self.out / f.name)
            self.backup.rmdir()


def fit(model: nn.Module, objective: Objective, train_data: Dataset, *, config: TrainConfig, out_dir: str | Path,
        spec: ModelSpec, validate: Callable[[nn.Module], dict] | None = None, select_metric: str = "water_iou",
        resume: bool = True, step_callback: Callable[..., None] | None = None,
        settings: Mapping | None = None) -> FitResult:
    """Train ``model`` on ``train_data`` (sample dicts) minimising ``objective``; see the module doc.

    ``validate(model) -> metrics`` runs on rank 0 after every epoch; the epoch with the highest
    ``metrics[select_metric]`` is saved as ``best.safetensors`` (without ``validate``, the last
    epoch is the best). ``spec`` is stored in every checkpoint with ``config`` and the metrics
    filled in. ``step_callback(epoch=, step=, global_step=, loss=)`` runs after every optimizer
    step (after any checkpoint of that step); an exception in it stops training like a kill.
    With ``resume=False`` an out_dir that already holds a run is refused (nothing is overwritten).
    ``settings`` (JSON-able mapping, e.g. ``{"crop": 64, "data": "/data/root"}``) is recorded and
    must match on resume, like ``config`` and the model in ``spec``.
    """
    out = Path(out_dir)
    rank, world = ddp.ensure_initialized(config.device)
    is_main = rank == 0
    device = ddp.process_device(config.device)
    state_path = out / STATE_FILE
    _check_fit(train_data, config, world=world, out=out)
    rank_batch = config.batch_size // world
    st = _read_state(state_path, resume=resume, is_main=is_main)
    base_model, scaler = _prepare_model(model, config, device), runtime.grad_scaler(config.precision, device)

    sampler = make_sampler(train_data, config, rank=rank, world=world)
    steps_per_epoch = math.ceil(sampler.num_samples / rank_batch)
    opt = torch.optim.AdamW(base_model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    sched = _make_scheduler(opt, config, steps_per_epoch * config.epochs)
    result = FitResult(out_dir=out)
    pos = _Position()
    identity = run_identity(spec, settings)
    guard = None
    if st is not None:
        pos = _restore(st, state_path=state_path, config=config, identity=identity, model=base_model, opt=opt,
                       sched=sched, result=result, log_path=out / "train_log.jsonl" if is_main else None, scaler=scaler)
    elif is_main:
        guard = _FreshRunGuard(out)
    del st

    def save_state() -> None:
        if is_main:
            blob = _state_blob(pos, model=base_model, opt=opt, sched=sched, result=result, config=config,
                               world=world, identity=identity, spec=spec, scaler=scaler)
            with atomic_path(state_path) as tmp:
                torch.save(blob, tmp)
            if guard is not None:
                guard.committed()
        _barrier()

    log = None
    try:
        if guard is not None:
            atomic_write_text(out / "config.json", json.dumps(asdict(config), indent=2))
        model = ddp.wrap_model(base_model, device=device)
        loader = DataLoader(train_data, batch_size=rank_batch, sampler=sampler, collate_fn=collate,
                            num_workers=config.num_workers, drop_last=False,  # own generator: an iterator
                            generator=torch.Generator().manual_seed(config.seed))  # must not draw global RNG
        log = open(out / "train_log.jsonl", "a", encoding="utf-8") if is_main else None  # noqa: SIM115
        model.train()
        _run_epochs(model, base_model, objective, train_data, loader, sampler, pos=pos, result=result, opt=opt,
                    sched=sched, config=config, rank_batch=rank_batch, steps_per_epoch=steps_per_epoch,
                    device=device, world=world, is_main=is_main, log=log, validate=validate,
                    select_metric=select_metric, out=out, spec=spec, save_state=save_state,
                    step_callback=step_callback, scaler=scaler)
        if is_main:
            save_checkpoint(out / "model.safetensors", base_model, spec=_spec_with(
                spec, config, {"valid_best": result.best_metrics, "best_epoch": result.best_epoch}))
        _barrier()
    except BaseException:
        if log is not None:
            log.close()
            log = None
        if guard is not None and not guard.done:
            guard.rollback()
        raise
    finally:
        if log is not None:
            log.close()
    return result


def _prepare_model(model: nn.Module, config: TrainConfig, device) -> nn.Module:
    """Set-up phase: ``model`` on ``device`` (synchronised BatchNorm under data-parallel training) and,
    in channels-last memory format where :func:`floodnb.runtime.prefer_channels_last` says so (CPU: always;
    elsewhere: reduced precision); ValueError for a precision ``device`` lacks.
    """
    runtime.check_precision(config.precision, device, name="TrainConfig.precision")
    model = ddp.prepare_model(model.to(device), device=device, sync_batchnorm=config.sync_batchnorm)
    if runtime.prefer_channels_last(config.precision, device):
        model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    return model


@dataclass
class _Position:
    """Where training stands: the counters a resume restores and every checkpoint saves
    (``epoch`` and ``step`` 0-based: finished epochs and steps done in the current one).
    """

    epoch: int = 0
    step: int = 0
    global_step: int = 0
    loss_sum: float = 0.0
    loss_count: int = 0
    best_score: float = -math.inf


def _run_epochs(model: nn.Module, base_model: nn.Module, objective: Objective, train_data: Dataset,
                loader: DataLoader, sampler: EpochSampler, *, pos: _Position, result: FitResult, opt, sched,
                config: TrainConfig, rank_batch: int, steps_per_epoch: int, device, world: int, is_main: bool, log,
                validate: Callable | None, select_metric: str, out: Path, spec: ModelSpec,
                save_state: Callable[[], None], step_callback: Callable[..., None] | None,
                scaler: torch.amp.GradScaler | None = None) -> None:
    """Epoch phase: from ``pos`` to ``config.epochs``, every step (:func:`_train_step`), a mid-epoch
    checkpoint every ``config.checkpoint_every`` steps, then :func:`_end_epoch` and a checkpoint.
    """
    from tqdm.auto import tqdm

    while pos.epoch < config.epochs:
        t0 = time.perf_counter()
        sampler.set_epoch(pos.epoch)
        set_epoch(train_data, pos.epoch)
        sampler.set_start(pos.step * rank_batch)
        bar = tqdm(total=steps_per_epoch, initial=pos.step, desc=f"epoch {pos.epoch + 1}/{config.epochs}",
                   disable=not (config.progress and is_main), leave=False, dynamic_ncols=True)
        for batch in loader:
            value = _train_step(model, base_model, objective, to_device(batch, device), opt=opt, sched=sched,
                                config=config, pos=pos, result=result, world=world, log=log, bar=bar,
                                device=device, scaler=scaler)
            if config.checkpoint_every and pos.global_step % config.checkpoint_every == 0 and \
                    pos.step < steps_per_epoch:
                save_state()
            if step_callback is not None:
                step_callback(epoch=pos.epoch, step=pos.step, global_step=pos.global_step, loss=value)
        bar.close()
        _end_epoch(pos, base_model, result=result, validate=validate if is_main else None,
                   select_metric=select_metric, is_main=is_main, out=out, spec=spec, config=config, t0=t0)
        save_state()


def _read_state(state_path: Path, *, resume: bool, is_main: bool) -> dict | None:
    """The stored ``last.pt`` of the run (None for a fresh run), read by rank 0 and broadcast so
    every rank gets the same state. FileExistsError when a run exists and ``resume`` is False.
    """
    # rank 0 decides and reads; every rank gets the same answer and the same state
    has_state = ddp.broadcast_object(state_path.exists())
    if has_state and not resume:
        raise FileExistsError(f"{state_path.parent} already holds a run ({state_path.name}); pass resume=True to "
                              "continue it or choose another out_dir")
    return ddp.broadcast_object(torch.load(state_path, map_location="cpu", weights_only=True)
                                if has_state and is_main else None)


def _check_fit(train_data: Dataset, config: TrainConfig, *, world: int, out: Path) -> None:
    """ValueError for empty training data or a global batch not divisible by the process count."""
    if dataset_len(train_data) == 0:
        raise ValueError(f"training data is empty (0 chips); nothing to train in {out}")
    if config.batch_size % world:
        raise ValueError(f"batch_size={config.batch_size} is the global batch and must be divisible by the number "
                         f"of data-parallel processes ({world}); choose e.g. batch_size="
                         f"{max(world, config.batch_size - config.batch_size % world)}")


def _restore(st: Mapping, *, state_path: Path, config: TrainConfig, identity: dict, model: nn.Module, opt, sched,
             result: FitResult, log_path: Path | None, scaler: torch.amp.GradScaler | None = None) -> _Position:
    """Resume phase: check that the stored run matches (ValueError naming the differing fields),
    load model, optimizer, scheduler and RNG state from ``st``, fill ``result``'s history and
    best epoch, and drop the lines of ``log_path`` (if given) after the stored step. Returns the
    stored position.
    """
    stored_identity = json.loads(st["identity"]) if "identity" in st else run_identity(json.loads(st[SPEC_KEY]))
    diff = {**_config_diff(json.loads(st["config"]), config), **_identity_diff(stored_identity, identity)}
    if diff:
        raise ValueError(f"{state_path}: cannot resume, configuration differs from the stored run "
                         f"(field: (stored, now)) {diff}; use another out_dir")
    model.load_state_dict(st["model"])
    opt.load_state_dict(st["optimizer"])
    sched.load_state_dict(st["scheduler"])
    if scaler is not None and "scaler" in st:
        scaler.load_state_dict(json.loads(st["scaler"]))
    _set_rng_state(st["rng"])
    pos = _Position(epoch=int(st["epoch"]), step=int(st["step"]), global_step=int(st["global_step"]),
                    loss_sum=float(st["loss_sum"]), loss_count=int(st["loss_count"]),
                    best_score=float(st["best_score"]))
    result.history = json.loads(st["history"])
    result.best_epoch = int(st["best_epoch"]) if int(st["best_epoch"]) >= 0 else None
    result.best_metrics = json.loads(st["best_metrics"])
    result.resumed_from = (pos.epoch, pos.step)
    if log_path is not None:
        _truncate_log(log_path, pos.global_step)
    return pos


def _state_blob(pos: _Position, *, model: nn.Module, opt, sched, result: FitResult, config: TrainConfig, world: int,
                identity: dict, spec: ModelSpec, scaler: torch.amp.GradScaler | None = None) -> dict:
    """Everything :func:`_restore` needs to continue the run exactly (the ``last.pt`` payload)."""
    extra = {} if scaler is None else {"scaler": json.dumps(scaler.state_dict())}
    return {**extra,
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "rng": _rng_state(),
        "epoch": pos.epoch, "step": pos.step, "global_step": pos.global_step, "loss_sum": pos.loss_sum,
        "loss_count": pos.loss_count, "history": json.dumps(result.history), "best_score": pos.best_score,
        "best_epoch": result.best_epoch if result.best_epoch is not None else -1,
        "best_metrics": json.dumps(result.best_metrics, default=float),
        "config": json.dumps(_config_dict(config)), "world_size": world, "identity": json.dumps(identity),
        SPEC_KEY: _spec_with(spec, config, result.best_metrics).to_json(),
    }


def _train_step(model: nn.Module, base_model: nn.Module, objective: Objective, batch: Mapping, *, opt, sched,
                config: TrainConfig, pos: _Position, result: FitResult, world: int, log, bar,
                device: torch.device | str = "cpu", scaler: torch.amp.GradScaler | None = None) -> float:
    """Epoch phase, one optimizer step on ``batch``: loss (global mean over ranks; forward and
    loss under ``config.precision``'s autocast), backward (scaled by ``scaler`` for float16),
    clip, step; advances ``pos``, logs the step (rank 0: ``log`` line and ``bar``). Returns the
    loss. Raises :class:`NonFiniteLossError` naming the step and the batch's chips.
    """
    with runtime.autocast(config.precision, device):
        loss, parts = objective(model, batch)
    loss = loss.float()
    # global mean over ranks, agreed before backward (a failing rank must not strand the others)
    value, terms, bad = ddp.step_summary(loss, parts)
    if bad:
        ids = ddp.gather_object(chip_ids(batch))
        where = "; ".join(f"rank {r}: {ids[r]}" for r in bad) if world > 1 else str(ids[0])
        raise NonFiniteLossError(
            f"non-finite loss {value} at epoch {pos.epoch + 1}, step {pos.step + 1} (global step "
            f"{pos.global_step + 1}); terms {terms}; chips of the batch: {where}")
    opt.zero_grad(set_to_none=True)
    _backward_step(loss, base_model, opt, config=config, scaler=scaler)
    sched.step()
    pos.step += 1
    pos.global_step += 1
    pos.loss_sum += value
    pos.loss_count += 1
    result.losses.append(value)
    if log is not None:
        log.write(json.dumps({"epoch": pos.epoch + 1, "step": pos.step, "global_step": pos.global_step,
                              "loss": value, **terms, "lr": opt.param_groups[0]["lr"]}) + "\n")
        log.flush()
        bar.set_postfix(loss=f"{value:.4f}", refresh=False)
        bar.update(1)
    return value


def _backward_step(loss: torch.Tensor, model: nn.Module, opt: torch.optim.Optimizer, *, config: TrainConfig,
                   scaler: torch.amp.GradScaler | None) -> None:
    """Backward pass, optional gradient clipping and optimizer step; with a float16 ``scaler`` the
    loss is scaled, gradients unscaled before clipping, and a step with inf/NaN gradients skipped.
    """
    if scaler is None:
        loss.backward()
        if config.grad_clip > 0:
            nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        opt.step()
        return
    scaler.scale(loss).backward()
    if config.grad_clip > 0:
        scaler.unscale_(opt)
        nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
    scaler.step(opt)
    scaler.update()


def _end_epoch(pos: _Position, model: nn.Module, *, result: FitResult, validate: Callable | None,
               select_metric: str, is_main: bool, out: Path, spec: ModelSpec, config: TrainConfig,
               t0: float) -> None:
    """End-of-epoch phase: validate (``validate`` given on rank 0 only), append the history row,
    save ``best.safetensors`` when the epoch is the best so far, write ``epochs.csv`` (rank 0)
    and move ``pos`` to the start of the next epoch.
    """
    row = {"epoch": pos.epoch + 1, "train_loss": pos.loss_sum / max(pos.loss_count, 1), "steps": pos.step}
    if validate is not None:
        metrics = validate(model)
        row.update({f"valid_{k}": v for k, v in metrics.items() if isinstance(v, (int, float))})
        score = float(metrics[select_metric])
        score = -math.inf if not math.isfinite(score) else score
    else:
        metrics, score = {}, float(pos.epoch)
    row["seconds"] = time.perf_counter() - t0
    result.history.append(row)
    if is_main and (score > pos.best_score or result.best_epoch is None):
        pos.best_score, result.best_epoch = score, pos.epoch + 1
        result.best_metrics = {k: v for k, v in metrics.items() if isinstance(v, (int, float, str))}
        save_checkpoint(out / "best.safetensors", model,
                        spec=_spec_with(spec, config, {"valid": result.best_metrics, "best_epoch": pos.epoch + 1}))
    pos.epoch, pos.step, pos.loss_sum, pos.loss_count = pos.epoch + 1, 0, 0.0, 0
    if is_main:
        _write_epochs_csv(out / "epochs.csv", result.history)


def _spec_with(spec: ModelSpec, config: TrainConfig, metrics: dict) -> ModelSpec:
    return replace(spec, config={**spec.config, "train": asdict(config)}, metrics={**spec.metrics, **metrics})


def _truncate_log(path: Path, global_step: int) -> None:
    """Drop log lines of steps after the checkpoint being resumed (they will be redone)."""
    if not path.exists():
        return
    keep = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            if json.loads(line)["global_step"] <= global_step:
                keep.append(line)
        except (json.JSONDecodeError, KeyError):
            break  # a line cut by the kill: everything after it is redone
    atomic_write_text(path, "".join(k + "\n" for k in keep))


def _write_epochs_csv(path: Path, history: list[dict]) -> None:
    cols: list[str] = []
    for row in history:
        cols += [c for c in row if c not in cols]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols)
    w.writeheader()
    w.writerows(history)
    atomic_write_text(path, buf.getvalue())
