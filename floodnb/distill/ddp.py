"""Multi-process data-parallel training over ``torch.distributed`` (DDP), used by :mod:`floodnb.distill.engine`.

Two ways to run :func:`floodnb.distill.engine.fit` (and so every teacher / student / baseline
run) on several processes, unchanged:

* **torchrun** (GPU cluster, several machines): ``torchrun --nproc_per_node=8 -m floodnb train
  teacher ...`` sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``/``MASTER_PORT``;
  :func:`ensure_initialized` then initialises the process group from those variables (NCCL and
  ``cuda:LOCAL_RANK`` on CUDA, gloo on CPU).
* **spawn** (one machine, e.g. CPU): :func:`launch` starts ``nproc`` processes with
  ``torch.multiprocessing`` on ``127.0.0.1`` at a free port and runs ``fn(*args)`` in each after
  initialising the group; ``floodnb train ... --nproc N`` uses it.

Collective helpers (:func:`broadcast_object`, :func:`step_summary`, :func:`barrier`) are
no-ops returning the local value in a single process, so the engine has one code path.
"""

from __future__ import annotations

import atexit
import datetime as _dt
import math
import os
import socket
import time
import warnings
from collections.abc import Callable, Mapping, Sequence

import torch
import torch.distributed as dist
from torch import nn

#: Process-group timeout (s): how long a collective waits for a slow rank (rank 0 validating or
#: labelling a pool while the others wait at a barrier) before the run fails.
DEFAULT_TIMEOUT_S: float = 2 * 3600.0
ENV_KEYS: tuple[str, ...] = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


def is_distributed() -> bool:
    """``True`` when a ``torch.distributed`` process group is initialised."""
    return dist.is_available() and dist.is_initialized()


def rank_world() -> tuple[int, int]:
    """``(rank, world_size)`` of the process group, ``(0, 1)`` without one."""
    return (dist.get_rank(), dist.get_world_size()) if is_distributed() else (0, 1)


def local_rank() -> int:
    """This process's GPU slot on its machine (``LOCAL_RANK`` of torchrun / :func:`launch`), 0 without."""
    return int(os.environ["LOCAL_RANK"]) if "LOCAL_RANK" in os.environ else 0


def env_world_size() -> int:
    """``WORLD_SIZE`` from the environment (set by torchrun / :func:`launch`), 1 when unset."""
    return int(os.environ["WORLD_SIZE"]) if "WORLD_SIZE" in os.environ else 1


def backend_for(device: str) -> str:
    """``"nccl"`` for a CUDA device, ``"gloo"`` otherwise (CPU)."""
    return "nccl" if torch.device(device).type == "cuda" else "gloo"


