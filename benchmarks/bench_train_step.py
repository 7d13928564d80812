"""Training-step throughput: floodnb's training path vs a bare torch loop, side by side.

Both train the same model (default ``unet_small``, 1.9 M parameters) on the same batch of
256 px chips with AdamW:

* **bare** — ``x, y`` pre-stacked tensors; ``F.cross_entropy(model(x), y, ignore_index)``,
  ``zero_grad/backward/step``.
* **floodnb** — :func:`floodnb.distill.engine.fit` over a dataset of sample dicts (``s1``,
  ``valid``, ``label``, ``chip_id``, ``index``): collate, input assembly, masked cross-entropy
  of :class:`~floodnb.distill.runner.SupervisedObjective`, finite-loss check, per-step JSONL log,
  progress bar, LR schedule and the epoch-end atomic checkpoint (``last.pt`` + ``best/model.safetensors``).

Runs alternate (bare, floodnb, bare, floodnb, ...) to share machine noise; the overhead is
``1 - floodnb / bare`` of the median chips/s. Target: <= 5 %.

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


def bare(model, x, y, *, batch: int, steps: int, lr: float) -> float:
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    model.train()
    t0 = time.perf_counter()
    for s in range(steps):
        xb, yb = x[s * batch:(s + 1) * batch], y[s * batch:(s + 1) * batch]
        loss = F.cross_entropy(model(xb), yb, ignore_index=IGNORE_INDEX)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        float(loss)
    return steps * batch / (time.perf_counter() - t0)


def floodnb_path(model, data, *, batch: int, steps: int, lr: float, out: Path) -> float:
    spec = ModelSpec(model_name=model.model_name, model_config=model.config(), inputs=("s1",),
                     bands={"s1": ("VV", "VH")}, normalizers={"s1": NORM})
    cfg = TrainConfig(epochs=1, batch_size=batch, lr=lr, seed=0, checkpoint_every=0, progress=True)
    t0 = time.perf_counter()
    res = fit(model, SupervisedObjective(plan=InputPlan(inputs=("s1",))), data, config=cfg, out_dir=out, spec=spec)
    dt = time.perf_counter() - t0
    assert len(res.losses) == steps
    return steps * batch / dt


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
    rates: dict[str, list[float]] = {"bare": [], "floodnb": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            model.load_state_dict(init)
            rates["bare"].append(bare(model, x, y, batch=args.batch, steps=args.steps, lr=1e-3))
            model.load_state_dict(init)
            rates["floodnb"].append(floodnb_path(model, data, batch=args.batch, steps=args.steps, lr=1e-3,
                                                 out=Path(tmp) / f"run{r}"))
            print(f"  repeat {r + 1}: bare {rates['bare'][-1]:.2f} chips/s, floodnb {rates['floodnb'][-1]:.2f} chips/s")
    b, f = statistics.median(rates["bare"]), statistics.median(rates["floodnb"])
    print(f"median chips/s at {args.size} px: bare torch loop {b:.2f}, floodnb training path {f:.2f}")
    print(f"overhead of the floodnb training path: {100 * (1 - f / b):.1f} % (target <= 5 %)")


if __name__ == "__main__":
    main()
