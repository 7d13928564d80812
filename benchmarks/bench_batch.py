"""How many pixels one forward pass should hold on this CPU: throughput of tile size x batch (not a test).

On a CPU a bigger forward pass is not faster per pixel: once a pass's activations outgrow the
caches, throughput falls. This prints, for ``unet_small`` (2 input bands, random weights: speed
does not depend on them), the bare forward pass + softmax in km²/s of 10 m pixels for every
``--tiles`` x ``--batches`` pair (passes of more than ``--max-px`` pixels skipped), each precision
of ``--precisions``, channels-last as floodnb runs on CPU, all measured in this one process,
pairs interleaved over ``--rounds`` rounds (median), and each pair's ratio to floodnb's default
(:func:`floodnb.predict.tiles.resolve_batch`: passes of at most
:data:`floodnb.runtime.CPU_PIXELS_PER_FORWARD` pixels) for tiles of the same size. It also prints
the effective throughput after the tile overlap (``--overlap`` px on every side facing another tile:
a tile of ``t`` px covers ``(t - overlap)²`` new pixels), which is what a scene costs.

    python benchmarks/bench_batch.py                          # minutes on 2 cores
    python benchmarks/bench_batch.py --tiles 256,512 --batches 1,4 --rounds 2
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from floodnb import runtime
from floodnb.models import build_model
from floodnb.predict.tiles import resolve_batch
from floodnb.runtime import CPU_PIXELS_PER_FORWARD

KM2_PER_PX = 1e-4  # a 10 m pixel is 100 m²


def forward_rate(model: torch.nn.Module, precision: str, tile: int, batch: int, min_px: int) -> float:
    """km²/s of the bare forward + softmax on ``batch`` x ``tile``² inputs (one untimed warm-up pass)."""
    x = runtime.to_channels_last(torch.randn(batch, 2, tile, tile), True)
    n = max(2, -(-min_px // (batch * tile * tile)))
    with torch.inference_mode(), runtime.autocast(precision):
        torch.softmax(model(x).float(), dim=1)
        t0 = time.perf_counter()
        for _ in range(n):
            torch.softmax(model(x).float(), dim=1)
        dt = time.perf_counter() - t0
    return batch * tile * tile * n * KM2_PER_PX / dt


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--precisions", default="float32,bfloat16")
    ap.add_argument("--tiles", default="256,512,768,1024", help="tile sides in px")
    ap.add_argument("--batches", default="1,2,4,8", help="tiles per forward pass")
    ap.add_argument("--max-px", type=int, default=2 * 1024 * 1024, help="skip passes of more pixels than this")
    ap.add_argument("--min-px", type=int, default=8 * 512 * 512, help="pixels timed per measurement (>= 2 passes)")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds (median)")
    ap.add_argument("--overlap", type=int, default=32, help="tile overlap in px, for the effective throughput")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: floodnb.runtime.resolve_threads)")
    a = ap.parse_args()
    threads = runtime.resolve_threads(a.threads or None)
    torch.set_num_threads(threads)
    precs = a.precisions.split(",")
    for p in precs:
        runtime.check_precision(p, "cpu")
    tiles = [int(t) for t in a.tiles.split(",")]
    pairs = [(t, b) for t in tiles for b in (int(b) for b in a.batches.split(",")) if t * t * b <= a.max_px]
    for t in tiles:  # floodnb's default for every tile size is measured too
        if (t, resolve_batch(None, t, t)) not in pairs:
            pairs.append((t, resolve_batch(None, t, t)))
    pairs.sort()
    torch.manual_seed(0)
    models = {p: build_model("unet_small", in_channels=2, num_classes=2).eval().to(  # type: ignore[call-overload]
        memory_format=torch.channels_last) for p in precs}
    print(f"torch threads {threads}; load average {os.getloadavg()[0]:.2f} at start ({os.cpu_count()} CPUs); "
          f"floodnb's default: passes of at most {CPU_PIXELS_PER_FORWARD:,} px")
    got: dict[tuple[str, int, int], list[float]] = {}
    for r in range(a.rounds):
        for p in precs:
            for t, b in pairs:
                got.setdefault((p, t, b), []).append(forward_rate(models[p], p, t, b, a.min_px))
        print(f"round {r + 1}/{a.rounds} done", flush=True)
    print(f"\n| precision | tile | batch | px per pass | km²/s (median of {a.rounds}) | vs default batch, same tile "
          f"| km²/s after {a.overlap} px overlap |")
    print("|---|---|---|---|---|---|---|")
    for p in precs:
        for t, b in pairs:
            rate = statistics.median(got[(p, t, b)])
            default = statistics.median(got[(p, t, resolve_batch(None, t, t))])
            eff = rate * ((t - a.overlap) / t) ** 2
            mark = " (default)" if b == resolve_batch(None, t, t) else ""
            print(f"| {p} | {t} | {b}{mark} | {t * t * b:,} | {rate:.0f} | {rate / default:.2f}× | {eff:.0f} |")
    print(f"\nload average {os.getloadavg()[0]:.2f} at end; "
          f"`python benchmarks/bench_batch.py --rounds {a.rounds} --tiles {a.tiles} --batches {a.batches}`")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
