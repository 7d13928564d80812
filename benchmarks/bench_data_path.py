"""Data-path speed: GeoTIFF decode per sample vs the packed memory-mapped store vs raw np.load(mmap).

Writes N synthetic 512 x 512 chips (S1Hand float32 x2, LabelHand int16, deflate-compressed like
the real Sen1Floods11 files) into a temporary official-layout root, packs them once, then times
full epochs of

  (a) ChipDataset over the catalog   — GeoTIFF decode per sample (rasterio)
  (b) ChipDataset over the ChipStore — memmap, normalisation/valid mask/targets per sample
  (b0) ChipStore.read alone          — the store's read path without normalisation/targets
  (c) raw np.load(mmap_mode="r")     — copying the same bytes out of the same .npy files
  (p) ChipDataset over the ChipStore with prepared arrays (floodnb.data.prepared.prepare, once):
      the training fast path — samples precomputed, epochs only copy (identical samples)
  (pc) raw np.load(mmap_mode="r") copy of the prepared bytes (s1 float32, valid, int64 label)

and prints samples/s side by side with the ratios (targets: the fastest path >= 10 x a and
within 2 x of reading the same bytes from a memory map).

    python benchmarks/bench_data_path.py [--chips 24] [--epochs 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np


def write_root(root: Path, n: int, size: int, seed: int) -> None:
    import rasterio
    from rasterio.transform import from_origin

    from floodnb.data import layout as lay

    rng = np.random.default_rng(seed)
    pix = 8.983152841195215e-05
    yy, xx = np.mgrid[0:size, 0:size]
    for i in range(n):
        cid = f"Spain_{1000 + i}"
        water = (yy - rng.uniform(100, 400)) ** 2 + (xx - rng.uniform(100, 400)) ** 2 < rng.uniform(40, 120) ** 2
        s1 = (np.stack([np.where(water, -21.0, -9.0), np.where(water, -27.0, -15.0)])
              + rng.normal(0, 1.5, (2, size, size)))
        s1 = s1.astype(np.float32)
        label = water.astype(np.int16)
        label[:, :10] = -1
        tr = from_origin(-0.8 + i * size * pix, 38.1, pix, pix)
        for layer, arr in (("S1Hand", s1), ("LabelHand", label[None])):
            p = lay.layer_dir(root, layer) / lay.chip_file_name(cid, layer)
            p.parent.mkdir(parents=True, exist_ok=True)
            with rasterio.open(p, "w", driver="GTiff", height=size, width=size, count=arr.shape[0], dtype=arr.dtype,
                               crs="EPSG:4326", transform=tr, compress="deflate", tiled=False) as ds:
                ds.write(arr)
    sdir = lay.splits_dir(root)
    sdir.mkdir(parents=True, exist_ok=True)
    (sdir / lay.split_csv_name("train")).write_bytes(
        "".join(f"Spain_{1000 + i}_S1Hand.tif,Spain_{1000 + i}_LabelHand.tif\r\n" for i in range(n)).encode())


def epoch_rate(fn, n: int, epochs: int) -> float:
    fn(0)  # warm-up (page cache, imports)
    best = 0.0
    for _ in range(epochs):
        t = time.perf_counter()
        for i in range(n):
            fn(i)
        best = max(best, n / (time.perf_counter() - t))
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--chips", type=int, default=24)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--epochs", type=int, default=3)
    args = ap.parse_args()

    import torch

    from floodnb.data.catalog import build_catalog
    from floodnb.data.prepared import prepare
    from floodnb.data.store import pack
    from floodnb.data.torch import ChipDataset

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "root"
        write_root(root, args.chips, args.size, seed=0)
        cat = build_catalog(root)
        t = time.perf_counter()
        store = pack(cat, Path(tmp) / "store", roles=["s1", "label"], progress=False)
        pack_s = time.perf_counter() - t
        kw = dict(inputs=("s1",), target="label", weak=None)
        a, b = ChipDataset(cat, **kw), ChipDataset(store, **kw)
        t = time.perf_counter()
        prep_dir = prepare(store, progress=False, **kw)
        prep_s = time.perf_counter() - t
        p = ChipDataset(store, **kw)
        assert p._prepared is not None
        pa = {k: np.load(prep_dir / f"{k}.npy", mmap_mode="r") for k in ("s1", "valid", "label")}
        s1 = np.load(store.path / "s1.npy", mmap_mode="r")
        lab = np.load(store.path / "label.npy", mmap_mode="r")

        def raw(i: int) -> tuple[np.ndarray, np.ndarray]:
            return np.array(s1[i]), np.array(lab[i])

        n = len(cat)
        ra = epoch_rate(lambda i: a[i], n, args.epochs)
        rb = epoch_rate(lambda i: b[i], n, args.epochs)
        rs = epoch_rate(lambda i: store.read(i, roles=["s1", "label"]), n, args.epochs)
        rc = epoch_rate(raw, n, args.epochs)
        rp = epoch_rate(lambda i: p[i], n, args.epochs)
        rpc = epoch_rate(lambda i: [np.array(v[i]) for v in pa.values()], n, args.epochs)
    mb = (2 * 4 + 2) * args.size ** 2 / 2 ** 20
    print(f"data path, {n} chips of {args.size}x{args.size} px (S1 float32 x2 + label int16 = {mb:.1f} MiB/sample), "
          f"best of {args.epochs} epochs, 1 thread; pack once: {pack_s:.2f} s")
    print(f"  (a) GeoTIFF decode per sample (catalog ChipDataset): {ra:8.1f} samples/s")
    print(f"  (b) packed memmap store (ChipStore ChipDataset):     {rb:8.1f} samples/s")
    print(f"  (b0) ChipStore.read only (no normalise/targets):     {rs:8.1f} samples/s")
    print(f"  (c) raw np.load(mmap) copy of the same bytes:        {rc:8.1f} samples/s")
    print(f"  (p) prepared store (ChipStore + prepare) ChipDataset:{rp:8.1f} samples/s   "
          f"(prepare once: {prep_s:.2f} s)")
    print(f"  (pc) raw np.load(mmap) copy of the prepared bytes:  {rpc:8.1f} samples/s   "
          f"(S1 float32 x2 + valid + int64 label = {(2 * 4 + 1 + 8) * args.size ** 2 / 2 ** 20:.1f} MiB/sample)")
    print(f"  p / a  = {rp / ra:5.1f} x   (fastest path vs GeoTIFF decode; target >= 10 x)   "
          f"{'OK' if rp / ra >= 10 else 'MISSED'}")
    print(f"  pc / p = {rpc / rp:5.2f} x   (raw memmap of the same bytes vs fastest path; target <= 2 x)   "
          f"{'OK' if rpc / rp <= 2 else 'MISSED'}")
    print(f"  b / a  = {rb / ra:5.1f} x   (store without prepared arrays vs decode)")
    print(f"  c / b  = {rc / rb:5.2f} x   (raw memmap of the stored bytes vs store without prepared arrays: "
          "per-sample normalisation, valid mask and targets)")
    print(f"  c / b0 = {rc / rs:5.2f} x   (store read alone vs raw memmap)")


if __name__ == "__main__":
    main()
