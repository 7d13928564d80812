"""Level-awareness of the U-Net's normalisation: GroupNorm vs BatchNorm under one budget.

Trains the experiment's ``s1_hand`` row (S1 U-Net on hand labels, :mod:`floodnb.experiment`)
once per norm with the same budget, seed and simulated data, then reports per norm:

* simulated test / held-out water IoU against the simulator's truth (global confusion matrix);
* the predicted water fraction of uniform chips (VV, VH) = (-20, -28) dB (open water) and
  (-8, -5) dB (bright, dry), fed through the checkpoint's own normaliser, eval mode;
* the water fraction of one real Sen1Floods11 chip (``--real-chip``, when given) as is and
  shifted by -10 dB in both bands (a level-aware model must predict more water).

Per-sample normalisation (GroupNorm with 8 groups after bias-free convolutions at small width is
near instance normalisation) removes the chip's absolute level, so the uniform -28 dB chip is not
called water; BatchNorm in eval mode normalises with running training statistics and keeps it.

    python benchmarks/bench_norm_level.py --out-dir /tmp/bench_norm [--n-weak 16] [--epochs 3]
        [--steps-per-epoch 50] [--real-chip ../shared/data/sen1floods11/HandLabeled/S1Hand/USA_905409_S1Hand.tif]
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from floodnb.experiment.config import DEFAULT_BUDGET, DEFAULT_SIM
from floodnb.experiment.run import run_experiment


def water_fraction(model, spec, s1_db: np.ndarray) -> float:
    """Share of pixels predicted water for a raw S1 array ``(2, H, W)`` in dB (checkpoint normaliser, eval)."""
    from floodnb.data.normalize import Normalizer

    norm = Normalizer.from_dict(spec.normalizers["s1"])
    x = np.nan_to_num(np.asarray(norm(s1_db), dtype=np.float32), nan=0.0)
    with torch.no_grad():
        logits = model.eval()(torch.from_numpy(x)[None])
    return float((logits.argmax(1) == spec.classes.index("water")).float().mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out-dir", required=True)
    ap.add_argument("--n-weak", type=int, default=16, help="pool chips to simulate (s1_hand does not use them)")
    ap.add_argument("--epochs", type=int, default=DEFAULT_BUDGET.epochs)
    ap.add_argument("--steps-per-epoch", type=int, default=DEFAULT_BUDGET.steps_per_epoch)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--norms", default="group,batch")
    ap.add_argument("--real-chip", default=None, help="an S1Hand GeoTIFF for the -10 dB shift check")
    args = ap.parse_args()
    from floodnb.models import load_checkpoint

    out = Path(args.out_dir)
    sim = replace(DEFAULT_SIM, n_weak=args.n_weak)
    real = None
    if args.real_chip:
        import rasterio

        with rasterio.open(args.real_chip) as ds:
            real = ds.read().astype(np.float32)
    size = sim.size
    uniform = {"-28 dB VH": np.stack([np.full((size, size), -20.0), np.full((size, size), -28.0)]),
               "-5 dB VH": np.stack([np.full((size, size), -8.0), np.full((size, size), -5.0)])}
    print(f"data: {sim}; seed {args.seed}")
    for norm in args.norms.split(","):
        budget = replace(DEFAULT_BUDGET, norm=norm, epochs=args.epochs, steps_per_epoch=args.steps_per_epoch)
        table = run_experiment(out, sim=sim, budget=budget, seed=args.seed, seeds=1, rows=["s1_hand"], progress=False)
        row = table.set_index("row").loc["s1_hand"]
        model, spec = load_checkpoint(row["checkpoint"])
        cells = [f"norm={norm}", f"budget: {budget.describe()}",
                 f"test water IoU {float(row['test_water_iou']):.3f}",
                 f"bolivia water IoU {float(row['bolivia_water_iou']):.3f}"]
        cells += [f"uniform {k}: water {water_fraction(model, spec, v):.3f}" for k, v in uniform.items()]
        if real is not None:
            cells.append(f"real chip water {water_fraction(model, spec, real):.3f}, "
                         f"-10 dB: {water_fraction(model, spec, real - 10.0):.3f}")
        print(" | ".join(cells), flush=True)


if __name__ == "__main__":
    main()
