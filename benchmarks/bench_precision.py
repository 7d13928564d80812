"""Accuracy guard of reduced precision: water IoU of float32 vs bfloat16 on the simulated test split.

Two modes, both printing float32 and bfloat16 water IoU (global confusion matrix over valid
pixels, reference: the simulator's true water mask, split ``test``) and their difference
against the guard (|difference| <= 0.01):

* default: simulate a dataset (``--hand`` hand-labelled chips of ``--size`` px, seed ``--seed``),
  train the same S1 model (``--model``, ``--epochs``, crop ``--crop``, batch 8, seed ``--seed``;
  the hand-label supervised recipe, :func:`floodnb.distill.baselines.train_baseline`) once in
  float32 and once in bfloat16, then score
  - inference guard: the float32 model evaluated in float32 and in bfloat16 (same weights),
  - training guard: the bfloat16-trained model (evaluated in bfloat16) vs the float32 one;
  best epoch picked on the validation split, never on test.
* ``--runs RUN_F32 RUN_BF16``: compare two finished ``floodnb run`` folders (e.g. ``floodnb run
  --precision float32 --name f32`` and the default run) stage 05's ``metrics.json``: every
  method's test water IoU side by side.

    python benchmarks/bench_precision.py                             # default-run-sized data (minutes)
    python benchmarks/bench_precision.py --hand 48 --size 128        # smaller, quicker
    python benchmarks/bench_precision.py --runs runs/f32 runs/default
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

GUARD = 0.01


def _line(name: str, f32: float, bf16: float) -> bool:
    diff = bf16 - f32
    ok = abs(diff) <= GUARD
    print(f"{name:<44} float32 {f32:.4f}   bfloat16 {bf16:.4f}   difference {diff:+.4f}   "
          f"{'within' if ok else 'OUTSIDE'} the {GUARD} guard")
    return ok


def compare_runs(f32: Path, bf16: Path) -> bool:
    """Test water IoU of every method in two runs' ``05_evaluate/metrics.json``; True when all are within the guard."""
    def methods(run: Path) -> dict:
        path = run / "05_evaluate" / "metrics.json"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: not a finished floodnb run (stage 05_evaluate has no metrics.json)")
        return {k: v for k, v in json.loads(path.read_text()).items()
                if isinstance(v, dict) and isinstance(v.get("test"), dict) and "water_iou" in v["test"]}

    a, b = methods(f32), methods(bf16)
    if not set(a) & set(b):
        raise ValueError(f"{f32} and {bf16}: no method scored on the test split in both runs")
    ok = True
    for method in sorted(set(a) & set(b)):
        ok &= _line(f"{method} (test split)", float(a[method]["test"]["water_iou"]),
                    float(b[method]["test"]["water_iou"]))
    return ok


def train_and_compare(a: argparse.Namespace, tmp: Path) -> bool:
    """Simulate, train float32 and bfloat16 with one seed, print the inference and training guards."""
    import torch

    from floodnb import runtime
    from floodnb.data.catalog import build_catalog
    from floodnb.distill import datasets as ds
    from floodnb.distill.baselines import train_baseline
    from floodnb.distill.engine import TrainConfig
    from floodnb.distill.evaluate import evaluate
    from floodnb.models import load_checkpoint
    from floodnb.simulate import simulate_dataset

    threads = runtime.apply_threads(a.threads)
    t0 = time.perf_counter()
    root = simulate_dataset(tmp / "sim", n_hand=a.hand, n_weak=0, size=a.size, seed=a.seed, progress=False)
    cat = build_catalog(root)
    print(f"simulated {a.hand} hand chips of {a.size} px in {time.perf_counter() - t0:.0f} s; torch threads {threads}",
          flush=True)
    train = ds.split_dataset(cat, "train", inputs=("s1",), weak=None, crop=a.crop, augment=True, seed=a.seed)
    valid = ds.split_dataset(cat, "valid", inputs=("s1",), weak=None)
    test = ds.split_dataset(cat, "test", inputs=("s1",), weak=None)
    trained, seconds = {}, {}
    for precision in ("float32", "bfloat16"):
        cfg = TrainConfig(epochs=a.epochs, batch_size=8, seed=a.seed, checkpoint_every=0, precision=precision)
        t0 = time.perf_counter()
        train_baseline(kind="s1_hand", train=train, valid=valid, out_dir=tmp / precision, model=a.model, config=cfg,
                       reference="truth_water")
        seconds[precision] = time.perf_counter() - t0
        trained[precision] = load_checkpoint(tmp / precision / "best.safetensors")
    torch.manual_seed(a.seed)

    def iou(precision_trained: str, precision_eval: str) -> float:
        model, spec = trained[precision_trained]
        m, _ = evaluate(model, test, spec=spec, reference="truth_water", progress=False, precision=precision_eval)
        return float(m["water_iou"])

    print(f"\n{a.model}, {a.epochs} epochs, crop {a.crop}, {len(train)} train / {len(valid)} valid / {len(test)} test "
          f"chips; training {seconds['float32']:.0f} s float32, {seconds['bfloat16']:.0f} s bfloat16 "
          f"(load average {os.getloadavg()[0]:.1f}); water IoU on the test split vs the simulator's truth:")
    ok = _line("inference: float32 model, eval precision", iou("float32", "float32"), iou("float32", "bfloat16"))
    ok &= _line("training + inference: each in its precision", iou("float32", "float32"), iou("bfloat16", "bfloat16"))
    return ok


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", nargs=2, metavar=("RUN_F32", "RUN_BF16"), help="compare two finished floodnb runs")
    ap.add_argument("--hand", type=int, default=120, help="hand-labelled chips simulated (default run: 120)")
    ap.add_argument("--size", type=int, default=256, help="chip size in px (default run: 256)")
    ap.add_argument("--epochs", type=int, default=4, help="training epochs (default run: 4)")
    ap.add_argument("--crop", type=int, default=128, help="training crop in px (default run: 128)")
    ap.add_argument("--model", default="unet_small")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: floodnb.runtime.resolve_threads)")
    a = ap.parse_args()
    if a.runs:
        ok = compare_runs(Path(a.runs[0]), Path(a.runs[1]))
    else:
        with tempfile.TemporaryDirectory(prefix="bench_precision_") as tmp:
            ok = train_and_compare(a, Path(tmp))
    print(f"\naccuracy guard (|bfloat16 - float32| water IoU <= {GUARD}): {'met' if ok else 'NOT met'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
