"""``run_experiment``: every row of the evidence table under one budget, resumable row by row.

Out folder::

    <out>/data/                 simulated dataset (when no data root is given; reused when its
                                manifest matches the requested SimSpec)
    <out>/stores/{hand,pool}/   packed chip stores (floodnb.data.store), reused
    <out>/rows/<row>-<hash>/    one training run per trained row (engine out folder, resumable),
                                pool_probs.npy for teachers / partner models
    <out>/results.csv           one line per row: status, metrics, wall time, settings hash
    <out>/results.md, results.png, transfer.csv/.md/.png, transfer_per_chip.csv, transfer_excluded.csv

A rerun reuses every row whose results.csv line says ``done`` with the same settings hash (and
says so); an interrupted training row resumes from its last checkpoint. results.csv is
rewritten atomically after every row.
"""

from __future__ import annotations

import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd

from floodnb.experiment.config import DEFAULT_BUDGET, DEFAULT_SIM, Budget, SimSpec, params_hash
from floodnb.experiment.rows import EVAL_SPLITS, ROWS, RUNNERS, TRAINED, Context, resolve_rows
from floodnb.io_utils import atomic_path
from floodnb.runs.simulation import SimRequest, ensure_simulation

RESULT_COLUMNS: tuple[str, ...] = (
    "row", "group", "description", "status", "action", "test_water_iou", "test_miou", "test_water_precision",
    "test_water_recall", "test_chips", "bolivia_water_iou", "bolivia_miou", "bolivia_water_precision",
    "bolivia_water_recall", "bolivia_chips", "valid_water_iou", "teacher", "seconds", "budget", "hash",
    "checkpoint", "error",
)
STORE_ROLES = {"hand": ("s1", "s2", "label", "s1_otsu", "truth_water"), "pool": ("s1", "s2", "s1_otsu", "truth_water")}


def _log(msg: str) -> None:
    print(f"[floodnb experiment] {msg}", file=sys.stderr, flush=True)


def load_average() -> str:
    """``"1-min/5-min/15-min"`` load average of the machine (shared machines: timings are noisy)."""
    try:
        a = os.getloadavg()
    except OSError:
        return "n/a"
    return f"{a[0]:.2f}/{a[1]:.2f}/{a[2]:.2f}"


# ---------------------------------------------------------------- data
def simulated_root(out_dir: Path, sim: SimSpec, *, progress: bool) -> Path:
    """``out_dir/data`` holding the simulated dataset of ``sim``: reused when its manifest matches ``sim``,
    refused (``ValueError``) when it holds another simulation, simulated now otherwise
    (:func:`floodnb.runs.simulation.ensure_simulation`).
    """
    want = SimRequest(n_hand=sim.n_hand, n_weak=sim.n_weak, size=sim.size, seed=sim.seed)
    return ensure_simulation(out_dir / "data", want, workers=2, progress=progress, hint="use another --out-dir",
                             log=lambda msg: _log(f"data: {msg}")).root


def _stores(out_dir: Path, catalog: pd.DataFrame, *, progress: bool):
    from floodnb.data.store import ChipStore, pack

    stores = {}
    for name, sel in (("hand", catalog["group"] == "hand"), ("pool", catalog["split"] == "weak")):
        part = catalog[sel].reset_index(drop=True)
        if len(part) == 0:
            raise ValueError(f"the data has no {name} chips (chips per split: "
                             f"{catalog['split'].value_counts().to_dict()})")
        path = out_dir / "stores" / name
        if (path / "store.json").exists():
            st = ChipStore.open(path)
            if sorted(st.chip_ids) == sorted(part["chip_id"]):
                stores[name] = st
                continue
            raise ValueError(f"{path} holds a store of other chips; use another --out-dir (nothing was changed)")
        roles = [r for r in STORE_ROLES[name] if f"{r}_path" in part.columns and part[f"{r}_path"].notna().any()]
        stores[name] = pack(part, path, roles=roles, progress=progress)
    return stores["hand"], stores["pool"]


