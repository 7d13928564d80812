"""Peak memory of label-noise scoring: streamed chip by chip vs all chips in memory.

Simulated chips (``--size`` px square): truth = a random water disc, weak label = truth with a
flipped block and speckle, model probabilities P(water) near the truth with noise. The
per-pixel probabilities of all ``--chips`` chips are written to a temporary float16 memmap
``(N, 2, H, W)`` (1,000 x 512 px = 1 GB on disk); labels and the second sensor's probabilities
are generated on the fly per chip. Each measurement runs in its own subprocess and reads the
peak resident set size (``VmHWM`` from ``/proc/self/status``):

* **streamed**: :func:`floodnb.labels.stream.score_stream` over :func:`iter_arrays` on the memmap —
  self-confidence, CromSS and disagreement scores, chip ranking and the validation accumulator;
* **naive**: the same scores computed on arrays holding ``--naive-chips`` chips at once
  (float32, as a plain implementation would), extrapolated linearly to ``--chips`` chips.

Run: ``python benchmarks/bench_noise_memory.py`` (target: streamed peak < 2 GB for 1,000 chips).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def vm_kib(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{key} not in /proc/self/status")


class LazyChips:
    """Array-like ``(N, ...)`` whose chip ``i`` is generated on demand (deterministic per chip)."""

    def __init__(self, n: int, size: int, kind: str) -> None:
        self.n, self.size, self.kind = n, size, kind
        self.shape = (n, 2, size, size) if kind == "probs_other" else (n, size, size)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> np.ndarray:
        return make_chip(i, self.size)[self.kind]


def make_chip(i: int, size: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(i)
    yy, xx = np.ogrid[:size, :size]
    cy, cx = rng.uniform(0.2, 0.8, 2) * size
    r = rng.uniform(0.1, 0.3) * size
    truth = (((yy - cy) ** 2 + (xx - cx) ** 2) < r * r).astype(np.int8)
    weak = truth.copy()
    b = int(rng.integers(0, size // 4)) + size // 16  # block of varying size: per-chip noise rates differ
    y0, x0 = rng.integers(0, size - b, 2)
    weak[y0:y0 + b, x0:x0 + b] = 1 - weak[y0:y0 + b, x0:x0 + b]
    sp = rng.random((size, size)) < 0.01
    weak[sp] = 1 - weak[sp]
    out = {"truth": truth, "weak": weak}
    for name, conf in (("probs", 0.8), ("probs_other", 0.85)):
        pw = np.clip(np.where(truth == 1, conf, 1 - conf) + rng.normal(0, 0.1, truth.shape), 0.01, 0.99)
        out[name] = np.stack([1 - pw, pw]).astype(np.float32)
    return out


def child_generate(args) -> dict:
    n, s = args.chips, args.size
    mm = np.lib.format.open_memmap(args.memmap, mode="w+", dtype=np.float16, shape=(n, 2, s, s))
    for i in range(n):
        mm[i] = make_chip(i, s)["probs"]
        if i % 64 == 63:
            mm.flush()
    mm.flush()
    return {"bytes_on_disk": Path(args.memmap).stat().st_size}


def child_stream(args) -> dict:
    from floodnb.labels import stream

    base = vm_kib("VmRSS")
    probs = np.load(args.memmap, mmap_mode="r")
    n, s = probs.shape[0], probs.shape[-1]
    res = stream.score_stream(
        stream.iter_arrays({"s1_otsu": LazyChips(n, s, "weak"), "hand": LazyChips(n, s, "truth")},
                           chip_ids=[f"sim_{i:05d}" for i in range(n)], probs=probs,
                           probs_other=LazyChips(n, s, "probs_other"), truth=LazyChips(n, s, "truth")),
        weak="s1_otsu", total=n, progress=False)
    v = res.validation.set_index("score")
    return {"chips": n, "baseline_kib": base, "peak_kib": vm_kib("VmHWM"),
            "auroc_cromss": float(v.loc["cromss", "auroc"]),
            "auroc_self_confidence": float(v.loc["self_confidence", "auroc"]),
            "spearman_cromss": float(v.loc["cromss", "spearman_chip"]),
            "ranked": int(res.chips["rank"].notna().sum())}


def child_naive(args) -> dict:
    from floodnb.labels import noise, validate
    from floodnb.labels.cromss import cromss_noise_score

    base = vm_kib("VmRSS")
    m, s = args.naive_chips, args.size
    chips = [make_chip(i, s) for i in range(m)]
    arr = {k: np.stack([c[k] for c in chips]) for k in chips[0]}
    del chips
    scores = {
        "self_confidence": noise.label_noise_score(arr["weak"], arr["probs"]),
        "cromss": cromss_noise_score(arr["probs"], arr["probs_other"], arr["weak"]),
        "disagree_hand": noise.disagreement_map(arr["weak"], arr["truth"]).astype(np.float32),
    }
    scores["disagree_hand"][scores["disagree_hand"] < 0] = np.nan
    report = validate.validation_report(scores, arr["weak"], arr["truth"])
    rank = noise.rank_chips(noise.chip_noise_rate(scores["cromss"]), chip_ids=[str(i) for i in range(m)])
    assert len(report) == 3 and len(rank) == m
    return {"chips": m, "baseline_kib": base, "peak_kib": vm_kib("VmHWM")}


def run_child(mode: str, args) -> dict:
    cmd = [sys.executable, __file__, "--child", mode, "--chips", str(args.chips), "--size", str(args.size),
           "--naive-chips", str(args.naive_chips), "--memmap", str(args.memmap)]
    t0 = time.perf_counter()
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    res = json.loads(out.stdout.strip().splitlines()[-1])
    res["seconds"] = time.perf_counter() - t0
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--chips", type=int, default=1000)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--naive-chips", type=int, default=24)
    ap.add_argument("--memmap", default=None)
    ap.add_argument("--child", choices=("generate", "stream", "naive"), default=None)
    args = ap.parse_args()
    if args.child:
        fn = {"generate": child_generate, "stream": child_stream, "naive": child_naive}[args.child]
        print(json.dumps(fn(args)))
        return
    with tempfile.TemporaryDirectory(prefix="floodnb_bench_noise_") as tmp:
        args.memmap = Path(tmp) / "probs.npy"
        gen = run_child("generate", args)
        st = run_child("stream", args)
        nv = run_child("naive", args)
    gib = 1024 ** 2  # KiB per GiB
    per_chip = (nv["peak_kib"] - nv["baseline_kib"]) / nv["chips"]
    naive_extrap = nv["baseline_kib"] + per_chip * args.chips
    print(f"label-noise scoring memory, {args.chips} simulated chips of {args.size} px "
          f"(probabilities: float16 memmap {gen['bytes_on_disk'] / 1024 ** 3:.2f} GiB on disk)")
    print(f"  streamed chip by chip, {st['chips']} chips (measured): peak RSS {st['peak_kib'] / gib:.2f} GiB "
          f"(after imports {st['baseline_kib'] / gib:.2f} GiB), {st['seconds']:.0f} s")
    print(f"  naive all-in-memory, {nv['chips']} chips (measured): peak RSS {nv['peak_kib'] / gib:.2f} GiB "
          f"-> {per_chip / 1024:.1f} MiB per chip")
    print(f"  naive all-in-memory, {args.chips} chips (EXTRAPOLATED linearly, not run): "
          f"{naive_extrap / gib:.1f} GiB")
    print(f"  ratio naive(extrapolated) / streamed(measured): {naive_extrap / st['peak_kib']:.1f}x; "
          f"target streamed < 2 GiB: {'met' if st['peak_kib'] < 2 * gib else 'NOT met'}")
    print(f"  sanity (streamed, vs truth): AUROC cromss {st['auroc_cromss']:.3f}, self-confidence "
          f"{st['auroc_self_confidence']:.3f}; Spearman chip ranking (cromss) {st['spearman_cromss']:.3f}; "
          f"{st['ranked']} chips ranked")


if __name__ == "__main__":
    main()
