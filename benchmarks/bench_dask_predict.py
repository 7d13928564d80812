"""Many-scene inference on dask.distributed: scenes per minute with 1 vs 2 workers, peak memory per worker.

Runs :func:`floodnb.scale.dask_predict.predict_scenes` on ``--scenes`` synthetic Sentinel-1
scenes of ``--size`` x ``--size`` px (2-band VV/VH dB GeoTIFFs with meandering water, generated
by :func:`bench_predict_scene.make_scene`) with a ``unet_small`` checkpoint (random weights: speed
does not depend on them), once on a LocalCluster of 1 worker process and once on 2 worker
processes, each worker 1 thread and torch 1 thread, side by side in one run. Every variant
writes the full outputs (class COG, probability COG, GeoPackage + GeoJSON polygons, marker) to a
fresh folder. Timing starts after the cluster is up and every worker has imported torch and
floodnb (so it measures the batch, not process start-up).

Figures: scenes/minute per variant, scaling ratio (2 workers / 1 worker; ideal 2.0 on a machine
with >= 2 free cores), and per worker the peak resident set size (``ru_maxrss`` of the worker
process, read with ``client.run``). The machine is shared: the 1-minute load average is printed
before and after each variant (a load above the core count means other work competed).

    python benchmarks/bench_dask_predict.py                      # 6 scenes of 2048 x 2048 px
    python benchmarks/bench_dask_predict.py --scenes 4 --size 1024 --repeats 2
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_predict_scene import make_scene  # noqa: E402


def _peak_rss_mb() -> float:
    """Peak resident set of the calling process in MB (Linux ``ru_maxrss`` is in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _warm() -> int:
    import torch  # noqa: F401

    import floodnb.predict  # noqa: F401
    import floodnb.scale.dask_predict  # noqa: F401

    return os.getpid()


def _checkpoint(folder: Path) -> Path:
    import torch

    from floodnb.data.normalize import get_preset
    from floodnb.models import ModelSpec, build_model, save_checkpoint

    torch.manual_seed(0)
    model = build_model("unet_small", in_channels=2)
    norm = get_preset("sen1floods11_s1")
    spec = ModelSpec(model_name="unet_small", model_config=model.config(), inputs=("s1",),
                     bands={"s1": tuple(norm.bands)}, normalizers={"s1": norm.to_dict()})
    return save_checkpoint(folder / "unet_small.safetensors", model, spec=spec)


def run_variant(ckpt: Path, scenes: list[Path], out: Path, *, workers: int, tile: int, batch: int,
                polygons: bool) -> dict:
    from floodnb.scale.dask_predict import open_client, predict_scenes

    with open_client(None, n_workers=workers, threads_per_worker=1, processes=True) as client:
        client.run(_warm)
        load0 = os.getloadavg()[0]
        t0 = time.perf_counter()
        table = predict_scenes(ckpt, scenes, out, scheduler=client, tile=tile, overlap=64, batch=batch,
                               torch_threads=1, polygons=polygons, progress=False)
        wall = time.perf_counter() - t0
        load1 = os.getloadavg()[0]
        rss = client.run(_peak_rss_mb)
    bad = table[table["status"] != "done"]
    if len(bad):
        raise RuntimeError(f"{len(bad)} scene(s) did not finish: {bad[['scene', 'error']].to_dict('records')}")
    return {"workers": workers, "seconds": wall, "spm": len(scenes) / wall * 60.0, "load": (load0, load1),
            "rss_mb": sorted(rss.values()), "scene_s": float(table["seconds"].median()),
            "polygons": int(table["n_polygons"].median())}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scenes", type=int, default=6)
    p.add_argument("--size", type=int, default=2048, help="scene size in pixels (square)")
    p.add_argument("--tile", type=int, default=512)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--repeats", type=int, default=1, help="alternate 1- and 2-worker runs this many times")
    p.add_argument("--no-polygons", action="store_true",
                   help="skip the polygon layer (the random-weight model's speckle gives ~25k polygons per "
                        "2048² scene, whose vectorisation costs about as much as the inference)")
    a = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench_dask_predict_") as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        scenes = [make_scene(tmp / f"scene{k:02d}.tif", a.size, seed=k) for k in range(a.scenes)]
        ckpt = _checkpoint(tmp)
        print(f"{a.scenes} scenes of {a.size}x{a.size} px ({a.size * a.size * 1e-4:.0f} km² nominal each) "
              f"generated in {time.perf_counter() - t0:.1f} s; model unet_small; tile {a.tile}, batch {a.batch}; "
              f"polygons {'off' if a.no_polygons else 'on'}; {os.cpu_count()} CPU cores; "
              f"load average {os.getloadavg()}", flush=True)
        runs: dict[int, list[dict]] = {1: [], 2: []}
        for r in range(a.repeats):
            for w in (1, 2):
                res = run_variant(ckpt, scenes, tmp / f"out_w{w}_r{r}", workers=w, tile=a.tile, batch=a.batch,
                                  polygons=not a.no_polygons)
                runs[w].append(res)
                rss = ", ".join(f"{m:.0f}" for m in res["rss_mb"])
                print(f"  {w} worker(s): {res['seconds']:6.1f} s  {res['spm']:6.2f} scenes/min  median scene "
                      f"{res['scene_s']:.1f} s ({res['polygons']} polygons)  peak RSS per worker {rss} MB"
                      f"  load avg {res['load'][0]:.2f} -> {res['load'][1]:.2f}", flush=True)
    best = {w: max(r["spm"] for r in runs[w]) for w in (1, 2)}
    print(f"scenes/minute: 1 worker {best[1]:.2f}, 2 workers {best[2]:.2f} (best of {a.repeats}); "
          f"scaling ratio 2w/1w = {best[2] / best[1]:.2f} (ideal 2.00)")
    print(f"peak RSS per worker: 1 worker {max(max(r['rss_mb']) for r in runs[1]):.0f} MB, 2 workers "
          f"{max(max(r['rss_mb']) for r in runs[2]):.0f} MB (max over workers and repeats); "
          f"load average now {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
