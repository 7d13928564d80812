"""Training-step throughput: floodnb's training path vs a bare torch loop, side by side.

Both train the same model (default ``unet_small``, 1.9 M parameters) on the same batch of
256 px chips with AdamW:

* **bare** — ``x, y`` pre-stacked tensors; ``F.cross_entropy(model(x), y, ignore_index)``,
  ``zero_grad/backward/step``.
* **floodnb** — :func:`floodnb.distill.engine.fit` over a dataset of sample dicts (``s1``,
  ``valid``, ``label``, ``chip_id``, ``index``): collate, input assembly, masked cross-entropy
  of :class:`~floodnb.distill.runner.SupervisedObjective`, finite-loss check, per-step JSONL log,
  progress bar, LR schedule and the epoch-end atomic checkpoint (``last.pt`` + ``best/model.safetensors``).

Runs alternate (bare, floodnb, bare, floodnb, ...) to share machine noise. Reported: the median
per-step time of each (steady-state overhead of the training path, robust to other processes on
a shared machine) and the whole-run throughput including set-up and the epoch-end checkpoint
(a fixed cost per epoch, amortised over the epoch's steps). Target: <= 5 %.

    python benchmarks/bench_train_step.py [--model unet_small] [--batch 4] [--steps 10] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from floodnb.bands import IGNORE_INDEX
from floodnb.distill.engine import TrainConfig, fit
from floodnb.distill.evaluate import InputPlan
from floodnb.distill.runner import SupervisedObjective
from floodnb.models import ModelSpec, build_model

NORM = {"name": "bench", "role": "s1", "bands": ["VV", "VH"], "kind": "standard", "mean": [0, 0], "std": [1, 1],
        "source": "bench"}


class CachedChips(torch.utils.data.Dataset):
    """``n`` sample dicts built once (the data layer's cost is not part of this comparison)."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.samples = [{"s1": x[i], "valid": torch.ones(x.shape[-2:], dtype=torch.bool), "label": y[i],
                         "chip_id": f"bench_{i}", "index": torch.tensor(i)} for i in range(len(x))]

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> dict:
        return self.samples[i]


def bare(model, x, y, *, batch: int, steps: int, lr: float) -> tuple[list[float], float]:
    """Per-step seconds and total seconds of a bare torch loop."""
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    model.train()
    times = []
    t0 = t = time.perf_counter()
    for s in range(steps):
        xb, yb = x[s * batch:(s + 1) * batch], y[s * batch:(s + 1) * batch]
        loss = F.cross_entropy(model(xb), yb, ignore_index=IGNORE_INDEX)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        float(loss.detach())
        now = time.perf_counter()
        times.append(now - t)
        t = now
    return times, time.perf_counter() - t0


def floodnb_path(model, data, *, batch: int, steps: int, lr: float, out: Path) -> tuple[list[float], float]:
    """Per-step seconds (between step callbacks) and total seconds of one ``fit`` epoch incl. checkpoints."""
    spec = ModelSpec(model_name=model.model_name, model_config=model.config(), inputs=("s1",),
                     bands={"s1": ("VV", "VH")}, normalizers={"s1": NORM})
    cfg = TrainConfig(epochs=1, batch_size=batch, lr=lr, seed=0, checkpoint_every=0, progress=True)
    stamps = []
    t0 = time.perf_counter()
    res = fit(model, SupervisedObjective(plan=InputPlan(inputs=("s1",))), data, config=cfg, out_dir=out, spec=spec,
              step_callback=lambda **_: stamps.append(time.perf_counter()))
    total = time.perf_counter() - t0
    assert len(res.losses) == steps
    times = [stamps[0] - t0] + [b - a for a, b in zip(stamps, stamps[1:])]
    return times, total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="unet_small")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    n = args.batch * args.steps
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 2, args.size, args.size, generator=g)
    y = (x[:, 1] < -0.5).long()
    y[:, :, :8] = IGNORE_INDEX
    data = CachedChips(x, y)
    torch.manual_seed(0)
    model = build_model(args.model, in_channels=2)
    init = {k: v.clone() for k, v in model.state_dict().items()}
    print(f"model {args.model} ({sum(p.numel() for p in model.parameters()) / 1e6:.2f} M params), "
          f"{args.size} px, batch {args.batch}, {args.steps} steps per run, {args.threads} threads")
    model.load_state_dict(init)
    bare(model, x[: 2 * args.batch], y[: 2 * args.batch], batch=args.batch, steps=2, lr=1e-3)  # warm-up
    step: dict[str, list[float]] = {"bare": [], "floodnb": []}
    total: dict[str, list[float]] = {"bare": [], "floodnb": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            for name in ("bare", "floodnb"):
                model.load_state_dict(init)
                if name == "bare":
                    times, tot = bare(model, x, y, batch=args.batch, steps=args.steps, lr=1e-3)
                else:
                    times, tot = floodnb_path(model, data, batch=args.batch, steps=args.steps, lr=1e-3,
                                              out=Path(tmp) / f"run{r}")
                step[name] += times[1:]  # first step: set-up and warm-up, reported in the totals
                total[name].append(tot)
                print(f"  repeat {r + 1} {name:8s}: median step {statistics.median(times[1:]):.3f} s, "
                      f"run {tot:.2f} s ({args.steps * args.batch / tot:.2f} chips/s)")
    sb, sf = statistics.median(step["bare"]), statistics.median(step["floodnb"])
    tb, tf = statistics.median(total["bare"]), statistics.median(total["floodnb"])
    chips = args.steps * args.batch
    print(f"per step (median over {len(step['bare'])} steps each), {args.size} px: bare torch loop "
          f"{args.batch / sb:.2f} chips/s, floodnb training path {args.batch / sf:.2f} chips/s -> "
          f"overhead {100 * (sf / sb - 1):.1f} % (target <= 5 %)")
    print(f"whole run incl. set-up and the epoch-end atomic checkpoint ({args.steps} steps): bare {chips / tb:.2f} "
          f"chips/s, floodnb {chips / tf:.2f} chips/s -> overhead {100 * (tf / tb - 1):.1f} %")


if __name__ == "__main__":
    main()
