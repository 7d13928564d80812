"""Large-scene prediction: throughput (km²/s of 10 m pixels) and peak memory, side by side.

Variants, each in its own subprocess so that peak memory (VmHWM, the resident-set high-water
mark from /proc/self/status) is measured separately:

  bare      the model's forward pass alone on in-memory 512x512 tiles, batch --batch, covering
            the same number of pixels as the scene (the compute limit)
  streamed  floodnb.predict.predict_raster on the scene GeoTIFF: windowed reads, normalisation,
            overlapping tiles (--tile/--overlap), blending, class + probability COG writing
  small     the same streamed prediction on a --small x --small scene (peak memory must match)
  whole     one forward pass over a --whole x --whole crop held entirely in memory (where it fits)

Model: floodnb.models.build_model("unet_small", in_channels=2) — the plain width-16 U-Net,
~1.9 M parameters, random weights (speed does not depend on them), Sen1Floods11 S1 normaliser.

The scene is generated once into a temp folder as a tiled float32 2-band (VV, VH dB) GeoTIFF,
written strip by strip so that generating it is itself bounded in memory.

    python benchmarks/bench_predict_scene.py                 # 10,000 x 10,000 px (minutes)
    python benchmarks/bench_predict_scene.py --size 4096     # quicker

Targets (issue 4): streamed >= 80 % of bare throughput; streamed peak memory < 2 GB and about
the same for the small and the big scene.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

PIX = 8.983152841195215e-05  # Sen1Floods11 pixel size (degrees, ~10 m)


def peak_rss_mb() -> float:
    """Resident-set high-water mark of this process (MB) from /proc/self/status (VmHWM)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def make_scene(path: Path, size: int, *, seed: int = 0, strip: int = 512) -> Path:
    """A ``size x size`` two-band float32 S1-like scene (dB) with meandering water, written by strips."""
    import rasterio
    from rasterio.transform import from_origin

    rng = np.random.default_rng(seed)
    x = np.arange(size, dtype=np.float32)
    with rasterio.open(path, "w", driver="GTiff", height=size, width=size, count=2, dtype="float32",
                       crs="EPSG:4326", transform=from_origin(-1.0, 9.0, PIX, PIX), tiled=True, blockxsize=512,
                       blockysize=512, nodata=float("nan"), BIGTIFF="IF_SAFER") as ds:
        ds.set_band_description(1, "VV")
        ds.set_band_description(2, "VH")
        for r0 in range(0, size, strip):
            n = min(strip, size - r0)
            y = np.arange(r0, r0 + n, dtype=np.float32)[:, None]
            field = np.sin(x[None, :] / 173.0 + np.sin(y / 311.0) * 2.0) * np.cos(y / 229.0 - x[None, :] / 997.0)
            water = field > 0.55
            vv = np.where(water, -18.0, -8.0) + rng.normal(0, 2.5, (n, size))
            vh = np.where(water, -25.0, -15.0) + rng.normal(0, 2.5, (n, size))
            ds.write(np.stack([vv, vh]).astype(np.float32), window=rasterio.windows.Window(0, r0, size, n))
    return path


def build():
    import torch

    from floodnb.data.normalize import get_preset
    from floodnb.models import build_model

    torch.manual_seed(0)
    model = build_model("unet_small", in_channels=2).eval()
    return model, {"s1": get_preset("sen1floods11_s1")}


