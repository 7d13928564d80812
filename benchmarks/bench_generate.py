"""DAKTer generator: default training time and fast-sampler throughput (targets: <= 10 min, >= 1 chip/s).

Trains the default generator (:class:`floodnb.generate.settings.GenerateSettings`: 64 px crops,
20 x 100 steps of batch 8, denoiser width 16 depth 3 with EMA weights) on the hand training split of a data root
(default: a simulated dataset of 60 hand chips of 128 px written to a temporary folder), packed
first into a memory-mapped chip store (``floodnb pack``; ``floodnb generate train --store``: the
experiment's data path; decoding GeoTIFFs per sample instead is much slower on a loaded machine,
``--no-pack`` measures that path), then
samples ``--n`` chips of 64 px with the default DDIM sampler (``--sample-steps``, default 50, and
the default ``eta``) and,
side by side in the same run, with a 100-step sampler. Prints seconds, chips/s, the ratios to
the targets and ``uptime`` (timings on a shared machine are noisy: say so with them).

``--threads 2`` (default) limits torch to 2 CPU threads, the project's reference machine.
``--device cuda`` runs the same code on a GPU. ``--steps-per-epoch N`` / ``--epochs N`` shrink
the run; the full default's time is then extrapolated from the measured seconds per step and
printed as an estimate.

    python benchmarks/bench_generate.py [--device cpu|cuda|auto] [--threads 2] [--data-root ROOT]
        [--epochs 20] [--steps-per-epoch 100] [--n 16] [--sample-steps 50]
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
from dataclasses import replace
from pathlib import Path

TRAIN_TARGET_S = 600.0
SAMPLE_TARGET = 1.0  # chips per second


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from floodnb.generate.settings import GenerateSettings

    d = GenerateSettings()
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N | auto")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    p.add_argument("--data-root", default=None, help="Sen1Floods11-layout root (default: simulate 60 chips)")
    p.add_argument("--epochs", type=int, default=d.epochs)
    p.add_argument("--steps-per-epoch", type=int, default=d.steps_per_epoch)
    p.add_argument("--n", type=int, default=16, help="chips to sample per sampler")
    p.add_argument("--sample-steps", type=int, default=d.sample_steps)
    p.add_argument("--no-pack", action="store_true", help="train from the GeoTIFF catalog instead of a packed store")
    args = p.parse_args(argv)
    from floodnb.generate.settings import resolve_device

    args.device = resolve_device(args.device)
    return args


def _uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()
    except OSError:
        return "uptime unavailable"


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def main(argv: list[str] | None = None) -> None:
    import pandas as pd
    import torch

    from floodnb.data.catalog import build_catalog
    from floodnb.data.store import pack
    from floodnb.generate.sample import load_generator
    from floodnb.generate.settings import GenerateSettings
    from floodnb.generate.workflow import train_on

    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    full = GenerateSettings(device=args.device)
    settings = replace(full, epochs=args.epochs, steps_per_epoch=args.steps_per_epoch)
    print(f"before: {_uptime()}")
    with tempfile.TemporaryDirectory(prefix="bench_generate.") as tmp:
        root = Path(args.data_root) if args.data_root else _simulate(Path(tmp) / "data")
        catalog = build_catalog(root)
        hand = catalog[catalog["group"] == "hand"].reset_index(drop=True)
        source = catalog if args.no_pack else pack(hand, Path(tmp) / "store", roles=("s1", "label", "s1_otsu"),
                                                   progress=False)
        t0, c0 = time.perf_counter(), time.process_time()
        train_on(source, Path(tmp) / "gen", settings, progress=False)
        _sync(args.device)
        train_s, train_cpu = time.perf_counter() - t0, time.process_time() - c0
        steps = settings.epochs * settings.steps_per_epoch
        full_steps = full.epochs * full.steps_per_epoch
        epoch_s = float(pd.read_csv(Path(tmp) / "gen" / "epochs.csv")["seconds"].sum())
        gen = load_generator(Path(tmp) / "gen", device=args.device)
        gen.sample(1, size=full.crop, steps=2, device=args.device, eta=full.eta)  # warm-up
        rates, cpu_rates = {}, {}
        for n_steps in (args.sample_steps, 100):
            _sync(args.device)
            t0, c0 = time.perf_counter(), time.process_time()
            gen.sample(args.n, size=full.crop, steps=n_steps, device=args.device, eta=full.eta)
            _sync(args.device)
            rates[n_steps] = args.n / (time.perf_counter() - t0)
            cpu_rates[n_steps] = args.n / max(time.process_time() - c0, 1e-9)
    setup_s = train_s - epoch_s
    est = setup_s + epoch_s / steps * full_steps
    print(f"device {args.device}, {args.threads} CPU threads, crop {full.crop} px, width {full.width} depth "
          f"{full.depth}, EMA {full.ema_decay:g}, batch {full.batch_size}, sampler eta {full.eta:g}, data "
          f"{'GeoTIFF catalog' if args.no_pack else 'packed store'}")
    print(f"training: {steps} steps in {train_s:.1f} s = set-up {setup_s:.1f} s (catalog, balancing factor on 64 "
          f"chips) + {epoch_s / steps:.3f} s/step (data loading included)")
    label = "measured" if steps == full_steps else "estimated: set-up + s/step x steps"
    print(f"default training ({full_steps} steps), {label}: {est:.1f} s = {est / TRAIN_TARGET_S:.2f} x the "
          f"{TRAIN_TARGET_S:.0f} s target ({'met' if est <= TRAIN_TARGET_S else 'NOT met'})")
    fast = rates[args.sample_steps]
    met = "met" if fast >= SAMPLE_TARGET else "NOT met"
    print(f"sampling {full.crop} px chips: {args.sample_steps} DDIM steps {fast:.2f} chips/s "
          f"({fast / SAMPLE_TARGET:.2f} x the {SAMPLE_TARGET:g} chip/s target: {met}); "
          f"100 steps {rates[100]:.2f} chips/s (fast sampler {fast / rates[100]:.1f} x faster)")
    if not args.device.startswith("cuda"):
        cpu_est = train_cpu * est / train_s  # CPU share of the run scaled like its wall time
        lo, hi = cpu_est / args.threads, cpu_est
        print(f"CPU time: training {train_cpu:.1f} CPU s for {steps} steps -> default training on {args.threads} free "
              f"cores {lo:.0f}..{hi:.0f} s ({lo / TRAIN_TARGET_S:.2f}..{hi / TRAIN_TARGET_S:.2f} x target); fast "
              f"sampler {cpu_rates[args.sample_steps]:.2f}..{cpu_rates[args.sample_steps] * args.threads:.2f} chips/s")
    print(f"after: {_uptime()}")


def _simulate(root: Path) -> Path:
    from floodnb.simulate import simulate_dataset

    return simulate_dataset(root, n_hand=60, n_weak=4, size=128, seed=0, workers=1)


if __name__ == "__main__":
    main()
