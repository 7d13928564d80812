"""Benchmark of ``floodnb run`` on the default simulated dataset (not a test).

Prints, measured in this one process on this machine:

* total wall time of ``floodnb run`` (a subprocess, as a user runs it) and of each stage
  (simulate + the five notebooks, from ``run.json``), against the 10-minute target;
* kernel start-up overhead per notebook: the median wall time of executing an empty notebook
  through papermill (kernel start, one trivial cell, shutdown), and of a notebook holding only
  the imports cell of each pipeline notebook (what every notebook pays before its own work);
* each stage's share spent in overhead (start-up + imports) vs its own work;
* the CPU time (user + sys) of the whole run, a figure that other processes on a shared machine
  do not inflate: on an idle 2-core machine the wall time lies between CPU/2 and CPU.

Usage::

    python benchmarks/bench_run.py [--fast] [--runs-dir /tmp/bench_runs] [--repeats 3]

``--fast`` benchmarks ``floodnb run --fast`` instead (seconds, for a quick check); ``--precision``
passes ``floodnb run --precision`` (default: the run's own default, ``auto``: bfloat16 where the CPU
has native bfloat16 instructions and a measured training step runs faster in it, else float32), so
a float32 and a bfloat16 run can be compared (their metrics: ``benchmarks/bench_precision.py --runs
A B``). The run goes into a fresh temporary runs folder unless ``--runs-dir`` is given (a new run name each time).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

from floodnb.pipeline import NOTEBOOKS, default_notebooks_dir

TARGET_S = 600.0


def _nb(path: Path, source: str) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    nb.cells = [nbformat.v4.new_code_cell(source)]
    nbformat.write(nb, path)
    return path


def _papermill_seconds(path: Path, out: Path, repeats: int) -> float:
    import papermill as pm

    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        pm.execute_notebook(str(path), str(out), progress_bar=False, log_output=False)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--fast", action="store_true", help="benchmark 'floodnb run --fast'")
    ap.add_argument("--runs-dir", default=None, help="runs folder (default: a fresh temporary folder)")
    ap.add_argument("--repeats", type=int, default=3, help="repeats of each overhead measurement (median)")
    ap.add_argument("--precision", choices=("auto", "float32", "bfloat16"), default=None,
                    help="floodnb run --precision (default: the run's default)")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="floodnb_bench_run_"))
    runs_dir = Path(args.runs_dir) if args.runs_dir else tmp / "runs"
    name = f"bench-{int(time.time())}"
    cmd = [sys.executable, "-m", "floodnb", "run", "--name", name, "--runs-dir", str(runs_dir), "--no-progress"]
    if args.fast:
        cmd.append("--fast")
    if args.precision:
        cmd += ["--precision", args.precision]
    print(f"machine: {os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.2f} at start")
    print("command:", " ".join(cmd))
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    total = time.perf_counter() - t0
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    if proc.returncode != 0:
        print(proc.stdout[-3000:], proc.stderr[-6000:], sep="\n")
        print(f"floodnb run FAILED after {total:.1f} s")
        return 1
    state = json.loads((runs_dir / name / "run.json").read_text())
    stages = {k: float(v["seconds"]) for k, v in state["stages"].items()}

    # kernel start-up overhead: empty notebook, and each notebook's imports cell alone
    empty = _papermill_seconds(_nb(tmp / "empty.ipynb", "pass"), tmp / "empty_out.ipynb", args.repeats)
    imports = {}
    for nb_name in NOTEBOOKS:
        src = nbformat.read(default_notebooks_dir() / f"{nb_name}.ipynb", as_version=4)
        first = next(c for c in src.cells if c.cell_type == "code").source
        imports[nb_name] = _papermill_seconds(_nb(tmp / f"{nb_name}_imports.ipynb", first),
                                              tmp / f"{nb_name}_imports_out.ipynb", max(1, args.repeats - 1))

    print(f"\nfloodnb run{' --fast' if args.fast else ''} (default simulated dataset): total {total:.1f} s "
          f"= {total / 60:.2f} min  (target {TARGET_S / 60:.0f} min: {'met' if total <= TARGET_S else 'MISSED'}; "
          f"ratio {total / TARGET_S:.2f})")
    print(f"CPU time of the run (user+sys, all its processes): {cpu:.1f} s = {cpu / 60:.2f} min — independent of "
          f"other load; on an idle 2-core machine the wall time lies between {cpu / 2 / 60:.2f} and {cpu / 60:.2f} min")
    sizes = state['stages']['simulate']['params'] if 'simulate' in state['stages'] else 'given root'
    print(f"simulation sizes: {sizes}; epochs {state['params']['epochs']}")
    print(f"\n{'stage':<28}{'wall s':>8}{'start-up s':>12}{'+imports s':>12}{'own work s':>12}{'overhead %':>12}")
    for st, sec in stages.items():
        if st in imports:
            over = imports[st]
            print(f"{st:<28}{sec:8.1f}{empty:12.1f}{over:12.1f}{sec - over:12.1f}{100 * over / sec:11.0f}%")
        else:
            print(f"{st:<28}{sec:8.1f}{'-':>12}{'-':>12}{sec:12.1f}{'-':>12}")
    nb_total = sum(stages[s] for s in NOTEBOOKS if s in stages)
    over_total = sum(imports.values())
    print(f"{'notebooks together':<28}{nb_total:8.1f}{empty * len(imports):12.1f}{over_total:12.1f}"
          f"{nb_total - over_total:12.1f}{100 * over_total / nb_total:11.0f}%")
    print(f"{'orchestration (rest)':<28}{total - sum(stages.values()):8.1f}")
    print(f"\nkernel start-up (empty notebook through papermill, median of {args.repeats}): {empty:.2f} s per notebook")
    print(f"load average {os.getloadavg()[0]:.2f} at end; outputs in {runs_dir / name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
