"""``floodnb run``: the whole pipeline headless through papermill (see :mod:`floodnb.pipeline`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HELP = "run the notebook pipeline headless (simulate -> explore -> noise -> teacher -> student -> evaluate)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--name", default="default", help="run name; outputs go to RUNS_DIR/NAME (default: default)")
    p.add_argument("--runs-dir", default="runs", help="folder holding runs (default: ./runs)")
    p.add_argument("--data-root", default=None, help="Sen1Floods11 root; default: simulate the embedded dataset")
    p.add_argument("--config", default=None, help="YAML file of parameters (keys as the notebooks' parameters)")
    p.add_argument("-p", "--param", action="append", default=[], metavar="KEY=VALUE",
                   help="a notebook parameter (value parsed as YAML); repeatable; overrides --config")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--fast", action="store_true", help="tiny data and 1 epoch (tests, smoke runs)")
    p.add_argument("--only", default=None, help="comma-separated notebook names to run (default: all)")
    p.add_argument("--notebooks-dir", default=None, help="folder with the pipeline notebooks")
    p.add_argument("--force", action="store_true", help="redo stages that already finished")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--precision", default=None, choices=("auto", "float32", "bfloat16"),
                   help="training and evaluation precision (default auto: bfloat16 mixed precision, water IoU within "
                        "0.01 of float32, where the CPU has it natively (AVX-512 BF16/AMX) and a measured training "
                        "step runs >= 1.25x faster in it, else float32); "
                        "same as -p precision=...")
    p.add_argument("--threads", type=int, default=0,
                   help="torch CPU threads of every notebook (default 0: $FLOODNB_THREADS, else the CPUs available)")


def _parse_params(args: argparse.Namespace) -> dict:
    import yaml

    params: dict = {}
    if args.config:
        cfg = Path(args.config)
        if not cfg.is_file():
            raise FileNotFoundError(f"--config {cfg}: no such file")
        try:
            loaded = yaml.safe_load(cfg.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            where = getattr(exc, "problem_mark", None)
            at = f" at line {where.line + 1}, column {where.column + 1}" if where is not None else ""
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise ValueError(f"--config {cfg}: not valid YAML{at} ({problem}); expected a mapping of "
                             "parameter names to values") from None
        except UnicodeDecodeError:
            raise ValueError(f"--config {cfg}: not a UTF-8 text file; expected YAML parameters") from None
        if not isinstance(loaded, dict):
            raise ValueError(f"--config {cfg}: expected a mapping of parameter names to values, "
                             f"got {type(loaded).__name__}")
        params.update(loaded)
    for item in args.param:
        if "=" not in item:
            raise ValueError(f"--param {item!r}: expected KEY=VALUE")
        key, value = item.split("=", 1)
        if not key.strip():
            raise ValueError(f"--param {item!r}: expected KEY=VALUE with a parameter name before '='")
        try:
            params[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError:
            raise ValueError(f"--param {item!r}: the value is not valid YAML (quote text, e.g. "
                             f"{key.strip()}='\"...\"')") from None
    return params


def run(args: argparse.Namespace) -> int:
    from floodnb.commands import check_out_dir
    from floodnb.pipeline import PipelineError, run_pipeline
    from floodnb.runs.layout import NOTEBOOKS

    check_out_dir(Path(args.runs_dir) / args.name, "--runs-dir/--name")
    params = _parse_params(args)
    if args.precision is not None:
        params["precision"] = args.precision
    if args.threads < 0:
        raise ValueError(f"--threads {args.threads}: expected an integer >= 1 (0: from the machine)")
    if args.threads > 0:
        import os

        from floodnb.runtime import THREADS_ENV

        os.environ[THREADS_ENV] = str(args.threads)  # the notebooks' kernels inherit it
    kw = {k: params.pop(k) for k in ("seed", "epochs", "fast", "data_root") if k in params}
    for k in ("seed", "epochs", "data_root"):
        if getattr(args, k) is not None:
            kw[k] = getattr(args, k)
    if args.fast:
        kw["fast"] = True
    notebooks = tuple(args.only.split(",")) if args.only else NOTEBOOKS
    try:
        report = run_pipeline(
            args.name, runs_dir=args.runs_dir, params=params, notebooks=notebooks,
            notebooks_dir=args.notebooks_dir, force=args.force, progress=not args.no_progress, **kw,
        )
    except PipelineError as exc:
        print(f"floodnb run: FAILED: {exc}", file=sys.stderr)
        return 1
    print(report.table())
    print(f"results in {report.run_dir}")
    return 0