def init_distributed(*, device: str = "cpu", timeout_s: float = DEFAULT_TIMEOUT_S) -> tuple[int, int]:
    """Initialise the default process group from the environment (``env://``); returns ``(rank, world)``.

    Needs ``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT`` (torchrun sets them).
    On CUDA the current device becomes ``cuda:LOCAL_RANK`` and the backend NCCL; on CPU gloo.
    """
    missing = [k for k in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT") if k not in os.environ]
    if missing:
        raise ValueError(f"cannot start data-parallel training: environment variables {missing} are not set "
                         "(launch with torchrun or floodnb train --nproc N)")
    if is_distributed():
        return rank_world()
    backend = backend_for(device)
    if backend == "nccl":
        if not torch.cuda.is_available():
            raise ValueError(f"device={device!r} needs CUDA, which this torch build/machine does not have")
        torch.cuda.set_device(local_rank())
    dist.init_process_group(backend=backend, init_method="env://", timeout=_dt.timedelta(seconds=timeout_s))
    return rank_world()


def shutdown() -> None:
    """Destroy the default process group if one is initialised (safe to call twice)."""
    if is_distributed():
        dist.destroy_process_group()


def ensure_initialized(device: str = "cpu") -> tuple[int, int]:
    """Initialise the group when launched by torchrun (``WORLD_SIZE`` > 1) and none exists yet.

    The group is destroyed at interpreter exit. Returns ``(rank, world)``; ``(0, 1)`` in a plain
    single-process run.
    """
    if not is_distributed() and env_world_size() > 1:
        init_distributed(device=device)
        atexit.register(shutdown)
    return rank_world()


def process_device(device: str) -> torch.device:
    """The torch device of this process: ``"cuda"`` means ``cuda:LOCAL_RANK`` under data-parallel training."""
    d = torch.device(device)
    if d.type == "cuda" and d.index is None and rank_world()[1] > 1:
        return torch.device("cuda", local_rank())
    return d


def barrier() -> None:
    """Wait for every rank (no-op in one process)."""
    if is_distributed():
        dist.barrier()


def broadcast_object(obj):
    """Rank 0's ``obj`` on every rank (pickled; no-op in one process). Tensors inside stay on CPU."""
    if not is_distributed():
        return obj
    box = [obj if dist.get_rank() == 0 else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather_object(obj) -> list:
    """``[obj of rank 0, obj of rank 1, ...]`` on every rank (``[obj]`` in one process)."""
    if not is_distributed():
        return [obj]
    out: list = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def step_summary(loss: torch.Tensor, parts: Mapping) -> tuple[float, dict[str, float], list[int]]:
    """Global mean loss and loss terms of one step, and the ranks whose loss is not finite.

    Every rank gets the same answer: ``loss`` is the mean of the per-rank losses (what DDP's
    averaged gradient minimises), each term the mean over the ranks that report it (a rank whose
    batch holds only pool chips has no hand-label term). Called *before* ``backward`` so that a
    non-finite loss on any rank stops every rank together instead of leaving the others blocked
    in DDP's gradient all-reduce.
    """
    mine = (float(loss.detach()), {k: float(v) for k, v in parts.items()})
    rows = gather_object(mine)
    values = [r[0] for r in rows]
    bad = [i for i, v in enumerate(values) if not math.isfinite(v)]
    keys: list[str] = []
    for _, p in rows:
        keys += [k for k in p if k not in keys]
    terms = {k: sum(p[k] for _, p in rows if k in p) / sum(1 for _, p in rows if k in p) for k in keys}
    return (values[0] if len(values) == 1 else sum(values) / len(values)), terms, bad


def has_batchnorm(model: nn.Module) -> bool:
    """``True`` when ``model`` holds any ``BatchNorm`` layer (per-batch statistics)."""
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


def prepare_model(model: nn.Module, *, device: torch.device, sync_batchnorm: bool = True) -> nn.Module:
    """Before DDP: make BatchNorm statistics cover the global batch (all ranks' samples of a step).

    On CUDA BatchNorm becomes ``nn.SyncBatchNorm``; elsewhere (CPU/gloo, where ``SyncBatchNorm``
    refuses to run) :class:`floodnb.models.syncbn.DistBatchNorm2d`, which all-reduces per-channel
    sums with differentiable collectives. Either way N processes with batch B/N each follow the
    trajectory of one process with batch B (floodnb's default U-Net uses BatchNorm, which keeps
    the radar's absolute level). ``sync_batchnorm=False`` keeps per-process statistics (a warning
    says the trajectory then differs). Modules are converted in place; parameter and buffer names
    do not change, so checkpoints reload into plain BatchNorm. One process: the model unchanged.
    """
    if rank_world()[1] <= 1 or not has_batchnorm(model):
        return model
    if sync_batchnorm:
        if device.type == "cuda":
            return nn.SyncBatchNorm.convert_sync_batchnorm(model)
        from floodnb.models.syncbn import convert_dist_batchnorm

        return convert_dist_batchnorm(model)
    if rank_world()[0] == 0:
        warnings.warn("data-parallel training of a BatchNorm model with sync_batchnorm=False: BatchNorm statistics "
                      "are per process, so losses differ from one process with the same global batch",
                      stacklevel=2)
    return model


def wrap_model(model: nn.Module, *, device: torch.device) -> nn.Module:
    """``DistributedDataParallel(model)`` under data-parallel training (``device_ids`` on CUDA), else ``model``."""
    if rank_world()[1] <= 1:
        return model
    from torch.nn.parallel import DistributedDataParallel

    if device.type == "cuda":
        return DistributedDataParallel(model, device_ids=[device.index], output_device=device.index)
    return DistributedDataParallel(model)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now (for the rendezvous of :func:`launch`)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _entry(rank: int, nproc: int, port: int, device: str, timeout_s: float, threads: int | None,
           fn: Callable, args: Sequence) -> None:
    os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": str(rank),
                       "LOCAL_RANK": str(rank), "WORLD_SIZE": str(nproc), "LOCAL_WORLD_SIZE": str(nproc)})
    if threads is not None:
        torch.set_num_threads(threads)
    init_distributed(device=device, timeout_s=timeout_s)
    try:
        fn(*args)
    finally:
        shutdown()


def launch(fn: Callable, args: Sequence = (), *, nproc: int, device: str = "cpu", timeout_s: float | None = None,
           dist_timeout_s: float = DEFAULT_TIMEOUT_S, threads: int | None = None, port: int | None = None) -> None:
    """Run ``fn(*args)`` in ``nproc`` spawned processes forming one data-parallel group on 127.0.0.1.

    ``fn`` must be importable (a module-level function) and ``args`` picklable. Each process gets
    ``RANK = LOCAL_RANK = 0..nproc-1``; the group uses gloo on CPU, NCCL with ``cuda:LOCAL_RANK``
    when ``device`` is CUDA. ``threads``: torch threads per process (default: CPU cores / nproc
    on CPU). ``timeout_s``: wall-clock limit of the whole run; past it every process is
    terminated and ``TimeoutError`` raised. If one process fails, the others are terminated and
    the failure is raised here (``torch.multiprocessing.ProcessRaisedException`` carrying the
    child's traceback, or ``ProcessExitedException`` with its exit code).
    """
    if nproc < 1:
        raise ValueError(f"nproc must be >= 1, got {nproc}")
    if backend_for(device) == "nccl" and torch.cuda.device_count() < nproc:
        raise ValueError(f"nproc={nproc} processes on {device!r} need {nproc} GPUs; this machine has "
                         f"{torch.cuda.device_count()}")
    if threads is None and backend_for(device) == "gloo":
        threads = max(1, (os.cpu_count() or 1) // nproc)
    ctx = torch.multiprocessing.start_processes(
        _entry, args=(nproc, port or free_port(), device, dist_timeout_s, threads, fn, tuple(args)), nprocs=nproc,
        join=False, start_method="spawn")
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    try:
        while not ctx.join(timeout=0.2):
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"data-parallel run of {nproc} processes exceeded {timeout_s:.0f} s; terminated")
    finally:
        for p in ctx.processes:
            if p.is_alive():
                p.terminate()
        for p in ctx.processes:
            p.join(10)
            if p.is_alive():
                p.kill()
                p.join(5)