def run_variant(a: argparse.Namespace) -> dict:
    import torch

    torch.set_num_threads(a.threads)
    model, norms = build()
    out: dict = {"variant": a.variant, "params": sum(p.numel() for p in model.parameters())}
    if a.variant == "bare":
        tile, pixels = 512, a.size * a.size
        n_batches = math.ceil(pixels / (a.batch * tile * tile))
        x = torch.randn(a.batch, 2, tile, tile)
        if a.channels_last:
            model = model.to(memory_format=torch.channels_last)
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            model(x)  # warm-up
            t0 = time.perf_counter()
            for _ in range(n_batches):
                model(x)
            dt = time.perf_counter() - t0
        out.update(pixels=n_batches * a.batch * tile * tile, seconds=dt)
    elif a.variant in ("streamed", "small"):
        from floodnb.predict import predict_raster

        with torch.inference_mode():  # warm-up like the bare variant (first-call allocations)
            model(torch.zeros(1, 2, 64, 64))
        res = predict_raster(model, a.src, Path(a.out) / f"{a.variant}_water.tif", tile=a.tile, overlap=a.overlap,
                             batch=a.batch, normalizers=norms, channels_last=a.channels_last, progress=False,
                             overwrite=True)
        out.update(pixels=res.height * res.width, seconds=res.seconds, tiles=res.n_tiles,
                   tile_pixels=res.n_tiles * min(a.tile, res.height) * min(a.tile, res.width))
    elif a.variant == "whole":
        import rasterio
        from rasterio.windows import Window

        from floodnb.predict import resolve_predictor

        p = resolve_predictor(model, normalizers=norms, channels_last=a.channels_last)
        with rasterio.open(a.src) as ds:
            raw = ds.read(window=Window(0, 0, a.whole, a.whole), out_dtype=np.float32)
        t0 = time.perf_counter()
        x, valid = p.prepare(raw)
        prob = p.forward(x[None])[0]
        dt = time.perf_counter() - t0
        out.update(pixels=a.whole * a.whole, seconds=dt, water_fraction=float((prob > 0.5).mean()))
    else:
        raise ValueError(f"unknown variant {a.variant!r}")
    out["km2_per_s"] = out["pixels"] * 1e-4 / out["seconds"]
    out["peak_rss_mb"] = peak_rss_mb()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=10000, help="scene side in pixels (default 10000)")
    ap.add_argument("--small", type=int, default=2048, help="side of the small scene for the memory check")
    ap.add_argument("--whole", type=int, default=4096, help="side of the crop predicted in one piece (0: skip)")
    ap.add_argument("--tile", type=int, default=512)
    ap.add_argument("--overlap", type=int, default=32)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--channels-last", action="store_true", help="channels_last memory format (not faster here)")
    ap.add_argument("--variants", default="bare,streamed,small,whole")
    ap.add_argument("--variant", help=argparse.SUPPRESS)
    ap.add_argument("--src", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.variant:
        print(json.dumps(run_variant(a)))
        return 0

    with tempfile.TemporaryDirectory(prefix="bench_predict_") as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        big = make_scene(tmp / f"scene_{a.size}.tif", a.size)
        small = make_scene(tmp / f"scene_{a.small}.tif", a.small, seed=1)
        print(f"generated {a.size}x{a.size} and {a.small}x{a.small} 2-band float32 scenes in "
              f"{time.perf_counter() - t0:.1f} s (tiled GeoTIFF, strip-wise writes)", flush=True)
        results = {}
        for v in a.variants.split(","):
            if v == "whole" and (a.whole <= 0 or a.whole > a.size):
                continue
            src = small if v == "small" else big
            cmd = [sys.executable, __file__, "--variant", v, "--src", str(src), "--out", str(tmp), "--size",
                   str(a.size), "--whole", str(a.whole), "--tile", str(a.tile), "--overlap", str(a.overlap),
                   "--batch", str(a.batch), "--threads", str(a.threads)] + (["--channels-last"] if a.channels_last
                                                                           else [])
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                print(f"variant {v} failed:\n{proc.stderr[-3000:]}", file=sys.stderr)
                return 1
            results[v] = json.loads(proc.stdout.strip().splitlines()[-1])
            r = results[v]
            print(f"  {v:9s} {r['pixels'] / 1e6:8.1f} Mpx  {r['seconds']:8.1f} s  {r['km2_per_s']:7.1f} km²/s  "
                  f"peak RSS {r['peak_rss_mb']:7.0f} MB", flush=True)
        print()
        print(f"model: unet_small, {results[next(iter(results))]['params'] / 1e6:.2f} M parameters; "
              f"{a.threads} torch threads; tile {a.tile}, overlap {a.overlap}, batch {a.batch}; "
              f"scene {a.size}x{a.size} px = {a.size * a.size * 1e-4:.0f} km² of 10 m pixels")
        if "streamed" in results:
            s = results["streamed"]
            print(f"streamed: {s['tiles']} tiles = {s['tile_pixels'] / s['pixels']:.3f} x the scene's pixels "
                  f"(overlap overhead), whole scene in {s['seconds']:.1f} s")
        if "bare" in results and "streamed" in results:
            ratio = results["streamed"]["km2_per_s"] / results["bare"]["km2_per_s"]
            eff = ratio * results["streamed"]["tile_pixels"] / results["streamed"]["pixels"]
            print(f"throughput streamed / bare forward: {ratio:.2f} on scene pixels (target >= 0.80); "
                  f"{eff:.2f} on pixels actually run through the model (pipeline overhead only)")
        if "streamed" in results:
            print(f"peak RSS streamed {a.size}^2: {results['streamed']['peak_rss_mb']:.0f} MB (target < 2048 MB)")
        if "small" in results and "streamed" in results:
            print(f"peak RSS streamed {a.size}^2 / {a.small}^2: "
                  f"{results['streamed']['peak_rss_mb'] / results['small']['peak_rss_mb']:.2f} "
                  f"(bounded: ~1 whatever the scene size)")
        if "whole" in results:
            w = results["whole"]
            print(f"whole {a.whole}^2 in one forward: {w['km2_per_s']:.1f} km²/s, peak RSS {w['peak_rss_mb']:.0f} MB"
                  + (f" = {w['peak_rss_mb'] / results['streamed']['peak_rss_mb']:.1f} x streamed"
                     if "streamed" in results else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
