"""``floodnb generate train|sample|report``: the DAKTer generator (:mod:`floodnb.generate`).

* ``train``: train the generator on the hand training split of ``--data-root`` / ``--store``
  (random ``--crop`` px crops) into ``--out-dir`` (resumable engine folder).
* ``sample``: draw ``-n`` generated (VV, VH, soft label) pairs from ``--checkpoint`` into ``--out``
  (``.npz``), seeded, with ``--steps`` DDIM steps.
* ``report``: sample and compare with the training crops (realism table with the simulator
  report's tolerances, label consistency) into ``--out-dir``.
"""

from __future__ import annotations

import argparse

HELP = "DAKTer generative augmentation: train a diffusion generator of radar chips + soft labels, sample, report"


def _balance(s: str) -> str | float:
    if s in ("snr", "none"):
        return s
    try:
        v = float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--balance {s!r}: expected snr, none or a number > 0") from None
    if not v > 0:
        raise argparse.ArgumentTypeError(f"--balance {s!r}: a number must be > 0")
    return v


def add_arguments(p: argparse.ArgumentParser) -> None:
    from floodnb.generate.settings import GenerateSettings

    d = GenerateSettings()
    p.add_argument("action", choices=("train", "sample", "report"))
    p.add_argument("--data-root", help="train/report: Sen1Floods11-layout data root (hand train split)")
    p.add_argument("--store", default=None, help="train/report: packed chip store instead of --data-root")
    p.add_argument("--out-dir", help="train: run folder; report: report folder")
    p.add_argument("--checkpoint", help="sample/report: generator checkpoint (.safetensors or run folder)")
    p.add_argument("--out", help="sample: output .npz of generated pairs")
    p.add_argument("--segmenter", default=None, help="report: S1 segmenter checkpoint for label consistency")
    p.add_argument("--crop", type=int, default=d.crop, help=f"training crop and sampled chip size in px ({d.crop})")
    p.add_argument("--epochs", type=int, default=d.epochs)
    p.add_argument("--steps-per-epoch", type=int, default=d.steps_per_epoch)
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--width", type=int, default=d.width, help="denoiser width")
    p.add_argument("--depth", type=int, default=d.depth, help="denoiser down-samplings")
    p.add_argument("--balance", type=_balance, default=d.balance,
                   help="label-channel balancing: snr (DAKTer factor from the data), none, or a number")
    p.add_argument("--ema-decay", type=float, default=d.ema_decay,
                   help=f"train: EMA decay of the denoiser weights sampled from, 0 = raw weights ({d.ema_decay:g})")
    p.add_argument("-n", "--n-samples", type=int, default=d.n_samples, help="sample/report: chips to generate")
    p.add_argument("--steps", type=int, default=d.sample_steps, help="sample/report: DDIM steps")
    p.add_argument("--eta", type=float, default=d.eta,
                   help=f"sample/report: sampler noise, 0 = deterministic DDIM, 1 = ancestral ({d.eta:g})")
    p.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N | auto")
    p.add_argument("--no-resume", action="store_true", help="train: refuse to continue a run in --out-dir")
    p.add_argument("--no-progress", action="store_true")


def settings_from_args(args: argparse.Namespace):
    """:class:`~floodnb.generate.workflow.GenerateSettings` of the parsed arguments (ValueError names bad ones)."""
    from floodnb.generate.settings import GenerateSettings, resolve_device

    return GenerateSettings(crop=args.crop, epochs=args.epochs, steps_per_epoch=args.steps_per_epoch,
                            batch_size=args.batch_size, lr=args.lr, seed=args.seed, width=args.width,
                            depth=args.depth, balance=args.balance, ema_decay=args.ema_decay,
                            sample_steps=args.steps, eta=args.eta,
                            n_samples=args.n_samples, device=resolve_device(args.device))


def _source(args: argparse.Namespace):
    if (args.data_root is None) == (args.store is None):
        raise ValueError(f"floodnb generate {args.action}: give exactly one of --data-root or --store")
    if args.store is not None:
        from floodnb.data.store import ChipStore

        return ChipStore.open(args.store)
    from floodnb.data.catalog import build_catalog

    return build_catalog(args.data_root)


def _need(args: argparse.Namespace, *names: str) -> None:
    missing = [f"--{n.replace('_', '-')}" for n in names if getattr(args, n) is None]
    if missing:
        raise ValueError(f"floodnb generate {args.action} needs {', '.join(missing)}")


def run(args: argparse.Namespace) -> int:
    from floodnb.generate.workflow import train_on, write_report

    settings = settings_from_args(args)
    progress = not args.no_progress
    if args.action == "train":
        _need(args, "out_dir")
        res = train_on(_source(args), args.out_dir, settings, progress=progress, resume=not args.no_resume)
        print(f"generator trained: {res.out_dir / 'best.safetensors'} (balance b = {res.balance:.3f}, "
              f"final loss {res.fit.history[-1]['train_loss']:.4f})")
    elif args.action == "sample":
        _need(args, "checkpoint", "out")
        from floodnb.generate.sample import load_generator

        gen = load_generator(args.checkpoint, device=settings.device)
        out = gen.sample(settings.n_samples, size=settings.crop, steps=settings.sample_steps, seed=settings.seed,
                         device=settings.device, eta=settings.eta, progress=progress)
        print(f"wrote {len(out)} generated pairs to {out.save(args.out)}")
    else:
        _need(args, "checkpoint", "out_dir")
        rep = write_report(args.checkpoint, _source(args), args.out_dir, settings, segmenter=args.segmenter,
                           progress=progress)
        t = rep["realism"]
        print(f"realism: {int(t.passed.sum())}/{len(t)} statistics within tolerance")
        print(rep["consistency"].to_string(index=False))
        print(f"report: {rep['paths']['md']}")
    return 0