def _check_data(catalog: pd.DataFrame, root) -> None:
    if "truth_water_path" not in catalog.columns or catalog["truth_water_path"].isna().all():
        raise ValueError(f"data root {root} has no true water masks (SimTruthWater); the experiment scores against "
                         "the simulator's truth — give a simulated data root or none")
    sizes = catalog["split"].value_counts().to_dict()
    missing = [s for s in ("train", "valid", *EVAL_SPLITS, "weak") if sizes.get(s, 0) == 0]
    if missing:
        raise ValueError(f"data root {root}: splits {missing} have no chips (chips per split: {sizes}); the "
                         "experiment needs train/valid/test/bolivia hand chips and a weak pool")


# ---------------------------------------------------------------- results.csv
def _read_results(path: Path) -> pd.DataFrame:
    if not path.exists():
        return pd.DataFrame(columns=list(RESULT_COLUMNS))
    try:
        df = pd.read_csv(path, dtype={"row": str, "status": str, "hash": str, "teacher": str, "checkpoint": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as exc:
        raise ValueError(f"{path} is not a results table ({exc}); move it away or use another --out-dir") from exc
    if "row" not in df.columns or "hash" not in df.columns:
        raise ValueError(f"{path} lacks the 'row'/'hash' columns of a results table; move it away")
    return df


def _write_results(path: Path, records: dict[str, dict]) -> pd.DataFrame:
    order = [r for r in ROWS if r in records] + [r for r in records if r not in ROWS]
    df = pd.DataFrame([records[r] for r in order], columns=list(RESULT_COLUMNS))
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False)
    return df


def _record(row: str, res: dict | None, *, status: str, action: str, seconds: float, budget: Budget, h: str,
            error: str = "") -> dict:
    rec: dict[str, Any] = {c: None for c in RESULT_COLUMNS}
    rec.update(row=row, group=ROWS[row].group, description=ROWS[row].description, status=status, action=action,
               seconds=round(seconds, 1), budget=budget.describe() if row in TRAINED else "no training", hash=h,
               error=error)
    if res is not None:
        for s in EVAL_SPLITS:
            m = res["splits"][s]
            for k in ("water_iou", "miou", "water_precision", "water_recall", "chips"):
                rec[f"{s}_{k}"] = m[k] if k in m else None
        rec.update(valid_water_iou=res["valid_water_iou"], teacher=res["teacher"], checkpoint=res["checkpoint"])
    return rec


def _as_result(rec) -> dict:
    """A results.csv line back into the row-result form the later rows use."""
    def s(v) -> str:
        return "" if v is None or (isinstance(v, float) and math.isnan(v)) or pd.isna(v) else str(v)

    return {"splits": {sp: {k: rec[f"{sp}_{k}"] for k in ("water_iou", "miou", "water_precision", "water_recall",
                                                             "chips")} for sp in EVAL_SPLITS},
            "valid_water_iou": float(rec["valid_water_iou"]), "checkpoint": s(rec["checkpoint"]),
            "teacher": s(rec["teacher"])}


# ---------------------------------------------------------------- the experiment
def run_experiment(out_dir: str | Path, *, data_root: str | Path | None = None, sim: SimSpec = DEFAULT_SIM,
                   budget: Budget = DEFAULT_BUDGET, seed: int = 0, rows=None, real_root: str | Path | None = None,
                   readme: str | Path | None = None, progress: bool = True,
                   command: str = "floodnb.experiment.run_experiment(...)", threads: int = 0) -> pd.DataFrame:
    """Run (or reuse) the experiment's rows and write results.csv/.md/.png; returns the results table.

    ``data_root``: a simulated Sen1Floods11-layout root with truth layers (default: simulate
    ``sim`` into ``out_dir/data``). ``budget``: shared by every trained row. ``rows``: names (or
    a comma-separated string) from :data:`floodnb.experiment.rows.ROWS`; their dependencies run
    too (default: all). ``real_root``: real Sen1Floods11 chips for the sim-to-real report
    (:func:`floodnb.experiment.real.transfer_report` of every finished S1 row).
    ``readme``: a README whose ``<!-- experiment:start/end -->`` block gets results.md.
    ``command``: how it was started (shown in results.md). ``threads``: torch intra-op threads
    while the experiment runs (default 0: ``$FLOODNB_THREADS``, else the CPUs available,
    :func:`floodnb.runtime.resolve_threads`; on a machine shared with other heavy jobs 1 is more
    robust: two spinning OpenMP threads per process slowed steps ~5x under load); the previous
    setting is restored afterwards. Rows that
    fail are recorded with their error (dependants fail too); the others still run.
    """
    from floodnb.runtime import threads_set

    with threads_set(threads) as n:
        return _run(out_dir, data_root=data_root, sim=sim, budget=budget, seed=seed, rows=rows, real_root=real_root,
                    readme=readme, progress=progress, command=command, threads=n)


def _run(out_dir, *, data_root, sim: SimSpec, budget: Budget, seed: int, rows, real_root, readme, progress: bool,
         command: str, threads: int) -> pd.DataFrame:
    from floodnb.data.catalog import build_catalog
    from floodnb.experiment.report import replace_readme_block, write_figure, write_markdown

    order = resolve_rows(rows)
    _check_arguments(readme=readme, real_root=real_root)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t_start, load_start = time.perf_counter(), load_average()
    root = Path(data_root) if data_root is not None else simulated_root(out, sim, progress=progress)
    catalog = build_catalog(root)
    _check_data(catalog, root)
    hand, pool = _stores(out, catalog, progress=progress)
    ctx = Context(out_dir=out, catalog=catalog, hand=hand, pool=pool, budget=budget, seed=seed, progress=progress)
    data_key = {"data_root": str(root.resolve())} if data_root is not None else {"sim": sim.to_dict()}
    hashes = _row_hashes(ctx, data_key)

    results_path = out / "results.csv"
    prev = _read_results(results_path)
    records: dict[str, dict] = {str(r["row"]): {**r.to_dict(), "action": "earlier run"} for _, r in prev.iterrows()
                                if str(r["row"]) in ROWS}
    failed: set[str] = set()
    for row in order:
        _run_row(ctx, row, hashes[row], records=records, failed=failed, results_path=results_path)
    table = _write_results(results_path, records)

    real = _transfer(out, table, real_root, progress=progress) if real_root is not None else None
    wall = time.perf_counter() - t_start
    header = _header(command=command, sim=sim, data_root=data_root, root=root, catalog=catalog, budget=budget,
                     seed=seed, threads=threads, wall=wall, table=table, load_start=load_start)
    md = write_markdown(out / "results.md", table, header=header, real=real)
    write_figure(out / "results.png", table, title=f"water IoU vs truth — {budget.describe()}")
    if readme is not None:
        replace_readme_block(readme, md)
        _log(f"README block replaced in {readme}")
    _log(f"results: {out / 'results.md'} ({wall:.1f} s, load average {load_average()})")
    return table


def _check_arguments(*, readme, real_root) -> None:
    """Refuse a README without markers or a missing real root before hours of work."""
    from floodnb.experiment.report import END_MARKER, START_MARKER

    if readme is not None:
        if not Path(readme).is_file():
            raise FileNotFoundError(f"--readme {readme}: no such file")
        text = Path(readme).read_text(encoding="utf-8")
        if text.count(START_MARKER) != 1 or text.count(END_MARKER) != 1:
            raise ValueError(f"{readme}: expected exactly one '{START_MARKER}' and one '{END_MARKER}' marker")
    if real_root is not None and not Path(real_root).is_dir():
        raise FileNotFoundError(f"real_root {real_root} is not a folder")


def _row_hashes(ctx: Context, data_key: dict) -> dict[str, str]:
    """Every row's settings hash (dependencies' hashes included); sets ``ctx.row_dirs``."""
    hashes: dict[str, str] = {}
    for r in ROWS:
        hashes[r] = params_hash({"row": r, **data_key, "budget": ctx.budget.to_dict() if r in TRAINED else None,
                                 "seed": ctx.seed, "deps": [hashes[d] for d in ROWS[r].deps],
                                 "revision": ROWS[r].revision})
        ctx.row_dirs[r] = ctx.out_dir / "rows" / f"{r}-{hashes[r]}"
    return hashes


def _run_row(ctx: Context, row: str, h: str, *, records: dict[str, dict], failed: set[str],
             results_path: Path) -> None:
    """Reuse, skip (failed dependency) or run one row; updates ``records``/``failed`` and results.csv."""
    budget = ctx.budget
    old = records[row] if row in records else None
    if old is not None and old["status"] == "done" and old["hash"] == h and (
            row not in TRAINED or Path(str(old["checkpoint"])).exists()):
        ctx.results[row] = _as_result(old)
        records[row] = {**old, "action": "reused"}
        _log(f"{row}: reused (finished earlier with the same settings, {float(old['seconds']):.1f} s then)")
        return
    bad_deps = [d for d in ROWS[row].deps if d in failed]
    if bad_deps:
        failed.add(row)
        records[row] = _record(row, None, status="failed", action="skipped", seconds=0.0, budget=budget, h=h,
                               error=f"dependency failed: {bad_deps}")
        _write_results(results_path, records)
        return
    _log(f"{row}: running ({ROWS[row].description}); load average {load_average()}")
    t0 = time.perf_counter()
    try:
        res = RUNNERS[row](ctx, ctx.row_dirs[row])
    except (ValueError, FileNotFoundError, RuntimeError) as exc:
        dt = time.perf_counter() - t0
        failed.add(row)
        records[row] = _record(row, None, status="failed", action="ran", seconds=dt, budget=budget, h=h,
                               error=f"{type(exc).__name__}: {exc}")
        _write_results(results_path, records)
        _log(f"{row}: FAILED after {dt:.1f} s: {exc}")
        return
    dt = time.perf_counter() - t0
    ctx.results[row] = res
    records[row] = _record(row, res, status="done", action="ran", seconds=dt, budget=budget, h=h)
    _write_results(results_path, records)
    t, b = res["splits"]["test"]["water_iou"], res["splits"]["bolivia"]["water_iou"]
    _log(f"{row}: done in {dt:.1f} s — test water IoU {t:.3f}, held-out {b:.3f}; load average {load_average()}")


def _header(*, command: str, sim: SimSpec, data_root, root: Path, catalog: pd.DataFrame, budget: Budget, seed: int,
            threads: int, wall: float, table: pd.DataFrame, load_start: str) -> dict[str, str]:
    """The settings lines above results.md's table."""
    n_chips = catalog["split"].value_counts().to_dict()
    return {
        "command": f"`{command}`",
        "metric": "water IoU (primary) and mIoU — " + _metric_line(),
        "reference": "the simulator's true water mask (`SimTruthWater`), not the noisy hand labels",
        "splits": "`test` (hand-labelled test chips) and the held-out event (`bolivia` split, an event no model "
                  "trained on)",
        "dataset": (f"simulated, {sim.n_hand} hand + {sim.n_weak} weak chips of {sim.size} px, seed {sim.seed}"
                    if data_root is None else f"{root}") + f" (chips per split: {n_chips})",
        "budget (every trained row)": budget.describe(),
        "seed": f"{seed} (torch threads: {threads})",
        "selection": "best epoch by validation water IoU on hand labels; the students' teacher = the better of "
                     "teacher_s2 / teacher_s2s1 on validation",
        "wall time": f"{wall / 60:.1f} min this invocation (set-up, rows, report); the rows' wall s add up to "
                     f"{table['seconds'].astype(float).sum() / 60:.1f} min (a reused row shows the time of the run "
                     f"that computed it); load average {load_start} at start, {load_average()} at end "
                     "(2 cores shared with other jobs: timings are noisy)",
    }


def _transfer(out: Path, table: pd.DataFrame, real_root, *, progress: bool):
    """Sim-to-real report of every finished Sentinel-1 row on the real chips (``transfer.*`` in ``out``)."""
    from floodnb.experiment.real import transfer_report
    from floodnb.models import read_spec

    done = table[(table["status"] == "done") & table["checkpoint"].notna()]
    ckpts = {str(r["row"]): str(r["checkpoint"]) for _, r in done.iterrows()
             if Path(str(r["checkpoint"])).is_file() and tuple(read_spec(str(r["checkpoint"])).inputs) == ("s1",)}
    report = transfer_report(real_root, checkpoints=ckpts, progress=progress)
    report.write(out, prefix="transfer")
    return report


def _metric_line() -> str:
    from floodnb.experiment.report import METRIC_LINE

    return METRIC_LINE
