"""``floodnb train teacher|student|baseline``: thin layer over :mod:`floodnb.distill`.

Data-parallel training (:mod:`floodnb.distill.ddp`): ``--nproc N`` spawns N processes on this
machine (gloo on CPU, one GPU each with ``--device cuda``); under ``torchrun`` (``WORLD_SIZE``
set) the command joins the group torchrun describes. ``--batch-size`` is the global batch.
Rank 0 labels the student's pool, evaluates, writes every file and prints the results.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import overload

from floodnb.commands import add_speed_arguments

HELP = "train a teacher (S2 / S2+S1), a distilled S1 student or an S1 baseline"


@overload
def _csv(s: str) -> tuple[str, ...]: ...
@overload
def _csv(s: None) -> None: ...
def _csv(s: str | None) -> tuple[str, ...] | None:
    return None if s is None else tuple(x.strip() for x in s.split(",") if x.strip())


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("method", choices=("teacher", "student", "baseline"))
    p.add_argument("--data-root", help="Sen1Floods11-layout data root (catalog built from it)")
    p.add_argument("--store", default=None, help="packed chip store (floodnb pack) instead of --data-root")
    p.add_argument("--out-dir", required=True, help="run folder: checkpoints, metrics.json, per_chip.csv, logs")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--model", default="unet_small", help="unet_tiny | unet_small | unet (default unet_small)")
    p.add_argument("--crop", type=int, default=None, help="random training crop in px (default: whole chips)")
    p.add_argument("--bands", default=None, help="teacher: comma-separated S2 bands (default all 13)")
    p.add_argument("--inputs", default="s2", help="teacher inputs: s2 or s2,s1 (default s2)")
    p.add_argument("--metadata", action="store_true", help="teacher: FiLM conditioning on place and day of year")
    p.add_argument("--label-conditioning", action="store_true", help="teacher: weak label as an extra input")
    p.add_argument("--weak-role", default="s1_otsu", help="weak label layer (default s1_otsu)")
    p.add_argument("--kind", choices=("s1_weak", "s1_hand"), default="s1_weak", help="baseline kind")
    p.add_argument("--teacher", default=None, help="student: teacher checkpoint that labels the pool")
    p.add_argument("--pool-split", default="weak", help="student: split of unlabelled pool chips (default weak)")
    p.add_argument("--mode", choices=("soft", "hard"), default="soft", help="student distillation targets")
    p.add_argument("--no-cloud-mask", action="store_true",
                   help="student: keep the teacher's pool targets under Sentinel-2 clouds (default: ignored, since "
                        "hand labels are -1 under cloud and the teacher never learnt those pixels)")
    p.add_argument("--temperature", type=float, default=2.0)
    p.add_argument("--threshold", type=float, default=0.9, help="student hard mode: confidence threshold")
    p.add_argument("--hand-weight", type=float, default=1.0,
                   help="student: weight of a hand-labelled pixel in the per-pixel loss (default 1)")
    p.add_argument("--distill-weight", type=float, default=1.0,
                   help="student: weight of a pool (teacher-target) pixel in the per-pixel loss (default 1)")
    p.add_argument("--hand-fraction", type=float, default=0.5,
                   help="student: share of every batch drawn from hand chips (rounded, at least 1 chip; default 0.5)")
    p.add_argument("--edge-width", type=int, default=0, help="edge weighting band width in px (0 = off)")
    p.add_argument("--edge-weight", type=float, default=1.0, help="extra weight inside/outside water edges")
    p.add_argument("--class-weights", default=None, help="comma-separated per-class loss weights (dry,water)")
    p.add_argument("--reference", choices=("label", "truth"), default="label",
                   help="score against hand labels or the simulator's true water mask")
    p.add_argument("--s1-units", choices=("auto", "db", "linear", "amplitude"), default="auto",
                   help="units of the S1 GeoTIFFs (default auto: float dB as Sen1Floods11, checked); linear power "
                        "and amplitude are converted to dB")
    p.add_argument("--checkpoint-every", type=int, default=50, help="steps between mid-epoch checkpoints")
    p.add_argument("--no-resume", action="store_true", help="refuse to continue a run already in --out-dir")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--nproc", type=int, default=1,
                   help="data-parallel processes to spawn on this machine (gloo on CPU, NCCL with --device cuda); "
                        "--batch-size is the global batch and must be divisible by it. For several machines use "
                        "torchrun -m floodnb train ... instead")
    p.add_argument("--device", default="auto",
                   help="cpu | cuda | auto (cuda when available); under data-parallel training cuda means "
                        "cuda:LOCAL_RANK of each process")
    add_speed_arguments(p, what="training (forward and loss under autocast; weights and optimizer float32)")


def _device(name: str) -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name not in ("cpu", "cuda") and not name.startswith("cuda:"):
        raise ValueError(f"--device {name!r}: expected cpu, cuda or auto")
    return name


def run(args: argparse.Namespace) -> int:
    import os

    if args.nproc < 1:
        raise ValueError(f"--nproc must be >= 1, got {args.nproc}")
    if args.nproc > 1:
        if "WORLD_SIZE" in os.environ:
            raise ValueError("--nproc spawns its own processes; under torchrun (WORLD_SIZE is set) leave --nproc out")
        if args.batch_size % args.nproc:
            raise ValueError(f"--batch-size {args.batch_size} is the global batch and must be divisible by "
                             f"--nproc {args.nproc}")
        from torch.multiprocessing import ProcessExitedException

        from floodnb.distill.ddp import launch

        try:
            launch(_rank_main, (args,), nproc=args.nproc, device=_device(args.device),
                   threads=args.threads if args.threads > 0 else None)
        except ProcessExitedException as exc:  # a rank exited with an error code (its message is printed)
            return int(exc.exit_code) if exc.exit_code and exc.exit_code > 0 else 1
        return 0
    from floodnb.commands import apply_speed_arguments

    apply_speed_arguments(args, _device(args.device))
    return _train(args)


def _rank_main(args: argparse.Namespace) -> None:
    """One process of ``--nproc N``: train; a user error exits with code 2 after rank 0 printed it."""
    import sys

    from floodnb.distill.ddp import rank_world

    try:
        rc = _train(args)
    except (FileNotFoundError, FileExistsError, ValueError) as exc:
        if rank_world()[0] == 0:
            print(f"floodnb train: error: {exc}", file=sys.stderr, flush=True)
        sys.exit(2)
    if rc:
        sys.exit(rc)


def _train(args: argparse.Namespace) -> int:
    """Train as the options say; a run that fails before its first checkpoint removes an ``--out-dir``
    this call created (pool labels included). Files of an existing folder are the engine's to restore.
    """
    import shutil

    from floodnb import runtime
    from floodnb.commands import check_out_dir
    from floodnb.distill import ddp
    from floodnb.distill.engine import STATE_FILE

    out = check_out_dir(args.out_dir)
    device = _device(args.device)
    args.precision = runtime.resolve_precision(args.precision, device, name="--precision")
    rank, _ = ddp.ensure_initialized(device)  # joins torchrun's group; no-op in one process / under --nproc
    created = ddp.broadcast_object(not out.exists())
    try:
        return _train_in(args, device, rank)
    except BaseException:
        if rank == 0 and created and out.is_dir() and not (out / STATE_FILE).exists():
            shutil.rmtree(out, ignore_errors=True)
        raise


def _pool_record(args: argparse.Namespace) -> dict:
    """What the student's pool labels (``pool_probs.npy``) depend on: teacher checkpoint (sha256),
    pool split and weak-label role; stored under ``labelled_by`` in their sidecar ``pool_probs.json``.
    """
    from floodnb.scale.dask_predict import _checkpoint_id

    return {"teacher": _checkpoint_id(args.teacher, None), "pool_split": args.pool_split,
            "weak_role": args.weak_role}


def _check_pool_record(pool_path, now: dict) -> None:
    """Refuse to reuse pool labels made by another teacher (or split / weak role) in a resumed run;
    labels from before the record existed cannot be checked and are reused as before.
    """
    record = pool_path.with_suffix(".json")
    if not record.is_file():
        return
    sidecar = json.loads(record.read_text(encoding="utf-8"))
    if "labelled_by" not in sidecar:
        return
    stored = sidecar["labelled_by"]
    diff = {k: (stored.get(k), v) for k, v in now.items() if stored.get(k) != v}
    if diff:
        raise ValueError(f"{pool_path}: cannot resume, configuration differs from the stored run (field: "
                         f"(stored, now)) {diff}; use another out_dir")


def _reuse_pool(pool_path: Path, args: argparse.Namespace, labelled_by: dict) -> None:
    """Refuse pool labels in ``pool_path`` from another teacher / split / weak role or cloud-mask setting."""
    from floodnb.distill.teacher import pool_info

    _check_pool_record(pool_path, labelled_by)
    had = pool_info(pool_path)["cloud_mask"]["enabled"] if pool_path.with_suffix(".json").is_file() else None
    if had is not None and had != (not args.no_cloud_mask):
        raise ValueError(f"{pool_path} holds pool targets with cloud mask {'on' if had else 'off'}; "
                         f"--no-cloud-mask asks for {'off' if args.no_cloud_mask else 'on'}: use another --out-dir")


def _student_pool(args: argparse.Namespace, source, device: str, rank: int):
    """The student's pool dataset: S1 of the ``--pool-split`` chips with the teacher's probabilities
    (``<out-dir>/pool_probs.npy``) as ``soft`` targets.

    Rank 0 labels the pool with :func:`~floodnb.distill.pool_targets.teacher_pool_targets` (the
    teacher's own normalisers) unless a resumed run has the labels; the other ranks read its file.
    """
    import numpy as np

    from floodnb.data.torch import ChipDataset
    from floodnb.distill import datasets as ds
    from floodnb.distill import ddp
    from floodnb.distill.pool_targets import teacher_pool_targets
    from floodnb.distill.teacher import pool_info
    from floodnb.io_utils import atomic_write_json

    pool_cat = ds.pool_source(source, split=args.pool_split)
    pool_path = Path(args.out_dir) / "pool_probs.npy"
    labelled_by = _pool_record(args)
    if ddp.broadcast_object(pool_path.exists()):  # rank 0 decides for all
        _reuse_pool(pool_path, args, labelled_by)
    else:
        if rank == 0:
            teacher_pool_targets(args.teacher, pool_cat, out_path=pool_path, weak_role=args.weak_role,
                                 s1_units=args.s1_units, batch_size=args.batch_size, device=device,
                                 progress=not args.no_progress, mask_clouds=not args.no_cloud_mask)
            # the sidecar of label_pool (chip ids, teacher spec, cloud mask) + what made the labels
            atomic_write_json(pool_path.with_suffix(".json"), {**pool_info(pool_path), "labelled_by": labelled_by})
        ddp.barrier()  # the other ranks read rank 0's file (shared out_dir)
    probs = np.load(pool_path, mmap_mode="r")
    return ChipDataset(pool_cat, inputs=("s1",), target=None, weak=None, soft=probs, crop=args.crop,
                       augment=True, seed=args.seed, s1_units=args.s1_units)


def _train_in(args: argparse.Namespace, device: str, rank: int) -> int:
    from floodnb.distill import datasets as ds
    from floodnb.distill.engine import TrainConfig
    from floodnb.distill.runner import EdgeOption

    source = ds.load_source(args.data_root, store=args.store)
    config = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                         checkpoint_every=args.checkpoint_every, progress=not args.no_progress, device=device,
                         precision=args.precision)
    edge = (EdgeOption(width=args.edge_width, inner=args.edge_weight, outer=args.edge_weight)
            if args.edge_width else None)
    cw = tuple(float(x) for x in _csv(args.class_weights)) if args.class_weights else None
    reference = "truth_water" if args.reference == "truth" else "label"
    common = dict(out_dir=args.out_dir, model=args.model, config=config, reference=reference, class_weights=cw,
                  edge=edge, resume=not args.no_resume)

    def data(split: str, inputs, *, train: bool, meta: bool = False, weak: str | None = args.weak_role):
        return ds.split_dataset(source, split, inputs=inputs, weak=weak, with_meta=meta,
                                crop=args.crop if train else None, augment=train, seed=args.seed,
                                s1_units=args.s1_units)

    def evals(inputs, **kw):  # every evaluation split; chips lacking an input are skipped and named
        return ds.eval_datasets(source, inputs=inputs, s1_units=args.s1_units, **kw)

    if args.method == "teacher":
        from floodnb.bands import S2_BANDS
        from floodnb.distill.teacher import train_teacher

        inputs = _csv(args.inputs)
        res = train_teacher(train=data("train", inputs, train=True, meta=args.metadata),
                            valid=data("valid", inputs, train=False, meta=args.metadata), inputs=inputs,
                            s2_bands=_csv(args.bands) or S2_BANDS, metadata=args.metadata,
                            label_conditioning=args.label_conditioning,
                            evaluate_on=evals(inputs, weak=args.weak_role,
                                                         with_meta=args.metadata), **common)
    elif args.method == "baseline":
        from floodnb.distill.baselines import train_baseline

        if args.bands:
            raise ValueError("--bands applies to the teacher only (baselines use Sentinel-1 VV, VH)")
        res = train_baseline(kind=args.kind, train=data("train", ("s1",), train=True),
                             valid=data("valid", ("s1",), train=False),
                             evaluate_on=evals(("s1",), weak=args.weak_role), **common)
    else:
        from floodnb.distill.student import train_student

        pool = _student_pool(args, source, device, rank) if args.teacher else None
        res = train_student(hand=data("train", ("s1",), train=True, weak=None), pool=pool,
                            valid=data("valid", ("s1",), train=False, weak=None), mode=args.mode,
                            temperature=args.temperature, threshold=args.threshold,
                            hand_weight=args.hand_weight, distill_weight=args.distill_weight,
                            hand_fraction=args.hand_fraction,
                            evaluate_on=evals(("s1",), weak=None), **common)
    if rank != 0:
        return 0
    print(f"{res.method}: best epoch {res.fit.best_epoch}; checkpoint {res.out_dir / 'best.safetensors'}")
    for split, m in res.metrics["splits"].items():
        print(f"  {split:8s} water IoU (global) {m['water_iou']:.4f}   mIoU {m['miou']:.4f}   "
              f"precision {m['water_precision']:.4f}   recall {m['water_recall']:.4f}   ({m['chips']} chips, "
              f"reference {res.metrics['reference']})")
    print(json.dumps({"out_dir": str(res.out_dir), "best_epoch": res.fit.best_epoch}))
    return 0
