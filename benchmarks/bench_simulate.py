"""Benchmark of floodnb's scene simulator: chips/s at 512 px, default-dataset time, peak memory.

    python benchmarks/bench_simulate.py            # measured subset (24 chips), default time extrapolated
    python benchmarks/bench_simulate.py --full     # also writes the full default dataset once and times it

Prints, side by side in one run: wall time and chips/s of the subset with 1 and 2 workers, the
extrapolated (clearly labelled) or measured time of the default dataset (240 hand + 1000 weak
chips of 512 px), CPU seconds per chip, and the peak resident memory of the parent and of the
largest worker. The machine's load average is printed too: the 2 cores may be shared.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path

from floodnb.simulate import simulate_dataset

DEFAULT_HAND, DEFAULT_WEAK = 240, 1000


def _run(out: Path, *, n_hand: int, n_weak: int, workers: int) -> tuple[float, float]:
    c0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    s0 = resource.getrusage(resource.RUSAGE_SELF)
    t = time.perf_counter()
    simulate_dataset(out, n_hand=n_hand, n_weak=n_weak, size=512, seed=0, workers=workers, progress=False)
    wall = time.perf_counter() - t
    c1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    s1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = ((c1.ru_utime + c1.ru_stime - c0.ru_utime - c0.ru_stime)
           + (s1.ru_utime + s1.ru_stime - s0.ru_utime - s0.ru_stime))
    return wall, cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--full", action="store_true", help="also simulate the full default dataset once")
    ap.add_argument("--subset", type=int, default=24, help="chips in the measured subset")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench_simulate_"))
    try:
        print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
        n_hand = args.subset // 5
        n_weak = args.subset - n_hand
        rows = []
        for workers in (1, 2):
            wall, cpu = _run(tmp / f"w{workers}", n_hand=n_hand, n_weak=n_weak, workers=workers)
            rows.append((workers, wall, cpu))
            shutil.rmtree(tmp / f"w{workers}")
        print(f"{'workers':>7} {'chips':>5} {'wall s':>7} {'chips/s':>8} {'cpu s/chip':>10}")
        for workers, wall, cpu in rows:
            print(f"{workers:>7} {args.subset:>5} {wall:>7.1f} {args.subset / wall:>8.2f} {cpu / args.subset:>10.3f}")
        w2 = rows[1]
        n_default = DEFAULT_HAND + DEFAULT_WEAK
        print(f"speed-up 2 vs 1 workers: {rows[0][1] / w2[1]:.2f}x")
        print(f"EXTRAPOLATED from the {args.subset}-chip subset (2 workers, wall): default dataset "
              f"{n_default} chips ~ {n_default / (args.subset / w2[1]):.0f} s")
        print(f"EXTRAPOLATED from CPU time (2 dedicated cores): ~ {n_default * w2[2] / args.subset / 2:.0f} s")
        if args.full:
            wall, cpu = _run(tmp / "full", n_hand=DEFAULT_HAND, n_weak=DEFAULT_WEAK, workers=2)
            size = sum(p.stat().st_size for p in (tmp / "full").rglob("*") if p.is_file())
            print(f"MEASURED default dataset ({n_default} chips, 512 px, 2 workers): {wall:.1f} s wall, "
                  f"{n_default / wall:.2f} chips/s, CPU {cpu:.0f} s, {size / 1e9:.2f} GB on disk")
        print(f"peak RSS: parent {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB, "
              f"largest worker {resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024:.0f} MB")
        print(f"load average after: {os.getloadavg()[0]:.1f}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
