"""What wrong S1 units or an untagged fill value do to a model, and what floodnb now says instead.

Simulates a small dataset (64 px chips), trains a tiny S1 baseline on it (``floodnb train``), then
evaluates the test split on three copies of the same chips: S1 in dB (as trained), S1 in linear
power, and S1 in dB with an untagged -9999 fill block (32 x 32 px per chip). For each copy it prints

* "unchecked": water IoU with the unit/range checks switched off (the behaviour before they
  existed: values cast to float and fed to the model), and, for the fill copy, how many fill
  pixels the model calls water;
* "checked": what ``floodnb evaluate`` does now (exit code and the first words of its message),
  and for linear power with ``--s1-units linear`` the water IoU after conversion.

    python benchmarks/bench_bad_units.py [--epochs 25] [--hand 80] [--seed 3]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import shutil
import tempfile
from pathlib import Path
from unittest import mock

import numpy as np
import rasterio

FILL = 32  # side of the untagged fill block written into every chip


def _rewrite(root: Path, fn) -> None:
    for path in sorted(root.rglob("*_S1Hand.tif")):
        with rasterio.open(path) as ds:
            data, profile, desc = ds.read(), ds.profile, ds.descriptions
        with rasterio.open(path, "w", **profile) as ds:
            ds.write(fn(data))
            ds.descriptions = desc


def _fill(x: np.ndarray) -> np.ndarray:
    x = x.copy()
    x[:, :FILL, :FILL] = -9999.0
    return x


def _unchecked(raw, *, units="auto", nodata=None, path="", bands=()):
    """Floodnb's S1 read before the checks: a float cast, the nodata tag -> NaN."""
    x = raw.astype(np.float32, copy=True)
    if nodata is not None and not np.isnan(nodata):
        x[raw == nodata] = np.nan
    return x


def _cli(argv: list[str]) -> tuple[int, str, str]:
    from floodnb.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(argv)
    return rc, out.getvalue(), err.getvalue()


def _fill_water(run: Path, root: Path) -> tuple[int, int]:
    """(fill pixels predicted water, fill pixels) over the test chips, checks off."""
    from floodnb.data.catalog import build_catalog
    from floodnb.data.normalize import Normalizer
    from floodnb.distill.datasets import split_dataset
    from floodnb.distill.evaluate import iterate_predictions, plan_from_spec
    from floodnb.models import load_checkpoint

    model, spec = load_checkpoint(run / "best.safetensors")
    norms = {r: Normalizer.from_dict(spec.normalizers[r]) for r in spec.inputs}
    data = split_dataset(build_catalog(root, with_center=False), "test", inputs=spec.inputs, normalizers=norms,
                         weak=None)
    water = total = 0
    for _, probs in iterate_predictions(model, data, plan_from_spec(spec)):
        pred = probs.argmax(dim=1)[:, :FILL, :FILL]
        water += int((pred == 1).sum())
        total += pred.numel()
    return water, total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=25)
    ap.add_argument("--hand", type=int, default=80)
    ap.add_argument("--seed", type=int, default=3)
    args = ap.parse_args()

    from floodnb.simulate import simulate_dataset

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        sim = simulate_dataset(tmp / "sim", n_hand=args.hand, n_weak=0, size=64, seed=args.seed, workers=1,
                               progress=False)
        rc, _, err = _cli(["train", "baseline", "--kind", "s1_hand", "--data-root", str(sim), "--out-dir",
                           str(tmp / "run"), "--epochs", str(args.epochs), "--lr", "0.003", "--batch-size", "8",
                           "--model", "unet_tiny", "--no-progress", "--checkpoint-every", "0", "--device", "cpu"])
        assert rc == 0, err
        copies = {"dB": sim, "linear power": tmp / "linear", "dB + untagged -9999 fill": tmp / "fill"}
        shutil.copytree(sim, copies["linear power"])
        _rewrite(copies["linear power"], lambda x: (10 ** (x / 10)).astype(np.float32))
        shutil.copytree(sim, copies["dB + untagged -9999 fill"])
        _rewrite(copies["dB + untagged -9999 fill"], _fill)

        def iou(root: Path, *extra: str) -> tuple[int, str, float | None]:
            out = tmp / f"ev{len(list(tmp.glob('ev*')))}"
            rc, _, err = _cli(["evaluate", str(tmp / "run"), "--data-root", str(root), "--split", "test",
                               "--out-dir", str(out), "--no-progress", *extra])
            if rc:
                return rc, err.strip().splitlines()[-1][:150], None
            return rc, "", json.loads((out / "eval_metrics.json").read_text())["splits"]["test"]["water_iou"]

        print(f"test split, {args.hand} hand chips of 64 px, unet_tiny S1 baseline, {args.epochs} epochs")
        for name, root in copies.items():
            with mock.patch("floodnb.data.io.s1_to_model_db", _unchecked):
                _, _, before = iou(root)
            rc, msg, after = iou(root)
            line = f"{name:26s} unchecked water IoU {before:.4f} | checked: exit {rc}"
            line += f", water IoU {after:.4f}" if after is not None else f": {msg}"
            if name == "linear power":
                line += f" | --s1-units linear: water IoU {iou(root, '--s1-units', 'linear')[2]:.4f}"
            print(line)
            if "fill" in name:
                with mock.patch("floodnb.data.io.s1_to_model_db", _unchecked):
                    w, n = _fill_water(tmp / "run", root)
                print(f"{'':26s} unchecked: {w} of {n} fill pixels called water")


if __name__ == "__main__":
    main()
